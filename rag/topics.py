"""The topic of a broad question, and how much of it a sentence carries.

"有哪些举措？", "讲了哪几个方面？": the words that say what kind of answer is wanted, and the
names of whose interview it is ("住建局"), are not what the question is about; what is left is
its topic, weighted by IDF.  A ``Reader`` gives the passage answerers (``rag.passages``) that
topic, whole articles, each sentence's coverage of the topic and similarity to the question,
and the calibrated decision whether passages are on the topic at all (``rag.relevance``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag.articles import ORG_END, Line, actor_tags, actors, named_people, read_article, structured
from rag.question import Question
from rag.relevance import Evidence, RelevanceModel
from rag.terms import Weights, term_coverage
from rag.types import Chunk, Hit

LINES_KEPT = 64  # articles (and questions' topics) remembered: a conversation stays on a few

# Words that say what kind of answer is wanted ("有哪些举措", "具体目标", "推行了哪些做法") or whose
# interview it is ("局长的采访"), not what it is about.
KIND_TERMS = frozenset(
    """
    举措 措施 做法 办法 成效 成果 经验 亮点 具体 主要 工作 情况 打算 目标 计划 思路 看待 看法 做 干 采取 推出 出台 取得
    篇 位 几篇 几位 文章 这篇 这几篇 那篇 各篇 每篇 局长 书记 主任 领导 受访者 访谈 采访 讲 谈 说 讲了 谈了 说了 提出 做了
    方面 几个 哪几个 内容 主要内容 概括 总结 概述 要点 大意 观点 介绍 一下 请 分别 各自 都 呢 吗 还有 其他 别的 更多
    篇文章 这篇文章 有 是 在 上 安排 部署 考虑 各位 推行 实行 实施 开展 推进 推动 进行 做好 抓好 怎么做 如何做
    """.split()
)


@dataclass(frozen=True)
class Scored:
    """A line with how much of the topic it carries and its similarity to the question."""

    line: Line
    coverage: float
    lift: float

    @property
    def score(self) -> float:
        return self.coverage + self.lift

    # what ``compose`` reads
    @property
    def hit(self) -> Hit:
        return self.line.hit

    @property
    def start(self) -> int:
        return self.line.start

    @property
    def end(self) -> int:
        return self.line.end

    @property
    def text(self) -> str:
        return self.line.text


class Reader:
    """What the passage answerers share: the topic of a question, whole articles, scores of lines.

    Args:
        article: the chunks of one article, by (source, article number), in reading order.
        term_weights: the weighted terms of a text (IDF from the lexical index).
        similarity: cosine similarity of a question to each of some sentences (e5, cached).
        background: a question's mean similarity to the collection.
        relevance: the calibrated relevance model (``rag.relevance``).
    """

    def __init__(
        self,
        article: Callable[[str, int], list[Chunk]],
        term_weights: Callable[[str], Weights],
        similarity: Callable[[str, list[str]], np.ndarray],
        background: Callable[[str], float],
        relevance: RelevanceModel | None = None,
        people: Callable[[], set[str]] = set,
    ) -> None:
        self._article = article
        self.people = people
        self.term_weights = term_weights
        self.similarity = similarity
        self.background = background
        self._relevance = relevance
        # Small memos, not locked: a lost race only reads an article or a question twice.
        self._lines: dict[tuple, list[Line]] = {}
        self._about: dict[tuple, str] = {}

    @property
    def relevance(self) -> RelevanceModel:
        if self._relevance is None:
            self._relevance = RelevanceModel.load()
        return self._relevance

    def lines(self, hit: Hit) -> list[Line]:
        """The sentences of ``hit``'s article, read once per version of its chunks."""
        chunks = self._article(hit.source, hit.chunk.article)
        key = (hit.source, hit.chunk.article, tuple((c.id, c.start) for c in chunks))
        lines = self._lines.get(key)
        if lines is None:
            lines = read_article(chunks)
            _keep(self._lines, key, lines)
        return lines

    def structured(self, hit: Hit) -> bool:
        """Whether ``hit``'s article has an interview's shape (``rag.articles.structured``)."""
        return structured(self.lines(hit))

    def about(self, question: Question) -> str:
        """What a broad question is about.  A follow-up with a topic of its own ("那供水方面呢？")
        is read alone, with whom the question before it named; one without ("具体有哪些举措？")
        together with that question.  (Asked several times a question: remembered for the last few.)"""
        key = (question.text, question.history)
        about = self._about.get(key)
        if about is None:
            about = self._read_about(question)
            _keep(self._about, key, about)
        return about

    def _read_about(self, question: Question) -> str:
        if not question.follow_up:
            return question.text
        own = [t for t in self.term_weights(question.text) if t not in KIND_TERMS]
        if not own:
            return question.search_text
        earlier = question.previous[0]
        names = [*named_people(earlier, self.people()), *actors(earlier)]
        return " ".join([*(n for n in names if n not in question.text), question.text])

    def topic(self, question: Question, hits: list[Hit]) -> Weights:
        """The question's weighted terms less the words of its kind and the subjects its articles
        name ("住建局" in a question about the housing bureau's interview is the scope, not the topic)."""
        text = self.about(question)
        weights = {t: w for t, w in self.term_weights(text).items() if t not in KIND_TERMS}
        named = named_people(text, self.people())
        rest = text.lower()
        for piece in named:
            rest = rest.replace(piece, " ")
        for piece in named:
            # the words of the name itself ("市住"/"建局" of 市住建局), not the same word in the
            # topic ("教育" of 乡村教育 beside 市教育局)
            for term in [t for t in weights if (t in piece and t not in rest) or piece in t]:
                weights.pop(term)
        heads = " ".join(f"{h.chunk.title} {h.chunk.interviewee}" for h in hits).lower()
        places = " ".join(h.text for h in hits).lower()
        for name, _ in actor_tags(text):
            # an organisation the passages name ("发改委" in "省发改委如何……") is whose words, not what about
            if name in heads or (name in places and len(name) > 2 and ORG_END.search(name)):
                weights.pop(name, None)
        return weights

    def relevant(self, question: Question, weights: Weights, hits: list[Hit], background: float) -> bool:
        """Whether ``hits`` are on the topic of ``weights`` (the calibrated decision)."""
        evidence = Evidence.of(weights, hits, background)
        return self.relevance.relevant(evidence, question.cjk)

    def scored(self, question: Question, lines: list[Line], weights: Weights, background: float) -> list[Scored]:
        """Each line with its topic coverage and its similarity to the question above the background."""
        if not lines:
            return []
        cosines = self.similarity(self.about(question), [ln.text for ln in lines])
        return [
            Scored(ln, term_coverage(weights, ln.text.lower()) if weights else 0.0, float(c) - background)
            for ln, c in zip(lines, cosines)
        ]


def _keep(memo: dict, key, value) -> None:
    """Remember ``value``, forgetting the oldest entry past ``LINES_KEPT`` (safe beside other threads)."""
    if len(memo) >= LINES_KEPT:
        memo.pop(next(iter(memo), None), None)
    memo[key] = value
