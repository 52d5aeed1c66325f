"""The small data types shared by ingestion and answering; every piece of text knows where it stands."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of an article: ``text[start:end]`` of its document."""

    number: int  # 1-based within its article
    start: int
    end: int
    role: str = "text"  # "text", "question" or "answer"
    speaker: str = ""  # who says it, when the layout tells (a speaker label, "答" under a named interviewee)
    page: int = 0  # the page it starts on, for a scan read by OCR (0: not known)


@dataclass(frozen=True)
class Article:
    """One article of a document, with the interviewee line where the text gives one."""

    index: int  # 1-based within its document
    title: str
    interviewee: str
    start: int
    end: int
    paragraphs: tuple[Paragraph, ...]
    date: str = ""  # as the article states it ("2024年5月12日")
    publisher: str = ""  # the paper or site it ran in


@dataclass(frozen=True)
class Region:
    """Where a line of a scanned document stands: ``text[start:end]`` was read from ``box`` of ``page``."""

    start: int
    end: int
    page: int  # 1-based
    box: tuple[int, int, int, int]  # left, top, right, bottom, in pixels of the page image


@dataclass(frozen=True)
class ParsedDocument:
    """A file read into text and split into articles; offsets everywhere refer to ``text``."""

    source: str  # absolute path of the file
    text: str
    articles: tuple[Article, ...]
    title: str = ""
    regions: tuple[Region, ...] = ()  # a scan's lines, page and box (empty for a text layer)

    @cached_property
    def content_hash(self) -> str:
        # Cached: every chunk of the document asks for it, and hashing a long text each time
        # made chunking quadratic in the file's length.
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:24]

    @property
    def file_name(self) -> str:
        return self.source.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences from one article, with everything a citation needs."""

    text: str
    source: str
    doc_hash: str
    article: int
    title: str
    interviewee: str
    para_start: int
    para_end: int
    start: int
    end: int
    role: str
    speaker: str = ""
    index: int = 0  # position of the chunk within its document
    # (number, start) of each paragraph the chunk holds, so a quote's paragraph is known
    # from the chunk alone; empty for chunks stored before paragraphs were recorded.
    paragraphs: tuple[tuple[int, int], ...] = ()
    repeat: int = 0  # how many chunks of the same source, title and text come before this one
    date: str = ""
    publisher: str = ""
    # Per paragraph where the layout tells: the numbers of the reporter's questions, who speaks
    # (number, speaker) and the page (number, page) of a scan.
    asked: tuple[int, ...] = ()
    speakers: tuple[tuple[int, str], ...] = ()
    pages: tuple[tuple[int, int], ...] = ()

    @property
    def header(self) -> str:
        """What is stored and embedded before the text: the article title, so that a chunk
        that never names its subject ("its diet is...") still carries it."""
        return f"{self.title}\n" if self.title else ""

    @property
    def indexed_text(self) -> str:
        """The header and the text, as stored in the vector store and read by BM25."""
        return self.header + self.text

    @cached_property
    def id(self) -> str:
        """Identity from what the chunk says and where: its source, title and text (and its
        ``repeat`` count), never its offsets or the document's version, so that an edit
        elsewhere in the file leaves it the same record (its offsets are updated in place).
        Hashed once; a chunk read from the store takes the id stored with it."""
        key = f"{self.source}\n{self.repeat}\n{self.indexed_text}"
        return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]

    def paragraph_at(self, offset: int) -> int:
        """The number of the paragraph holding document offset ``offset`` (within this chunk)."""
        if self.paragraphs:
            return max((n for n, start in self.paragraphs if start <= offset), default=self.para_start)
        # Older chunks: the chunk's first paragraph plus the non-empty lines before the offset.
        before = self.text[: offset - self.start].split("\n")[:-1]
        return self.para_start + sum(1 for line in before if line.strip())

    def speaker_at(self, offset: int) -> str:
        """Who says the text at document offset ``offset``, when the layout tells."""
        return dict(self.speakers).get(self.paragraph_at(offset), "")

    def page_at(self, offset: int) -> int:
        """The page of a scan the text at ``offset`` stands on (0: not a scan)."""
        return dict(self.pages).get(self.paragraph_at(offset), 0)

    def sentences(self) -> list[tuple[int, int]]:
        """(start, end) document offsets of the chunk's sentences, each starting where its words do.

        A paragraph starts past its speaker label, timestamp or Markdown markup ("王建国：",
        "[00:01:12]", "**答：**"), so a sentence that opens a paragraph starts there too: no quote
        ever begins with a label.
        """
        from rag.text import sentence_spans

        starts = [start for _, start in self.paragraphs]
        result = []
        for start, end in sentence_spans(self.text, self.start):
            opens_line = start > self.start and self.text[start - self.start - 1] == "\n"
            if starts and opens_line and not any(start <= p < end for p in starts):
                continue  # a line of no paragraph: a speaker's label alone on its line ("王建国：")
            inside = [
                p for p in starts if start < p < end and "\n" not in self.text[start - self.start : p - self.start]
            ]
            if inside:
                start = max(inside)
            while start < end and self.text[start - self.start] in _MARKUP:
                start += 1
            if start < end:
                result.append((start, end))
        return result

    def metadata(self) -> dict:
        """Flat metadata (scalars only), every field."""
        return {
            "source": self.source,
            "doc_hash": self.doc_hash,
            "article": self.article,
            "title": self.title,
            "interviewee": self.interviewee,
            "para_start": self.para_start,
            "para_end": self.para_end,
            "start": self.start,
            "end": self.end,
            "role": self.role,
            "speaker": self.speaker,
            "chunk_index": self.index,
            "chunk_id": self.id,
            "header_len": len(self.header),
            "paragraphs": ",".join(f"{n}:{start}" for n, start in self.paragraphs),
            "repeat": self.repeat,
            "date": self.date,
            "publisher": self.publisher,
            "asked": ",".join(map(str, self.asked)),
            "speakers": "|".join(f"{n}={who}" for n, who in self.speakers),
            "pages": ",".join(f"{n}:{page}" for n, page in self.pages),
        }

    def stored_metadata(self) -> dict:
        """The metadata kept in the vector store: ``metadata()`` without the fields that hold
        their default (no speaker, date, pages …), which ``from_metadata`` restores.  Most chunks
        leave eight of twenty-one fields empty; Chroma keeps a row and two index entries for
        each, about a tenth of its SQLite file."""
        return compact(self.metadata())

    @classmethod
    def from_metadata(cls, stored: str, meta: dict) -> Chunk:
        """The chunk stored as ``stored`` (header and text) with ``meta``."""
        chunk = cls(
            text=stored[int(meta.get("header_len", 0)) :],
            source=meta["source"],
            doc_hash=meta["doc_hash"],
            article=int(meta["article"]),
            title=meta.get("title", ""),
            interviewee=meta.get("interviewee", ""),
            para_start=int(meta["para_start"]),
            para_end=int(meta["para_end"]),
            start=int(meta["start"]),
            end=int(meta["end"]),
            role=meta.get("role", "text"),
            speaker=meta.get("speaker", ""),
            index=int(meta.get("chunk_index", 0)),
            paragraphs=tuple(_pairs(meta.get("paragraphs"))),
            repeat=int(meta.get("repeat", 0)),
            date=meta.get("date", ""),
            publisher=meta.get("publisher", ""),
            asked=tuple(int(n) for n in str(meta.get("asked") or "").split(",") if n),
            speakers=tuple(
                (int(n), who) for n, who in (p.split("=", 1) for p in str(meta.get("speakers") or "").split("|") if p)
            ),
            pages=tuple(_pairs(meta.get("pages"))),
        )
        if meta.get("chunk_id"):
            chunk.__dict__["id"] = meta["chunk_id"]  # what cached_property would store: the id it was stored under
        return chunk


# Fields a chunk's stored metadata leaves out when they hold these values.  Never the fields
# a Chroma filter names (``source``, ``interviewee``, ``doc_hash``): a filter skips a record
# that lacks its key.
DEFAULTS = {
    "role": "text",
    "speaker": "",
    "repeat": 0,
    "date": "",
    "publisher": "",
    "asked": "",
    "speakers": "",
    "pages": "",
}


def compact(meta: dict) -> dict:
    """``meta`` without the fields that hold their default (see ``DEFAULTS``)."""
    return {k: v for k, v in meta.items() if k not in DEFAULTS or v != DEFAULTS[k]}


def _pairs(stored) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (p.split(":") for p in str(stored or "").split(",") if p)]


# Markdown that may stand before a sentence's first word ("**二是**…", "> …").
_MARKUP = frozenset("*_#> \u3000")


@dataclass(frozen=True)
class Scope:
    """Where a question may be answered from: these files, these interviewees (empty: anywhere),
    never the ``hidden`` sources (documents still being written: ``rag.home.pending_sources``)."""

    sources: tuple[str, ...] = ()
    interviewees: tuple[str, ...] = ()
    hidden: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.sources or self.interviewees or self.hidden)

    def admits(self, chunk: Chunk) -> bool:
        """Whether ``chunk`` lies inside the scope."""
        return self.allows(chunk.source, chunk.interviewee)

    def allows(self, source: str, interviewee: str) -> bool:
        """Whether a chunk of ``source`` and ``interviewee`` lies inside the scope."""
        return (
            (not self.sources or source in self.sources)
            and (not self.interviewees or interviewee in self.interviewees)
            and source not in self.hidden
        )

    def where(self) -> dict | None:
        """The same restriction as a Chroma metadata filter (None: no restriction)."""
        parts = []
        if self.sources:
            parts.append({"source": {"$in": list(self.sources)}})
        if self.interviewees:
            parts.append({"interviewee": {"$in": list(self.interviewees)}})
        if self.hidden:
            parts.append({"source": {"$nin": sorted(self.hidden)}})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its score (higher is better)."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    similarity: float | None = None  # cosine similarity to the question, when dense search found it

    @property
    def text(self) -> str:
        return self.chunk.text

    @property
    def source(self) -> str:
        return self.chunk.source

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def start(self) -> int:
        return self.chunk.start

    @property
    def end(self) -> int:
        return self.chunk.end


@dataclass(frozen=True)
class Citation:
    """A verbatim quote and where it stands: ``text[start:end] == quote`` of document ``source``."""

    n: int
    source: str
    title: str
    quote: str
    start: int
    end: int
    score: float
    interviewee: str = ""
    article: int = 0
    paragraph: int = 0
    doc_hash: str = ""
    chunk_id: str = ""
    speaker: str = ""  # who says the quote, when the layout tells (a round-table's guest)
    date: str = ""
    publisher: str = ""
    page: int = 0  # the scan's page (0: not a scan)


def cite(n: int, hit: Hit, start: int, end: int, score: float) -> Citation:
    """Citation ``n``: the quote ``document_text[start:end]`` of ``hit``'s chunk, and where it stands."""
    chunk = hit.chunk
    return Citation(
        n=n,
        source=chunk.source,
        title=chunk.title,
        quote=chunk.text[start - chunk.start : end - chunk.start],
        start=start,
        end=end,
        score=round(score, 4),
        interviewee=chunk.interviewee,
        article=chunk.article,
        paragraph=chunk.paragraph_at(start),
        doc_hash=chunk.doc_hash,
        chunk_id=chunk.id,
        speaker=chunk.speaker_at(start),
        date=chunk.date,
        publisher=chunk.publisher,
        page=chunk.page_at(start),
    )


@dataclass(frozen=True)
class Answer:
    """An answer with its citations; ``found`` is False when the collection holds no answer.

    ``closest``: on a refusal, the sentences that came nearest to answering, most likely first,
    each with its probability as ``score`` -- shown as "not an answer", for a person to judge.
    """

    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    notice: str = ""
    mode: str = "extractive"
    closest: list[Citation] = field(default_factory=list)
