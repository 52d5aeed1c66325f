"""The default answerer: a learned, calibrated scorer picks the sentences to quote, or refuses.

For every sentence of the retrieved chunks the model (gradient-boosted trees, LightGBM,
trained by ``python -m bench.scorer`` on CMRC 2018 and DRCD split by article) gives the
probability that it answers the question.  The collection holds no answer when no
sentence reaches ``threshold``, chosen on the calibration part for a stated rate of
answerable questions refused; the figures of the held-out test part are in the model file
and in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.answering import Answerer, Pieces, compose
from rag.errors import ModelError
from rag.features import FEATURES, Sentence, rows
from rag.question import Question
from rag.terms import Weights
from rag.types import Answer, Hit, cite

MODEL_FILE = Path(__file__).parent / "data" / "answer_scorer.json"
# Further sentences join the best one only when they are themselves more likely than not
# to answer (a list, several interviews), or nearly as likely as the best (a factoid).
GATHER = 0.5
NEARLY_AS_GOOD = 0.9
MAX_LIST = 4
MAX_ARTICLES = 5
CLOSEST = 2  # sentences shown with a refusal, marked as not an answer


def _lightgbm():
    """lightgbm, imported without its scikit-learn adapter when scikit-learn is not yet loaded.

    Only the ``Booster`` is used here; the adapter would import scikit-learn and SciPy, two of
    a cold ``rag ask``'s five seconds.  lightgbm takes an ImportError as "not installed".
    """
    if "sklearn" in sys.modules:
        import lightgbm

        return lightgbm
    sys.modules["sklearn"] = None  # makes ``import sklearn`` raise ImportError, for this import only
    try:
        import lightgbm
    finally:
        del sys.modules["sklearn"]
    return lightgbm


@dataclass
class Trees:
    """Gradient-boosted trees, the calibration of their scores, and the refusal threshold."""

    booster: str  # LightGBM's text format
    platt: tuple[float, float]  # probability = 1 / (1 + exp(-(a * margin + b)))
    threshold: float  # refuse when no sentence's probability reaches it
    _loaded: object = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def margins(self, features: np.ndarray) -> np.ndarray:
        """The trees' raw scores (log-odds before calibration)."""
        if len(features) == 0:
            return np.zeros(0)
        with self._lock:
            if self._loaded is None:
                self._loaded = _lightgbm().Booster(model_str=self.booster)
        return self._loaded.predict(features, raw_score=True)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The calibrated probability that each row's sentence answers its question."""
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * self.margins(features) + b)))

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "platt": list(self.platt), "booster": self.booster}

    @classmethod
    def from_dict(cls, data: dict) -> Trees:
        return cls(data["booster"], tuple(data["platt"]), float(data["threshold"]))


@dataclass
class ScorerModel:
    """Two sets of trees in one JSON file: one for questions that share words with the
    collection (Chinese), one for questions that do not (another language), which reads
    meaning, ranks and place alone and has a threshold of its own."""

    shared: Trees
    meaning: Trees
    about: dict = field(default_factory=dict)  # what it was trained on, and its test figures

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> ScorerModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if tuple(data["features"]) != FEATURES:
                raise ModelError(
                    f"the answer scorer {path} was trained on other features; retrain: python -m bench.scorer"
                )
            return cls(Trees.from_dict(data["shared"]), Trees.from_dict(data["meaning"]), data.get("about", {}))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot read the answer scorer {path} ({e}); retrain it: python -m bench.scorer") from e

    def save(self, path: Path = MODEL_FILE) -> None:
        payload = {
            "features": list(FEATURES),
            "about": self.about,
            "shared": self.shared.as_dict(),
            "meaning": self.meaning.as_dict(),
        }
        Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")

    def threshold_for(self, question: Question) -> float:
        """The probability below which ``question`` is refused."""
        return (self.shared if question.cjk else self.meaning).threshold

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The calibrated probability that each row's sentence answers its question."""
        shared = features[:, FEATURES.index("cjk")] > 0.5
        out = np.zeros(len(features))
        if shared.any():
            out[shared] = self.shared.probabilities(features[shared])
        if (~shared).any():
            out[~shared] = self.meaning.probabilities(features[~shared])
        return out


@dataclass
class Scored:
    """A candidate sentence with its features and its probability of answering."""

    sentence: Sentence
    features: np.ndarray
    probability: float

    @property
    def hit(self) -> Hit:
        return self.sentence.hit

    @property
    def start(self) -> int:
        return self.sentence.start

    @property
    def end(self) -> int:
        return self.sentence.end

    @property
    def text(self) -> str:
        return self.sentence.text


_QUESTION_END = ("？", "?")


