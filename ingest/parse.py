"""Files -> text -> articles and paragraphs with character offsets.

Reading formats is ``ingest.formats`` (libraries, each failure one line).  Splitting
a collection file into articles is hand-written because it rests on conventions of the
material itself: short unpunctuated title lines, ``篇N：`` prefixes, ``记者：`` questions
followed by ``xx：`` answers, and paywall markers that must never reach a chunk.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ingest.formats import MAX_UNPACKED_BYTES, Raw, decode_text, docx_text, html_text, pdf_pages
from ingest.layout import ANSWER_LABELS, Cast, header_line, turn
from ingest.scans import IMAGE_SUFFIXES, PageProgress, image_text, pdf_scan
from rag.errors import ParseError
from rag.types import Article, Paragraph, ParsedDocument, Region

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".docx", ".pdf", ".html", ".htm", *IMAGE_SUFFIXES)
MAX_FILE_BYTES = 20 * 1024 * 1024  # the default of RAG_MAX_FILE_MB
PAYWALL_MARKER = re.compile(r"##paid(?:begin|end)##")
_ARTICLE_PREFIX = re.compile(r"^\s*篇\s*[0-9一二三四五六七八九十]+\s*[：:]\s*")
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+")
_QUESTION = re.compile(r"^\s*(记者|问|主持人|Q)\s*[：:]")
_SPEAKER = re.compile(r"^\s*([^\s，,。：:“”]{1,8})\s*[：:]")
_FINAL_PUNCT = '。！？；：…!?;:，,、”’"】」』'
_INTERVIEWEE_PATTERNS = (
    re.compile(r"专访了([^，,。“”]{2,40}?)[。，,]"),
    re.compile(r"对([^，,。“”]{2,40}?)进行了(?:专题)?(?:访谈|专访|采访)"),
    re.compile(r"([^，,。“”：:]{2,40}?)在接受(?:本报)?记者(?:专访|采访)"),
    re.compile(r"([^，,。“”：:]{2,40}?)(?:表示|介绍说|说)[，,：:]"),
)


def over_limit(size: int, limit: int) -> str:
    """A size over a limit, said so that it reads as over even one byte past (20,971,521 bytes, not "20.0 MB")."""
    return f"{size:,} bytes ({size / 2**20:.1f} MB) is over the limit of {limit:,} bytes ({limit / 2**20:g} MB)"


def _pdf_lines(pages: list[str]) -> list[str]:
    # PDF text breaks lines at the page width; a line that does not end a sentence
    # continues on the next one.
    lines: list[str] = []
    for page in pages:
        for raw in page.splitlines():
            line = raw.strip()
            if not line:
                continue
            if lines and lines[-1] and not lines[-1].endswith(tuple("。！？；!?;”")) and not _is_title_like(lines[-1]):
                lines[-1] += line
            else:
                lines.append(line)
    return lines


def read_file(
    path: Path,
    max_bytes: int = MAX_FILE_BYTES,
    max_unpacked: int = MAX_UNPACKED_BYTES,
    on_page: PageProgress | None = None,
) -> Raw:
    """Read a supported file into text and what its format marks (headings, a page's title, a scan's lines).

    The one place a reader is chosen by the file's type; ``on_page`` hears of each page a scan's OCR reads.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
    if size > max_bytes:
        raise ParseError(f"{path.name}: {over_limit(size, max_bytes)} per file; split it, or raise RAG_MAX_FILE_MB")
    if suffix == ".docx":
        raw = docx_text(path, max_unpacked)
    elif suffix == ".pdf":
        pages = pdf_pages(path)
        raw = Raw("\n".join(_pdf_lines(pages))) if all(p.strip() for p in pages) else pdf_scan(path, pages, on_page)
    elif suffix in IMAGE_SUFFIXES:
        raw = image_text(path, on_page)
    else:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
        text = decode_text(data, path.name)
        if suffix in (".html", ".htm"):
            raw = html_text(text, path.name)
        elif suffix in (".md", ".markdown"):
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            raw = Raw(text, {i: len(m.group(1)) for i, line in enumerate(lines) if (m := _MD_HEADING.match(line))})
        else:
            raw = Raw(text)
    text = raw.text.replace("\r\n", "\n").replace("\r", "\n")
    if not PAYWALL_MARKER.sub("", text).strip():
        raise ParseError(f"{path.name}: no text to index")
    return dataclasses.replace(raw, text=text)


