"""The answering process's footprint, measured the way docs/benchmarks.md does (``bench.memory``)."""

from __future__ import annotations

import pytest

from bench.memory import measure, seed_questions

pytestmark = pytest.mark.slow

LIMIT_MB = 1000


def test_rag_ui_holds_under_a_gigabyte_after_30_questions(model_cache):
    """A fresh RAG_HOME: ``rag ui`` starts, indexes the bundled collection, answers 30 seed
    questions through /v1/answers; its peak resident memory stays under 1.0 GB."""
    row = measure("onnx", seed_questions(30))
    assert row["VmHWM"] <= LIMIT_MB, row
    assert row["VmRSS"] <= row["VmHWM"]
