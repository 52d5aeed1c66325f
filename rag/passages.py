"""Answers to broad questions, read from whole articles: open, "more", who-said and summary.

"怎么做的？", "有哪些举措？" have no one sentence that is the answer: the answer is the part
of a passage that carries the topic -- an interview's point ("提高企业服务质量。" and what
follows it, "一是……" up to "二是") less its heading, the reporter's question and the
article's framing.  A who-said question asks which articles discuss a topic, decided article
by article; a summary asks for an article's points: its opening position and its headings.

Every answer quotes sentences of the collection verbatim at their offsets (``compose``),
and whether a scope holds anything on the topic at all is decided by the calibrated
relevance model (``rag.relevance``), not by any sentence's answer probability.
"""

from __future__ import annotations

import re
from dataclasses import replace

from rag.answering import Answerer, Pieces, compose
from rag.articles import Line, actors, named_people
from rag.question import OPEN, Question
from rag.terms import Weights, term_coverage
from rag.topics import Reader, Scored
from rag.types import Answer, Hit, cite

MAX_OPEN = 5  # sentences of an open answer
MAX_POINTS = 10  # headings of one article's summary
MAX_ARTICLES = 8  # articles in a who-said answer or a summary of several
MAX_CONSIDERED = 64  # articles a who-said question decides on
# A further sentence of a point whose heading lacks the topic is quoted when it carries more than
# this share of what the anchor carries (a stated choice, not fitted: "办理" alone is half of
# "并联办理" and is not enough).
ON_TOPIC = 0.5


class BroadAnswerer(Answerer):
    """An answerer of broad questions: the whole answer at once, ``answer_from`` with what not to repeat."""

    mode = "extractive"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def stream(self, question: Question, hits: list[Hit]) -> Pieces:
        answer = self.answer_from(question, hits)
        yield answer.text
        yield answer

    def answer_from(self, question: Question, hits: list[Hit], skip: str = "") -> Answer:
        """The answer; sentences in ``skip`` (what the conversation quoted) are not quoted again."""
        raise NotImplementedError


