"""Whether a scope holds passages on a question's topic: the refusal of broad questions.

An open, who-said or summary question has no one sentence that "is the answer", so the
factoid scorer's probability says nothing about it.  What decides is whether the passages
retrieved for its topic, inside the scope, are about that topic: how much of the topic's
weighted terms the best of them holds, and how much closer in meaning it is than the
collection at large.  A logistic model of those two numbers gives the probability; it is
fitted by ``python -m bench.relevance`` on CMRC 2018 and DRCD split by article (questions
whose article is indexed against questions whose article is left out), its threshold set on
the calibrate part and its figures measured on the test part; the conversation sets about
the bundled collection are only checked against it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import ModelError
from rag.terms import Weights, term_coverage
from rag.types import Hit

MODEL_FILE = Path(__file__).parent / "data" / "relevance.json"


@dataclass(frozen=True)
class Evidence:
    """What the relevance model reads of the passages found for a topic."""

    coverage: float  # weighted share of the topic's terms in the best passage
    lift: float  # best passage's similarity to the question less the question's mean to the collection

    @classmethod
    def of(cls, weights: Weights, hits: list[Hit], background: float) -> Evidence:
        """The evidence of ``hits`` for a topic of ``weights`` (no terms: the scope itself is the topic)."""
        if not hits:
            return cls(0.0, -1.0)
        coverage = max(term_coverage(weights, h.chunk.indexed_text.lower()) for h in hits) if weights else 1.0
        similarities = [h.similarity for h in hits if h.similarity is not None]
        return cls(coverage, (max(similarities) - background) if similarities else 0.0)


@dataclass(frozen=True)
class Logistic:
    """p = 1 / (1 + exp(-(w . x + b))), and the probability below which a question is refused."""

    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, values: tuple[float, ...]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, values))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def as_dict(self) -> dict:
        return {"weights": list(self.weights), "bias": self.bias, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["threshold"]))


@dataclass
class RelevanceModel:
    """Two logistic models: ``shared`` reads coverage and lift (a question in the collection's
    language), ``meaning`` reads lift alone (a question that shares no words with it)."""

    shared: Logistic
    meaning: Logistic
    about: dict = field(default_factory=dict)

    def probability(self, evidence: Evidence, shares_words: bool) -> float:
        if shares_words:
            return self.shared.probability((evidence.coverage, evidence.lift))
        return self.meaning.probability((evidence.lift,))

    def relevant(self, evidence: Evidence, shares_words: bool) -> bool:
        """Whether the passages behind ``evidence`` are on the question's topic."""
        model = self.shared if shares_words else self.meaning
        return self.probability(evidence, shares_words) >= model.threshold

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> RelevanceModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(Logistic.from_dict(data["shared"]), Logistic.from_dict(data["meaning"]), data.get("about", {}))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(
                f"cannot read the relevance model {path} ({e}); refit it: python -m bench.relevance"
            ) from e

    def save(self, path: Path = MODEL_FILE) -> None:
        payload = {"about": self.about, "shared": self.shared.as_dict(), "meaning": self.meaning.as_dict()}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
