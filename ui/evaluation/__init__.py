"""``rag eval``: questions asked of a collection, answers and retrieval measured beside baselines.

Product code (the command ships with the product); the experiments that fit and compare
models stay in ``bench`` and build on these modules.
"""