class PassageAnswerer(BroadAnswerer):
    """Open questions ("怎么做的？", "有哪些举措？"): the point of a passage that carries the topic."""

    def __init__(self, reader: Reader, overview: BroadAnswerer | None = None) -> None:
        """``overview`` answers a question with no topic of its own (the interviewee's points)."""
        super().__init__(reader)
        self.overview = overview

    def answer_from(self, question: Question, hits: list[Hit], skip: str = "") -> Answer:
        """The answer; sentences in ``skip`` (what was said before) are not quoted again."""
        if not hits:
            return self.not_found(question, hits)
        background = self.reader.background(self.reader.about(question))
        weights = self.reader.topic(question, hits)
        if not weights and question.cjk and self.overview is not None:
            # Nothing but the kind of answer and whose ("他提出了哪些具体目标？" with 于晓峰 chosen):
            # the interviewee's points.
            return self.overview.answer_from(question, hits, skip)
        if not self.reader.relevant(question, weights, hits[:5], background):
            return self._closest(question, hits, weights, background)
        chosen = self.choose(question, hits, weights, background, skip)
        if not chosen:
            return self.not_found(question, hits)
        head = f"{chosen[0].hit.chunk.title} {chosen[0].hit.chunk.interviewee}".lower()
        about = self.reader.about(question)
        names = [*named_people(about, self.reader.people()), *actors(about)]
        says_whose = any(name in head for name in names)
        return compose(question, chosen, [s.score for s in chosen], hits, attribute=not says_whose)

    def choose(
        self, question: Question, hits: list[Hit], weights: Weights, background: float, skip: str
    ) -> list[Scored]:
        """The point of the best passage that carries the topic, then further points until there
        are two sentences at least, all from the top passage's article."""
        lines = self.reader.lines(hits[0])
        scored = {s.line.start: s for s in self.reader.scored(question, lines, weights, background)}
        spans = [
            (h.start, h.end) for h in hits if (h.source, h.chunk.article) == (hits[0].source, hits[0].chunk.article)
        ]
        in_hits = [s for s in scored.values() if any(b <= s.line.start < e for b, e in spans)]
        candidates = in_hits or list(scored.values())
        best = max((a.coverage for a in candidates), default=0.0)
        about = self._aboutness(lines, scored, best)
        # The anchor is a sentence carrying the topic in the point most about it (its opening
        # sentence or a reporter's question carries the topic; most of its sentences do), not a
        # passing mention; the article's framing and closing only when nothing else carries it.
        anchors = sorted(
            [s for s in candidates if s.coverage > 0 or not weights],
            key=lambda s: (s.line.framing, s.coverage <= ON_TOPIC * best, *about(s), -s.coverage, -s.lift),
        )
        chosen: list[Scored] = []
        used: set[int] = set()
        for anchor in anchors:
            # Two sentences at least, unless those quoted already carry the whole topic: a narrow
            # question ("在并联办理方面推行了哪些做法？") is not padded with its mentions elsewhere.
            covered = chosen and term_coverage(weights, " ".join(s.text for s in chosen).lower()) >= 1.0
            if len(chosen) >= 2 or covered or (chosen and anchor.coverage <= ON_TOPIC * best):
                break
            point, whole = self._point(anchor, lines, scored, weights)
            if not point or point[0].line.start in used:
                continue
            used.add(point[0].line.start)
            keep = [
                s
                for s in point
                if not s.line.heading
                and not s.line.asked
                and not (s.line.framing and not anchor.line.framing)
                and not (skip and s.text in skip)
                and not any(s is c for c in chosen)
                and (whole or s is anchor or s.coverage > ON_TOPIC * anchor.coverage)
            ]
            if len(keep) > MAX_OPEN - len(chosen):
                keep = sorted(keep, key=lambda s: -s.score)[: MAX_OPEN - len(chosen)]
            chosen += keep
        return chosen

    @staticmethod
    def _aboutness(lines: list[Line], scored: dict, best: float):
        """For a candidate anchor: (not led by the topic, minus how many of its point's sentences carry it)."""
        carries = {start: s.coverage > ON_TOPIC * best for start, s in scored.items()}
        points: dict[int, list[Line]] = {}
        for ln in lines:
            points.setdefault(ln.point, []).append(ln)

        def about(s: Scored) -> tuple[bool, float]:
            if s.line.asked:
                return (not carries[s.line.start], -MAX_OPEN)
            point = points[s.line.point]
            content = [ln for ln in point if not ln.heading] or point
            return (not carries[point[0].start], -sum(carries[ln.start] for ln in content))

        return about

    @staticmethod
    def _point(anchor: Scored, lines: list[Line], scored: dict, weights: Weights) -> tuple[list[Scored], bool]:
        """The lines ``anchor`` stands for, and whether all of them are on the topic.

        - a reporter's question: the answer after it (everything up to the next question);
        - a lone opening sentence before numbered points ("我们始终把供水安全放在首位。一是……"):
          the first sentence of each point of its paragraph;
        - else its point, all on the topic when the point's heading carries it.
        """
        at = anchor.line
        if at.asked:
            after = [ln for ln in lines if ln.start > at.start]
            stop = next((ln.start for ln in after if ln.asked), None)
            return [scored[ln.start] for ln in after if stop is None or ln.start < stop], True
        point = [scored[ln.start] for ln in lines if ln.point == at.point]
        if len(point) == 1 and at.opens:
            later = [ln for ln in lines if ln.paragraph == at.paragraph and ln.point > at.point]
            firsts = {}
            for ln in later:
                if not ln.heading and ln.point not in firsts:
                    firsts[ln.point] = ln
            if firsts:
                return [anchor, *(scored[ln.start] for ln in firsts.values())], True
        heading = next((s for s in point if s.line.heading), None)
        return point, not weights or (heading is not None and heading.coverage >= ON_TOPIC)

    def _closest(self, question: Question, hits: list[Hit], weights: Weights, background: float) -> Answer:
        """The refusal, with the two sentences that came closest (marked as not an answer)."""
        lines = [ln for ln in self.reader.lines(hits[0]) if not ln.asked]
        in_hit = [ln for ln in lines if hits[0].start <= ln.start < hits[0].end] or lines
        best = sorted(self.reader.scored(question, in_hit, weights, background), key=lambda s: -s.score)[:2]
        closest = [cite(n, s.hit, s.start, s.end, max(0.0, min(1.0, s.score))) for n, s in enumerate(best, 1)]
        return replace(self.not_found(question, hits), closest=closest)


