"""How an answer leaves the process: one shape for the API's JSON, ``rag ask --json``, the MCP
tool and a LangChain message's metadata, described once (the API's /docs shows it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from pydantic import BaseModel, Field

from rag.references import with_references
from rag.types import Answer, Citation, Hit


class AnswerOut(BaseModel):
    """An answer with its citations, as sent."""

    question: str
    text: str = Field(description="the answer; each [n] marks the citation it rests on")
    found: bool = Field(description="false: the collection holds no answer, and the text says so")
    notice: str = Field(default="", description="what changed on the way (an LLM's unverifiable sentences removed…)")
    mode: str = Field(default="extractive", description="extractive: quoted; llm: the model's words, each checked")
    citations: list[Citation] = Field(default_factory=list, description="verbatim quotes: text[start:end] == quote")
    closest: list[Citation] = Field(
        default_factory=list, description="on a refusal: the nearest sentences, not an answer, for a person to judge"
    )
    markdown: str | None = Field(default=None, description="with format=markdown: the text with numbered references")

    @classmethod
    def of(cls, answer: Answer, shown: Callable[[str], str] | None = None, markdown: bool = False) -> AnswerOut:
        """``answer`` as sent; ``shown`` rewrites each citation's source as a person is shown it."""

        def cited(citations: list[Citation]) -> list[Citation]:
            return [dataclasses.replace(c, source=shown(c.source)) for c in citations] if shown else list(citations)

        return cls(
            question=answer.question,
            text=answer.text,
            found=answer.found,
            notice=answer.notice,
            mode=answer.mode,
            citations=cited(answer.citations),
            closest=cited(answer.closest),
            markdown=with_references(answer, markdown=True) if markdown else None,
        )

    def answer(self) -> Answer:
        """The ``Answer`` this was sent from (without the retrieved chunks, which are not sent)."""
        return Answer(
            self.question, self.text, self.found, list(self.citations), [], self.notice, self.mode, list(self.closest)
        )

    def payload(self) -> dict:
        """As JSON-ready data (``markdown`` only when asked for)."""
        return self.model_dump(mode="json", exclude_none=True)


class PassageOut(BaseModel):
    """A retrieved chunk, as sent: its text, where it stands, and how it ranked."""

    text: str
    source: str
    title: str
    interviewee: str
    date: str = ""
    publisher: str = ""
    article: int
    paragraphs: tuple[int, int] = Field(description="the first and last paragraph it spans")
    start: int = Field(description="offset of its text in the document")
    end: int
    score: float = Field(description="the fused score it was ranked by")
    similarity: float | None = Field(default=None, description="cosine similarity to the question (dense side)")
    dense_rank: int | None = None
    lexical_rank: int | None = None

    @classmethod
    def of(cls, hit: Hit, shown: Callable[[str], str] | None = None) -> PassageOut:
        c = hit.chunk
        return cls(
            text=hit.text,
            source=shown(c.source) if shown else c.source,
            title=c.title,
            interviewee=c.interviewee,
            date=c.date,
            publisher=c.publisher,
            article=c.article,
            paragraphs=(c.para_start, c.para_end),
            start=c.start,
            end=c.end,
            score=hit.score,
            similarity=hit.similarity,
            dense_rank=hit.dense_rank,
            lexical_rank=hit.lexical_rank,
        )


class PassagesOut(BaseModel):
    chunks: list[PassageOut]


class ArticleOut(BaseModel):
    """An article inside a document: its title and who is interviewed."""

    title: str
    interviewee: str
    date: str = ""
    publisher: str = ""


class DocumentOut(BaseModel):
    """A document in the collection, as listed."""

    id: str = Field(description="the key DELETE /v1/documents/{id} takes")
    source: str = Field(description="its path, as a person is shown it")
    file: str
    title: str
    articles: list[ArticleOut]
    chunks: int
    ingested_at: float = Field(description="when it was last indexed (seconds since the epoch; 0: not known)")

    @classmethod
    def of(cls, row: dict) -> DocumentOut:
        """A row of ``ingest.collection.list_documents``."""
        n = len(row["articles"])
        articles = zip(
            row["articles"], row["interviewees"], row.get("dates") or [""] * n, row.get("publishers") or [""] * n
        )
        return cls(
            id=row["id"],
            source=row["path"],
            file=row["file"],
            title=row["title"],
            articles=[ArticleOut(title=t, interviewee=p, date=when, publisher=by) for t, p, when, by in articles],
            chunks=row["chunks"],
            ingested_at=row["ingested_at"],
        )


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    """What an upload did."""

    indexed: list[str] = Field(description="the files now in the collection (new, changed or the same as before)")
    added_chunks: int
    refused: list[str] = Field(description="one line per file not kept, saying why")


class RemovedOut(BaseModel):
    removed: str = Field(description="the document's path, as listed")
    chunks: int = Field(description="how many chunks left the collection")
