"""Files -> text -> articles and paragraphs with character offsets.

Reading formats is ``ingest.formats`` (libraries, each failure one line).  Splitting
a collection file into articles is hand-written because it rests on conventions of the
material itself: short unpunctuated title lines, ``篇N：`` prefixes, ``记者：`` questions
followed by ``xx：`` answers, and paywall markers that must never reach a chunk.
"""

from __future__ import annotations

import re
from pathlib import Path

from ingest.formats import MAX_UNPACKED_BYTES, decode_text, docx_lines, pdf_pages
from rag.errors import ParseError
from rag.types import Article, Paragraph, ParsedDocument

SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf")
MAX_FILE_BYTES = 20 * 1024 * 1024  # the default of RAG_MAX_FILE_MB
PAYWALL_MARKER = re.compile(r"##paid(?:begin|end)##")
_ARTICLE_PREFIX = re.compile(r"^\s*篇\s*[0-9一二三四五六七八九十]+\s*[：:]\s*")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_QUESTION = re.compile(r"^\s*(记者|问|主持人|Q)\s*[：:]")
_SPEAKER = re.compile(r"^\s*([^\s，,。：:“”]{1,8})\s*[：:]")
_FINAL_PUNCT = '。！？；：…!?;:，,、”’"】」』'
_INTERVIEWEE_PATTERNS = (
    re.compile(r"专访了([^，,。“”]{2,40}?)[。，,]"),
    re.compile(r"对([^，,。“”]{2,40}?)进行了(?:专题)?(?:访谈|专访|采访)"),
    re.compile(r"([^，,。“”：:]{2,40}?)在接受(?:本报)?记者(?:专访|采访)"),
    re.compile(r"([^，,。“”：:]{2,40}?)(?:表示|介绍说|说)[，,：:]"),
)


def _pdf_lines(path: Path) -> list[str]:
    pages = pdf_pages(path)
    if not "".join(pages).strip():
        raise ParseError(f"{path.name}: the PDF has no text layer (a scan?); run OCR on it first")
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
    path: Path, max_bytes: int = MAX_FILE_BYTES, max_unpacked: int = MAX_UNPACKED_BYTES
) -> tuple[str, set[int]]:
    """Read a supported file into text; also return the line numbers known to be headings."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(f"{path.name}: unsupported file type {suffix or '(none)'}; use .txt, .md, .docx or .pdf")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
    if size > max_bytes:
        raise ParseError(
            f"{path.name}: {size / 2**20:.1f} MB is over the {max_bytes // 2**20} MB limit per file; "
            "split it, or raise RAG_MAX_FILE_MB"
        )
    if suffix == ".docx":
        lines, headings = docx_lines(path, max_unpacked)
        text = "\n".join(lines)
    elif suffix == ".pdf":
        text, headings = "\n".join(_pdf_lines(path)), set()
    else:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
        text = decode_text(data, path.name)
        headings = set()
        if suffix == ".md":
            headings = {i for i, line in enumerate(text.splitlines()) if _MD_HEADING.match(line)}
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not PAYWALL_MARKER.sub("", text).strip():
        raise ParseError(f"{path.name}: no text to index")
    return text, headings


def _is_title_like(line: str) -> bool:
    stripped = line.strip()
    if _ARTICLE_PREFIX.match(stripped) or _MD_HEADING.match(stripped):
        return True
    if not 2 <= len(stripped) <= 40 or stripped[-1] in _FINAL_PUNCT:
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


def split_articles(text: str, source: str, headings: set[int] | frozenset = frozenset()) -> ParsedDocument:
    """Split a document's text into articles of paragraphs, keeping offsets into ``text``."""
    spans = _lines_with_offsets(text)
    lines = [(i, s, e) for i, (s, e) in enumerate(spans) if e > s]
    if not lines:
        raise ParseError(f"{Path(source).name}: no text to index")

    def titled(k: int) -> bool:
        i, s, e = lines[k]
        if i in headings:
            return True
        # A title stands before body text; a short last line is a closing remark.
        return _is_title_like(text[s:e]) and k + 1 < len(lines)

    # Consecutive title lines: the last names the article, the ones before it the document.
    groups: list[tuple[list[int], list[int]]] = []  # (title line ks, body line ks)
    k = 0
    while k < len(lines):
        title_ks = []
        while k < len(lines) and titled(k):
            title_ks.append(k)
            k += 1
        body_ks = []
        while k < len(lines) and not titled(k):
            body_ks.append(k)
            k += 1
        groups.append((title_ks, body_ks))

    doc_title = ""
    fallback_title = Path(source).stem
    articles: list[Article] = []
    for title_ks, body_ks in groups:
        if len(title_ks) > 1 and not articles and not doc_title:
            doc_title = "".join(text[lines[k][1] : lines[k][2]].strip() for k in title_ks[:-1])
        title = _clean_title(text[lines[title_ks[-1]][1] : lines[title_ks[-1]][2]]) if title_ks else ""
        if not body_ks:
            continue
        paragraphs = _paragraphs(text, [lines[k] for k in body_ks])
        lead = "".join(text[p.start : p.end] for p in paragraphs[:2])
        articles.append(
            Article(
                index=len(articles) + 1,
                title=title or (fallback_title if not articles else f"{fallback_title} ({len(articles) + 1})"),
                interviewee=find_interviewee(lead),
                start=lines[title_ks[0]][1] if title_ks else paragraphs[0].start,
                end=paragraphs[-1].end,
                paragraphs=tuple(paragraphs),
            )
        )
    if not doc_title:
        doc_title = articles[0].title if len(articles) == 1 else fallback_title
    return ParsedDocument(source=source, text=text, articles=tuple(articles), title=doc_title)


def _paragraphs(text: str, lines: list[tuple[int, int, int]]) -> list[Paragraph]:
    """Paragraphs with roles: a reporter's question, the answer paragraphs after it, or text."""
    result, role, speaker = [], "text", ""
    for number, (_, start, end) in enumerate(lines, 1):
        line = text[start:end]
        question = _QUESTION.match(line)
        if question:
            role, speaker = "question", question.group(1)
        elif role in ("question", "answer"):
            named = _SPEAKER.match(line)
            if role == "question":
                speaker = named.group(1) if named else ""
            elif named:
                speaker = named.group(1)
            role = "answer"
        result.append(Paragraph(number=number, start=start, end=end, role=role, speaker=speaker))
    return result


def _signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as e:
        raise ParseError(f"{path.name}: cannot read the file ({e.strerror})") from e
    return stat.st_size, stat.st_mtime_ns


def parse_file(
    path: Path, max_bytes: int = MAX_FILE_BYTES, attempts: int = 3, max_unpacked: int = MAX_UNPACKED_BYTES
) -> ParsedDocument:
    """Read and split one file; raises ParseError with a one-line reason.

    A file that changes while it is read (an editor saving, a copy still arriving) is read
    again, so a document is always one whole version of the file, never half of two.
    """
    path = Path(path).resolve()
    for _ in range(attempts):
        before = _signature(path)
        text, headings = read_file(path, max_bytes, max_unpacked)
        if _signature(path) == before:
            return split_articles(text, str(path), headings)
    raise ParseError(f"{path.name}: the file kept changing while it was read; run again once it is saved")
