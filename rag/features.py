"""What the answer scorer reads of a candidate sentence: one row of numbers per sentence.

The same function makes the rows for training (``bench/scorer.py``) and for answering, so
the model never sees features computed two ways.  Every feature is absolute (it means the
same whichever other sentences were retrieved) except the chunk's ranks, which order
sentences but say little about whether any of them answers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.question import TIME, Question
from rag.terms import Weights, term_coverage
from rag.types import Hit

FEATURES = (
    # e5 similarity of the question ("query: ") and the sentence ("passage: "), less the
    # question's mean similarity to the collection: similarities of an English question to
    # Chinese text all sit lower, and this reads them on the same scale as Chinese ones.
    "lift",
    "lift_x_coverage",
    "coverage",  # weighted share of the question's terms in the sentence
    "chunk_coverage",  # ... in the sentence's chunk
    "title_coverage",  # ... in its article's title and interviewee line
    "char_coverage",  # share of the characters of the question's terms found in the sentence (思政课 ~ 思想政治课)
    "chunk_lift",  # e5 similarity of the question and the chunk, less the same mean (missing when dense search missed it)
    "dense_rank",  # 1 / rank of the chunk in dense search (0 when it missed)
    "lexical_rank",  # 1 / rank of the chunk in BM25 (0 when it missed)
    "fused_rank",  # 1 / rank of the chunk after fusion
    "type_asked",  # 0 nothing particular, 1 a number, 2 a person, 3 a place, 4 a time
    "type_found",  # the sentence holds a thing of the asked type (1 when nothing particular is asked)
    "unit_found",  # the sentence holds what a precise question needs (a count of "套", a university...)
    "subjects",  # how many organisations, places, people the question names
    "subject_in_sentence",  # share of them the sentence names
    "subject_in_chunk",  # ... its chunk
    "subject_in_article",  # ... its article's title and interviewee line
    "length",  # characters of the sentence
    "position",  # characters between its paragraph's start and the sentence (0: it opens the paragraph)
    "question_length",
    "cjk",  # the question is in Chinese (shares words with the collection)
)

_NUMBER = re.compile(
    r"[0-9０-９xX]|[一二三四五六七八九十百千万亿两][^\s]{0,2}[个项条套名家所座次件栋间户台辆位元亿吨亩批类种倍年月日%％]"
)
_ASKS = (
    (
        1,
        re.compile(
            r"多少|几[个项条套名家所座次件栋间户台辆位元亿吨亩批类种倍成]|百分之|比例|增幅|多大|多高|多长|多远|多久"
        ),
    ),
    (2, re.compile(r"谁|哪位|什么人|何人")),
    (3, re.compile(r"哪里|哪儿|什么地方|何地|在哪|哪个(?:省|市|县|国家|城市|地区)")),
    (4, re.compile(r"何时|什么时候|哪一?年|哪天|几月|什么时间|哪个月")),
)
_TIME = re.compile(TIME + r"|世纪|年代")
_TITLE = re.compile(r"书记|局长|主任|市长|县长|厅长|校长|部长|主席|总经理|院长|委员|代表|教授|博士|先生|女士")
_SUBJECT_FLAGS = {"nr", "nrfg", "nrt", "ns", "nt", "nz", "j"}
_ORG_END = re.compile(r"[局委区县厅院部办所校馆会处司省市镇村]$|中心$|公司$|集团$|大学$|学院$")


@lru_cache(maxsize=1)
def _posseg():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg


@lru_cache(maxsize=20_000)  # about 3.5 KB an entry (measured): some 70 MB when full
def tags(text: str) -> tuple[tuple[str, str], ...]:
    """jieba's (word, part of speech) pairs of ``text``; remembered, as sentences recur across questions."""
    return tuple((w.word, w.flag) for w in _posseg().cut(text))


def asked_type(question: Question) -> int:
    """What kind of thing the question asks for (see ``FEATURES``: ``type_asked``)."""
    if not question.cjk:
        return 0
    return next((kind for kind, pattern in _ASKS if pattern.search(question.text)), 0)


def holds_type(kind: int, sentence: str) -> bool:
    """Whether ``sentence`` holds a thing of kind ``kind``."""
    if kind == 0:
        return True
    if kind == 1:
        return bool(_NUMBER.search(sentence))
    if kind == 4:
        return bool(_TIME.search(sentence))
    flags = {"nr", "nrfg", "nrt"} if kind == 2 else {"ns"}
    if kind == 2 and _TITLE.search(sentence):
        return True
    return any(flag in flags for _, flag in tags(sentence))


@lru_cache(maxsize=20_000)
def subjects(text: str) -> tuple[str, ...]:
    """The organisations, places and people a question names (jieba's proper-noun tags and
    nouns ending like an organisation: 开发区, 教育局…)."""
    found = []
    for word, flag in tags(text):
        if len(word) < 2:
            continue
        if flag in _SUBJECT_FLAGS or (flag.startswith("n") and _ORG_END.search(word)):
            found.append(word.lower())
    return tuple(dict.fromkeys(found))


def _share(names: tuple[str, ...], text: str) -> float:
    return sum(1 for n in names if n in text) / len(names) if names else 1.0


@dataclass
class Sentence:
    """A sentence of a retrieved chunk: ``document_text[start:end]``."""

    hit: Hit
    rank: int  # of its chunk, 0 = best
    start: int
    end: int
    text: str
    position: int  # characters between its paragraph's start and the sentence


def rows(
    question: Question, sentences: list[Sentence], weights: Weights, cosines: np.ndarray, background: float
) -> np.ndarray:
    """One row of ``FEATURES`` per sentence; ``background`` is the question's mean similarity to the collection."""
    kind = asked_type(question)
    names = subjects(question.text) if question.cjk else ()
    characters = {c for term in weights for c in term if not c.isspace()}
    chunk_cache: dict[str, tuple[float, float, float, float]] = {}
    out = np.zeros((len(sentences), len(FEATURES)), dtype=np.float32)
    for i, s in enumerate(sentences):
        chunk = s.hit.chunk
        if chunk.id not in chunk_cache:
            head = f"{chunk.title} {chunk.interviewee}".lower()
            body = chunk.indexed_text.lower()
            chunk_cache[chunk.id] = (
                term_coverage(weights, body),
                term_coverage(weights, head),
                _share(names, body + " " + head),
                _share(names, head),
            )
        chunk_coverage, title_coverage, subject_chunk, subject_article = chunk_cache[chunk.id]
        lowered = s.text.lower()
        coverage = term_coverage(weights, lowered)
        lift = float(cosines[i]) - background
        hit = s.hit
        out[i] = (
            lift,
            max(lift, 0.0) * coverage,
            coverage,
            chunk_coverage,
            title_coverage,
            sum(1 for c in characters if c in lowered) / len(characters) if characters else 0.0,
            hit.similarity - background if hit.similarity is not None else np.nan,
            1.0 / hit.dense_rank if hit.dense_rank else 0.0,
            1.0 / hit.lexical_rank if hit.lexical_rank else 0.0,
            1.0 / (s.rank + 1),
            kind,
            holds_type(kind, s.text),
            question.type_found(s.text),
            len(names),
            _share(names, lowered),
            subject_chunk,
            subject_article,
            len(s.text),
            s.position,
            len(question.text),
            question.cjk,
        )
    return out