class WhoSaidAnswerer(BroadAnswerer):
    """ "哪些受访者谈到了…？": every article of the scope that discusses the topic, decided one by
    one, each with the sentence of it that carries the topic most, in collection order."""

    def answer_from(self, question: Question, hits: list[Hit], skip: str = "") -> Answer:
        if not hits:
            return self.not_found(question, hits)
        background = self.reader.background(self.reader.about(question))
        weights = self.reader.topic(question, hits)
        per_article: dict[tuple[str, int], list[Hit]] = {}
        for h in hits:
            per_article.setdefault((h.source, h.chunk.article), []).append(h)
        per_each = 2 if re.search(r"分别|各自", question.text) and _asks_how(question) else 1
        # Every article is decided on its own; all that discuss the topic are counted, the first
        # MAX_ARTICLES quoted and the rest said to be there, so "these and no others" holds.
        discussing = [
            key
            for key in sorted(per_article)[:MAX_CONSIDERED]
            if self.reader.relevant(question, weights, per_article[key], background)
        ]
        chosen: list[Scored] = []
        for key in discussing[:MAX_ARTICLES]:
            found = per_article[key]
            lines = [ln for ln in self.reader.lines(found[0]) if not ln.asked and not (skip and ln.text in skip)]
            near = [ln for ln in lines if any(h.start <= ln.start < h.end for h in found)] or lines
            scored = self.reader.scored(question, near, weights, background)
            content = [s for s in scored if not s.line.heading and not s.line.framing] or scored
            # where the interviewee first takes the topic up, among the sentences carrying most of it
            chosen += sorted(content, key=lambda s: (-round(s.coverage, 3), s.line.start))[:per_each]
        if not chosen:
            return self.not_found(question, hits)
        answer = compose(question, chosen, [s.score for s in chosen], hits, attribute=True)
        more = len(discussing) - MAX_ARTICLES
        if more > 0:
            notice = question.reply(
                f"另有 {more} 篇访谈也谈到了这个话题，未一一列出；可按受访者筛选后再问。",
                f"{more} more interviews also discuss this; filter by interviewee to see them.",
            )
            answer = replace(answer, notice=notice)
        return answer


def _asks_how(question: Question) -> bool:
    return bool(re.search(r"怎么|怎样|如何|做了|举措|措施|做法|\bhow\b", question.text, re.I))


class SummaryAnswerer(BroadAnswerer):
    """ "主要讲了什么？", "哪几个方面？": an article's opening position and its points' headings;
    asked of several articles ("这几篇访谈"), each article's opening position."""

    def answer_from(self, question: Question, hits: list[Hit], skip: str = "") -> Answer:
        if not hits:
            return self.not_found(question, hits)
        background = self.reader.background(self.reader.about(question))
        weights = self.reader.topic(question, hits)
        if weights and not self.reader.relevant(question, weights, hits[:5], background):
            return self.not_found(question, hits)
        articles = list(dict.fromkeys((h.source, h.chunk.article) for h in hits))
        several = question.every_article or (not weights and len(articles) > 1 and not question.follow_up)
        firsts = {}
        for h in hits:
            firsts.setdefault((h.source, h.chunk.article), h)
        chosen: list[Line] = []
        if several:
            for key in sorted(firsts)[:MAX_ARTICLES]:
                lines = self.reader.lines(firsts[key])
                chosen += [ln for ln in lines if _is_position(ln) and not (skip and ln.text in skip)][:1]
        else:
            lines = self.reader.lines(hits[0])
            position = [ln for ln in lines if _is_position(ln)][:1]
            headings = [ln for ln in lines if ln.heading and not ln.asked]
            if len(headings) < 2:  # no headings: the first sentence of each point
                headings = [ln for ln in lines if ln.opens and not ln.asked and not ln.framing]
            chosen = [ln for ln in position + headings[:MAX_POINTS] if not (skip and ln.text in skip)]
            chosen = list({ln.start: ln for ln in chosen}.values())
        if not chosen:
            return self.not_found(question, hits)
        picked = [Scored(ln, 1.0, 0.0) for ln in chosen]
        return compose(question, picked, [1.0] * len(picked), hits, attribute=several)


def _is_position(line: Line) -> bool:
    """The interviewee's opening position: the first sentence that is neither framing, a question nor a heading."""
    return not (line.asked or line.framing or line.heading)


class MoreAnswerer(BroadAnswerer):
    """ "还有呢？": the question it follows, answered again without what the conversation already quoted."""

    def __init__(self, answerers: dict[str, BroadAnswerer]) -> None:
        self.answerers = answerers

    def answer_from(self, question: Question, hits: list[Hit], skip: str = "") -> Answer:
        earlier = question.asked_before
        if earlier is None:
            return self.not_found(question, hits)
        kind = earlier.kind if earlier.kind in self.answerers else OPEN
        answer = self.answerers[kind].answer_from(earlier, hits, skip=question.said_before)
        if not answer.found:
            text = question.reply("关于这个问题，资料中没有更多内容了。", "The collection says nothing more on this.")
            return Answer(question=question.text, text=text, found=False, hits=hits, mode=self.mode)
        return replace(answer, question=question.text)