def _is_title_like(line: str) -> bool:
    stripped = line.strip()
    if _ARTICLE_PREFIX.match(stripped) or _MD_HEADING.match(stripped):
        return True
    # A closing quote ends a title ("守好群众“钱袋子”") unless a sentence ends inside it.
    unquoted = (
        stripped.rstrip('”’"」』')
        if stripped[-1:] in '”’"」』' and stripped.rstrip('”’"」』')[-1:] not in _FINAL_PUNCT
        else stripped
    )
    if not 2 <= len(stripped) <= 40 or not unquoted or unquoted[-1] in _FINAL_PUNCT:
        return False
    if _QUESTION.match(stripped) or _SPEAKER.match(stripped):
        return False
    return not any(p in stripped for p in "。！？；!?")


def _clean_title(line: str) -> str:
    line = _MD_HEADING.sub("", line.strip())
    return _ARTICLE_PREFIX.sub("", line).strip()


def find_interviewee(text: str) -> str:
    """The interviewee as the lead paragraphs name them ("市住建局局长xxx"), or ''."""
    best: tuple[int, str] | None = None
    for pattern in _INTERVIEWEE_PATTERNS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            name = re.sub(r"^(?:日前|近日|目前|今天|昨天|同时)[，,]?", "", match.group(1)).strip()
            if name:
                best = (match.start(), name)
    return best[1] if best else ""


def _lines_with_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line's content; a paywall marker splits a line and is left out."""
    spans, pos = [], 0
    for line in text.split("\n"):
        cut = pos
        for marker in [*PAYWALL_MARKER.finditer(line), None]:
            stop = pos + (marker.start() if marker else len(line))
            start, end = cut, stop
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            spans.append((start, end))
            if marker:
                cut = pos + marker.end()
        pos += len(line) + 1
    return spans


def split_articles(
    text: str, source: str, headings: dict[int, int] | set[int] | frozenset = frozenset(), **given
) -> ParsedDocument:
    """Split a document's text into articles of paragraphs, keeping offsets into ``text``.

    ``headings`` (line -> level) are the lines the format marks as headings: when there are any,
    only those of the top level title articles.  ``given`` holds what the format states about
    the whole document (a web page's ``title``, ``date``, ``publisher``; a scan's ``regions``).
    """
    spans = _lines_with_offsets(text)
    lines = [(i, s, e) for i, (s, e) in enumerate(spans) if e > s]
    if not lines:
        raise ParseError(f"{Path(source).name}: no text to index")
    levels = headings if isinstance(headings, dict) else dict.fromkeys(headings, 1)
    top = min(levels.values(), default=0)
    groups = _groups(text, lines, {i for i, level in levels.items() if level == top} if levels else None)
    regions = tuple(given.get("regions", ()))
    doc_title, fallback_title = "", Path(source).stem
    articles: list[Article] = []
    for titles, header, body_ks in groups:
        if len(titles) > 1 and not articles and not doc_title:
            doc_title = "".join(text[lines[k][1] : lines[k][2]].strip() for k in titles[:-1])
        if not body_ks:
            continue
        title = _clean_title(text[lines[titles[-1]][1] : lines[titles[-1]][2]]) if titles else ""
        if not title and not articles and given.get("title"):
            title = given["title"]
        cast = Cast(date=given.get("date", ""), publisher=given.get("publisher", ""))
        credit = header_line(given.get("credit", "")) if given.get("credit") else None
        if credit is not None:
            cast.take(credit)
        for k in header:
            cast.take(header_line(text[lines[k][1] : lines[k][2]]))
        body = [lines[k] for k in body_ks]
        subheads = {i for i, level in levels.items() if level > top}
        paragraphs = _paragraphs(text, body, cast, subheads, regions, given.get("emphasis", frozenset()))
        if not paragraphs:  # only labels ("记者：" alone): nothing said
            continue
        first = titles[0] if titles else (header[0] if header else body_ks[0])
        interviewee = _interviewee(text, paragraphs, cast)
        articles.append(
            Article(
                index=len(articles) + 1,
                title=title or (fallback_title if not articles else f"{fallback_title} ({len(articles) + 1})"),
                interviewee=interviewee,
                start=min(lines[first][1], paragraphs[0].start),
                end=paragraphs[-1].end,
                paragraphs=tuple(_resolved(paragraphs, cast, interviewee)),
                date=cast.date,
                publisher=cast.publisher,
            )
        )
    if not articles:
        raise ParseError(f"{Path(source).name}: no text to index")
    if not doc_title:
        doc_title = articles[0].title if len(articles) == 1 else given.get("title") or fallback_title
    return ParsedDocument(source=source, text=text, articles=tuple(articles), title=doc_title, regions=regions)


