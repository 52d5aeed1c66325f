"""What every answerer is: one method that streams an answer, and conveniences built on it."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from dataclasses import replace

from rag.question import Question
from rag.types import Answer, Hit, cite

# The text so far, as it grows (str), then the finished answer (Answer), always last.
Pieces = Iterator[str | Answer]


class Answerer:
    """Answers a question from retrieved chunks: the extractive answerer, the LLM answerer."""

    mode = "answerer"

    def stream(self, question: Question, hits: list[Hit]) -> Pieces:
        """Yield the answer's text as it grows, then the finished ``Answer``."""
        raise NotImplementedError

    def answer(self, question: Question, hits: list[Hit]) -> Answer:
        """The finished answer, without the pieces."""
        return AnswerStream(self.stream(question, hits)).answer()

    def not_found(self, question: Question, hits: list[Hit]) -> Answer:
        """The plain statement that ``hits`` do not hold an answer to ``question``."""
        return Answer(question=question.text, text=question.not_found, found=False, hits=hits, mode=self.mode)


class AnswerStream:
    """An answer on its way: iterate for its text as it grows, call ``answer()`` for the result.

    Every step of the answer runs in a context of its own (a copy of the caller's), whichever
    thread asks for the next piece: what the answer pins there (the index snapshot, see
    ``rag.retrieval.Snapshot``) lasts as long as the answer and is seen by no other.
    """

    def __init__(self, pieces: Pieces) -> None:
        self._pieces = pieces
        self._answer: Answer | None = None
        self._context = contextvars.copy_context()

    def __iter__(self) -> Iterator[str]:
        while self._answer is None:
            event = self._context.run(next, self._pieces, None)
            if isinstance(event, Answer):
                self._answer = event
            elif event is None:
                raise RuntimeError("the answer's pieces ended without the answer")
            else:
                yield event

    def answer(self) -> Answer:
        """The finished answer (reads what is left of the stream first)."""
        for _ in self:
            pass
        return self._answer

    @classmethod
    def of(cls, answer: Answer) -> AnswerStream:
        """A stream that only holds ``answer``."""

        return cls(iter((answer.text, answer)))


def relay(pieces: Pieces, finish: Callable[[Answer], Answer]) -> Pieces:
    """The text of ``pieces`` as it grows, then ``finish`` of their answer."""
    for event in pieces:
        yield finish(event) if isinstance(event, Answer) else event


def with_notice(answer: Answer, *notices: str) -> Answer:
    """``answer`` with ``notices`` put before its own notice."""
    return replace(answer, notice=" ".join(n for n in (*notices, answer.notice) if n))


def compose(question: Question, chosen: list, scores: list[float], hits: list[Hit], attribute: bool = False) -> Answer:
    """Quote ``chosen`` (anything with hit, start, end, text) in reading order, each sentence with
    its marker; grouped under its article's title and interviewee when there are several
    articles, or when ``attribute`` asks that the source be named."""
    order = sorted(range(len(chosen)), key=lambda i: (chosen[i].hit.source, chosen[i].start))
    chosen = [chosen[i] for i in order]
    scores = [scores[i] for i in order]
    citations = [cite(n, c.hit, c.start, c.end, score) for n, (c, score) in enumerate(zip(chosen, scores), 1)]
    named = attribute or len({(c.hit.source, c.hit.chunk.article) for c in chosen}) > 1
    parts: list[str] = []
    current = None
    for n, c in enumerate(chosen, 1):
        chunk = c.hit.chunk
        if named and (chunk.source, chunk.article) != current:
            current = (chunk.source, chunk.article)
            who = f"（{chunk.interviewee}）" if chunk.interviewee else ""
            parts.append(f"\n《{chunk.title}》{who}：\n" if parts else f"《{chunk.title}》{who}：\n")
        parts.append(f"{c.text}[{n}]")
    return Answer(question=question.text, text="".join(parts).strip(), found=True, citations=citations, hits=hits)