def candidate_sentences(hits: list[Hit]) -> list[Sentence]:
    """Every sentence of ``hits`` that could answer, once (neighbouring chunks share sentences), in rank order.

    A question ("记者：审批时效提升了多少？") never answers one, however closely it matches it.
    """
    seen: set[tuple[str, int]] = set()
    result: list[Sentence] = []
    for rank, hit in enumerate(hits):
        chunk = hit.chunk
        for start, end in chunk.sentences():
            if (chunk.doc_hash, start) in seen or chunk.paragraph_at(start) in chunk.asked:
                continue
            seen.add((chunk.doc_hash, start))
            paragraph_start = max((s for _, s in chunk.paragraphs if s <= start), default=start)
            text = hit.text[start - chunk.start : end - chunk.start]
            if text.rstrip(' ”"』」）)').endswith(_QUESTION_END):
                continue
            result.append(Sentence(hit, rank, start, end, text, start - paragraph_start))
    return result


class LearnedAnswerer(Answerer):
    """Quotes the sentences the learned scorer finds most likely to answer; refuses below its threshold.

    Args:
        term_weights: the weighted terms of a text (IDF from the lexical index).
        similarity: cosine similarity of a question to each of some sentences (e5, cached).
        background: a question's mean similarity to the collection.
        model: the scorer; the bundled one by default.
    """

    mode = "extractive"

    def __init__(
        self,
        term_weights: Callable[[str], Weights],
        similarity: Callable[[str, list[str]], np.ndarray],
        background: Callable[[str], float],
        model: ScorerModel | None = None,
    ) -> None:
        self.term_weights = term_weights
        self.similarity = similarity
        self.background = background
        self._model = model

    @property
    def model(self) -> ScorerModel:
        if self._model is None:
            self._model = ScorerModel.load()
        return self._model

    def features(self, question: Question, hits: list[Hit], asked: Question | None = None, skip: str = ""):
        """The candidate sentences of ``hits`` and their feature rows.

        A sentence that lacks what the question plainly asks for (``Question.answer_types``: a
        count of "套", a university, a date…) cannot answer it and is no candidate; ``asked``
        is the question that says what is asked for (a follow-up read in context keeps its own).
        """
        asked = asked or question
        sentences = [s for s in candidate_sentences(hits) if asked.type_found(s.text) and not (skip and s.text in skip)]
        if not sentences:
            return sentences, np.zeros((0, len(FEATURES)), dtype=np.float32)
        cosines = self.similarity(question.text, [s.text for s in sentences])
        weights = self.term_weights(question.text)
        return sentences, rows(question, sentences, weights, cosines, self.background(question.text))

    def score(self, question: Question, hits: list[Hit], asked: Question | None = None, skip: str = "") -> list[Scored]:
        """Every candidate sentence of ``hits`` with its probability, most likely first."""
        sentences, table = self.features(question, hits, asked, skip)
        if not sentences:
            return []
        probabilities = self.model.probabilities(table)
        scored = [Scored(s, f, float(p)) for s, f, p in zip(sentences, table, probabilities)]
        return sorted(scored, key=lambda s: -s.probability)

    def stream(self, question: Question, hits: list[Hit]) -> Pieces:
        answer = self._answer(question, hits)
        yield answer.text
        yield answer

    def _answer(self, question: Question, hits: list[Hit]) -> Answer:
        threshold = self.model.threshold_for(question)
        scored = self.score(question, hits)
        if question.follow_up:
            # Few words of its own ("还有呢？", "在监管上呢？"): read it also with the previous
            # question, without repeating what was said (what it asks for is still its own),
            # and keep the reading that finds the likelier answer.
            in_context = self.score(question.in_context(), hits, asked=question, skip=question.previous[1])
            if in_context and (not scored or in_context[0].probability > scored[0].probability):
                scored = in_context
        if not scored or scored[0].probability < threshold:
            closest = [cite(n, s.hit, s.start, s.end, s.probability) for n, s in enumerate(scored[:CLOSEST], 1)]
            return replace(self.not_found(question, hits), closest=closest)
        chosen = self.choose(question, scored, threshold)
        subjects_elsewhere = any(s.features[FEATURES.index("subject_in_chunk")] < 1 for s in chosen)
        return compose(question, chosen, [s.probability for s in chosen], hits, attribute=subjects_elsewhere)

    def choose(self, question: Question, scored: list[Scored], threshold: float) -> list[Scored]:
        """Which sentences to quote, by probability: the most likely one, and further ones only
        when their own probability is high (a list), nearly the best one's (a factoid), or --
        across interviews -- enough for each to be an answer on its own (the refusal threshold),
        one per article.  They are then shown in reading order, grouped by article."""
        best = scored[0]
        if question.across_interviews:
            per_article: dict[tuple[str, int], Scored] = {}
            for s in scored:
                key = (s.hit.source, s.hit.chunk.article)
                if key not in per_article and s.probability >= threshold:
                    per_article[key] = s
            return list(per_article.values())[:MAX_ARTICLES]
        if question.wants_list:
            return [best] + [s for s in scored[1:] if s.probability >= GATHER][: MAX_LIST - 1]
        second = scored[1] if len(scored) > 1 else None
        if second and second.probability >= max(GATHER, NEARLY_AS_GOOD * best.probability):
            return [best, second]
        return [best]