def _groups(
    text: str, lines: list[tuple[int, int, int]], marked: set[int] | None
) -> list[tuple[list[int], list[int], list[int]]]:
    """Lines grouped into articles: (title line ks, header line ks, body line ks).

    A title line (a marked heading, or -- in a format without headings -- a short unpunctuated
    line before body text) opens an article once the one before has body text; header lines
    (byline, credits, date, source) belong to the article they stand in, a byline after body
    text opens the next one.  Consecutive titles: the last names the article.
    """
    groups: list[tuple[list[int], list[int], list[int]]] = []
    titles: list[int] = []
    header: list[int] = []
    body: list[int] = []
    for k, (i, s, e) in enumerate(lines):
        line = text[s:e]
        meta = header_line(line)
        if meta is not None:
            if body and meta.byline:
                groups.append((titles, header, body))
                titles, header, body = [], [], []
            header.append(k)
            continue
        is_title = (i in marked) if marked is not None else (_is_title_like(line) and k + 1 < len(lines))
        if is_title:
            if body:
                groups.append((titles, header, body))
                titles, header, body = [], [], []
            titles.append(k)
        else:
            body.append(k)
    groups.append((titles, header, body))
    return groups


def _interviewee(text: str, paragraphs: list[Paragraph], cast: Cast) -> str:
    """Who is interviewed: as the header names them, else as the lead does, else the answering speakers."""
    if cast.interviewees:
        return "、".join(cast.interviewees)
    lead = find_interviewee("".join(text[p.start : p.end] for p in paragraphs[:2]))
    named = [s for s in dict.fromkeys(cast.speakers) if s.lower() not in ANSWER_LABELS]
    if lead and (not named or any(n in lead for n in named)):
        return lead
    return "、".join(named) or lead


def _resolved(paragraphs: list[Paragraph], cast: Cast, interviewee: str) -> list[Paragraph]:
    """Each answer told who gives it, as a citation names them: the interviewee's line when one
    person is interviewed ("答" and "A" are them), that person's own line in a round-table."""
    named = {cast.speaker_for(p.speaker) for p in paragraphs if p.role == "answer" and p.speaker} - {""}
    several = len(cast.interviewees) > 1 or len(named) > 1
    result = []
    for p in paragraphs:
        if p.role == "answer":
            name = cast.speaker_for(p.speaker or "答")
            if not several:
                who = interviewee if not name or name in interviewee else name
            else:
                who = next((v for v in cast.interviewees if name and name in v), name)
            p = dataclasses.replace(p, speaker=who)
        result.append(p)
    return result


def _paragraphs(
    text: str,
    lines: list[tuple[int, int, int]],
    cast: Cast,
    subheads: set[int],
    regions: tuple[Region, ...],
    emphasis: frozenset[int] = frozenset(),
) -> list[Paragraph]:
    """Paragraphs with roles -- a reporter's or host's question, the answer after it, or text --
    each starting where its words do, past label, timestamp and markup (a label alone on its
    line names the speaker of the next)."""
    result: list[Paragraph] = []
    role, speaker, pending = "text", "", None
    for i, start, end in lines:
        line = text[start:end]
        t = turn(line)
        skip = t.bare
        if t.label and cast.asks(t.label):
            role, speaker, skip = "question", t.label, t.skip
        elif t.label and cast.is_speaker(t.label, after_question=role == "question"):
            role, speaker, skip = "answer", t.label, t.skip
            if t.label.lower() not in ANSWER_LABELS:
                cast.speakers.append(t.label)
        elif pending:
            role, speaker = pending
        elif (t.emphasized or i in emphasis) and line.rstrip("*_ ").endswith(("？", "?")):
            role, speaker = "question", ""
        elif role == "question" or (role == "answer" and i not in subheads):
            role = "answer"
        pending = None
        while start + skip < end and text[start + skip] in "*_ 　":
            skip += 1
        if start + skip >= end:  # "王建国：" alone on its line: the next paragraph is theirs
            pending = (role, speaker)
            continue
        if i in subheads and role == "answer":
            role = "text"
        page = next((r.page for r in regions if r.start <= start + skip < r.end), 0)
        result.append(Paragraph(len(result) + 1, start + skip, end, role, speaker if role != "text" else "", page))
    return result


def _signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as e:
        raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
    return stat.st_size, stat.st_mtime_ns


def parse_file(
    path: Path,
    max_bytes: int = MAX_FILE_BYTES,
    attempts: int = 3,
    max_unpacked: int = MAX_UNPACKED_BYTES,
    on_page: PageProgress | None = None,
) -> ParsedDocument:
    """Read and split one file; raises ParseError with a one-line reason.

    A file that changes while it is read (an editor saving, a copy still arriving) is read
    again, so a document is always one whole version of the file, never half of two.
    """
    path = Path(path).resolve()
    for _ in range(attempts):
        before = _signature(path)
        raw = read_file(path, max_bytes, max_unpacked, on_page)
        if _signature(path) == before:
            return split_articles(raw.text, str(path), raw.headings, **raw.stated())
    raise ParseError(f"{path.name}: the file kept changing while it was read; run again once it is saved")
