"""What every answerer is: one method that streams an answer, and conveniences built on it."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import replace

from rag.question import Question
from rag.types import Answer, Hit

# Text so far, as it grows; the generator's return value is the finished answer.
Pieces = Generator[str, None, Answer]


class Answerer:
    """Answers a question from retrieved chunks: the extractive answerer, the LLM answerer."""

    mode = "answerer"

    def stream(self, question: Question, hits: list[Hit]) -> Pieces:
        """Yield the answer's text as it grows; return the finished ``Answer``."""
        raise NotImplementedError

    def answer(self, question: Question, hits: list[Hit]) -> Answer:
        """The finished answer, without the pieces."""
        return AnswerStream(self.stream(question, hits)).answer()

    def not_found(self, question: Question, hits: list[Hit]) -> Answer:
        """The plain statement that ``hits`` do not hold an answer to ``question``."""
        return Answer(question=question.text, text=question.not_found, found=False, hits=hits, mode=self.mode)


class AnswerStream:
    """An answer on its way: iterate for its text as it grows, call ``answer()`` for the result."""

    def __init__(self, pieces: Pieces) -> None:
        self._pieces = pieces
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        if self._answer is not None:
            return
        while True:
            try:
                yield next(self._pieces)
            except StopIteration as done:
                self._answer = done.value
                return

    def answer(self) -> Answer:
        """The finished answer (reads what is left of the stream first)."""
        for _ in self:
            pass
        return self._answer

    @classmethod
    def of(cls, answer: Answer) -> AnswerStream:
        """A stream that only holds ``answer``."""

        def pieces() -> Pieces:
            yield answer.text
            return answer

        return cls(pieces())


def with_notice(answer: Answer, *notices: str) -> Answer:
    """``answer`` with ``notices`` put before its own notice."""
    return replace(answer, notice=" ".join(n for n in (*notices, answer.notice) if n))
