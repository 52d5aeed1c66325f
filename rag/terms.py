"""The question's weighted terms and how much of them a text holds.

Retrieval re-ranks chunks with this coverage and the extractive answerer reads sentences
with it; both get the inverse document frequencies from the lexical index.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.text import key_terms

QUOTED = re.compile(r"[“「『\"]([^”」』\"]{1,20})[”」』\"]")

Weights = dict[str, tuple[float, list[str]]]


def term_weights(question: str, idf: Callable[[str], float]) -> Weights:
    """Question terms with their weights (IDF; a single character counts less, a quoted
    phrase most) and their parts, which earn partial credit when the whole is missing."""
    weights = {t: (idf(t) * (0.3 if len(t) == 1 else 1.0), parts) for t, parts in key_terms(question).items()}
    heaviest = max((w for w, _ in weights.values()), default=1.0)
    for phrase in QUOTED.findall(question):
        weights[phrase.lower()] = (2 * heaviest, [])
    return weights


def term_coverage(weights: Weights, text: str) -> float:
    """Weighted share of the question's terms found in ``text`` (lower-cased)."""
    total = sum(w for w, _ in weights.values()) or 1.0
    found = 0.0
    for term, (weight, parts) in weights.items():
        if term in text:
            found += weight
        elif parts:
            found += 0.7 * weight * sum(1 for p in parts if p in text) / len(parts)
    return found / total
