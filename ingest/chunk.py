"""Articles -> sentences -> chunks of whole sentences, each with its exact span in the document.

LangChain's splitters cut by character count and lose the offsets of a chunk once
separators are dropped; here every chunk is ``text[start:end]`` of its document and
begins and ends on a sentence boundary, which is what makes a citation checkable.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass

from ingest.parse import PAYWALL_MARKER
from rag.types import Chunk, Paragraph, ParsedDocument

# A sentence ends at 。！？；… (or their ASCII forms) and takes any closing quotes or
# brackets that follow; a paragraph end also ends a sentence.
_SENTENCE_END = re.compile(r"(?:[。！？；!?;]|…+|\.{3,})+[”’\"'」』）)】]*")
_CLAUSE_END = re.compile(r"[，,、：:]+[”’\"'」』）)】]*")


@dataclass(frozen=True)
class Sentence:
    start: int
    end: int
    paragraph: Paragraph


def split_sentences(text: str, paragraph: Paragraph) -> list[Sentence]:
    """Sentences of one paragraph, as spans of ``text``."""
    spans, cut = [], paragraph.start
    body = text[paragraph.start : paragraph.end]
    for match in _SENTENCE_END.finditer(body):
        end = paragraph.start + match.end()
        spans.append((cut, end))
        cut = end
    if cut < paragraph.end:
        spans.append((cut, paragraph.end))
    result = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            result.append(Sentence(start, end, paragraph))
    return result


def _split_long(text: str, sentence: Sentence, size: int) -> list[Sentence]:
    """A sentence longer than ``size`` split at clause punctuation, hard-cut only as a last resort."""
    if sentence.end - sentence.start <= size:
        return [sentence]
    cuts = [sentence.start + m.end() for m in _CLAUSE_END.finditer(text[sentence.start : sentence.end])]
    pieces, start, last = [], sentence.start, sentence.start
    for cut in [*cuts, sentence.end]:
        if cut - start > size and last > start:
            pieces.append((start, last))
            start = last
        last = cut
    pieces.append((start, sentence.end))
    result = []
    for start, end in pieces:
        while end - start > size:
            result.append(Sentence(start, start + size, sentence.paragraph))
            start += size
        if end > start:
            result.append(Sentence(start, end, sentence.paragraph))
    return result


def chunk_document(doc: ParsedDocument, size: int = 300, overlap: int = 1) -> list[Chunk]:
    """Pack whole sentences into chunks of about ``size`` characters, ``overlap`` sentences shared.

    A chunk never spans two articles or a paywall marker; a reporter's question starts a
    new chunk and always shares it with the start of its answer.
    """
    chunks: list[Chunk] = []
    for article in doc.articles:
        sentences = [
            piece
            for paragraph in article.paragraphs
            for sentence in split_sentences(doc.text, paragraph)
            for piece in _split_long(doc.text, sentence, size)
        ]
        current: list[Sentence] = []
        for sentence in sentences:
            if current:
                gap = doc.text[current[-1].end : sentence.start]
                starts_question = sentence.paragraph.role == "question" and current[-1].paragraph.role != "question"
                only_question = all(s.paragraph.role == "question" for s in current)
                length = sentence.end - current[0].start
                if PAYWALL_MARKER.search(gap) or starts_question:
                    current = _flush(doc, article, current, chunks, 0, size)
                elif length > size and not (only_question and sentence.paragraph.role == "answer"):
                    current = _flush(doc, article, current, chunks, overlap, size)
                    if current and sentence.end - current[0].start > size:
                        current = []
            current.append(sentence)
        _flush(doc, article, current, chunks, 0, size)
    return _numbered_repeats(chunks)


def _numbered_repeats(chunks: list[Chunk]) -> list[Chunk]:
    """Each chunk told how many chunks of the same article title and text come before it.

    A chunk is identified by its source, title and text (``Chunk.id``); a passage a
    document repeats word for word is told apart by this count, not by its offsets, so an
    edit elsewhere in the file leaves its identity alone.
    """
    seen: Counter[str] = Counter()
    numbered = []
    for chunk in chunks:
        numbered.append(
            dataclasses.replace(chunk, repeat=seen[chunk.indexed_text]) if seen[chunk.indexed_text] else chunk
        )
        seen[chunk.indexed_text] += 1
    return numbered


def _flush(
    doc: ParsedDocument, article, current: list[Sentence], chunks: list[Chunk], keep: int, size: int
) -> list[Sentence]:
    """Close the chunk of ``current`` sentences; return the sentences the next chunk starts with."""
    if current:
        chunks.append(_make_chunk(doc, article, current, len(chunks)))
    # Overlap only with sentences that fit well within the next chunk.
    tail = current[-keep:] if keep and len(current) > keep else []
    return tail if sum(s.end - s.start for s in tail) <= size // 2 else []


def _make_chunk(doc: ParsedDocument, article, sentences: list[Sentence], index: int) -> Chunk:
    start, end = sentences[0].start, sentences[-1].end
    roles = {s.paragraph.role for s in sentences}
    role = (
        roles.pop() if len(roles) == 1 else ("qa" if "question" in roles else "answer" if "answer" in roles else "text")
    )
    speakers = [s.paragraph.speaker for s in sentences if s.paragraph.role == "answer"]
    return Chunk(
        text=doc.text[start:end],
        source=doc.source,
        doc_hash=doc.content_hash,
        article=article.index,
        title=article.title,
        interviewee=article.interviewee,
        para_start=sentences[0].paragraph.number,
        para_end=sentences[-1].paragraph.number,
        start=start,
        end=end,
        role=role,
        speaker=speakers[0] if speakers else "",
        index=index,
        paragraphs=tuple(dict.fromkeys((s.paragraph.number, s.paragraph.start) for s in sentences)),
        date=article.date,
        publisher=article.publisher,
        asked=tuple(dict.fromkeys(s.paragraph.number for s in sentences if s.paragraph.role == "question")),
        speakers=tuple(
            dict.fromkeys(
                (s.paragraph.number, s.paragraph.speaker)
                for s in sentences
                if s.paragraph.role == "answer" and s.paragraph.speaker
            )
        ),
        pages=tuple(dict.fromkeys((s.paragraph.number, s.paragraph.page) for s in sentences if s.paragraph.page)),
    )
