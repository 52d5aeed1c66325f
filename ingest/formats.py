"""Reading the formats: bytes of text files, .docx and .pdf -> text lines.

Each reader is a library (charset-normalizer, python-docx, pypdf) wrapped so that any
failure on one file -- whatever type the library raises -- becomes that file's one-line
``ParseError``.  Deciding the encoding is partly by hand: UTF-16 without a byte-order mark
and GB18030 misreads are cases charset-normalizer gets wrong on short Chinese files.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import ParseError
from rag.types import Region

log = logging.getLogger(__name__)

MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # the default of RAG_MAX_UNPACKED_MB: the XML a .docx may unpack to


@dataclass(frozen=True)
class Raw:
    """A file read into text, with what its format marks: headings (line -> level), lines set
    in bold, what a web page states of itself, and a scan's lines with their page and box."""

    text: str
    headings: dict[int, int] = field(default_factory=dict)
    emphasis: frozenset[int] = frozenset()
    title: str = ""
    date: str = ""
    publisher: str = ""
    credit: str = ""  # a web page's byline ("本报记者 李明"), which the extractor lifts out of the text
    regions: tuple[Region, ...] = ()

    def stated(self) -> dict:
        """What the format states beside the text, as ``split_articles`` takes it."""
        fields = ("title", "date", "publisher", "credit", "regions", "emphasis")
        return {name: getattr(self, name) for name in fields}


def html_text(html: str, name: str) -> Raw:
    """A saved web page's article, without navigation, ads, related links and footers (trafilatura),
    with the title, date, site and byline the page states."""
    import trafilatura

    from ingest.layout import date_in

    try:
        found = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=True)
    except Exception as e:  # lxml and trafilatura raise many types for broken pages: each is one reason
        raise ParseError(f"{name}: cannot read this web page ({e.__class__.__name__})") from e
    text = (found.text if found is not None else "") or ""
    if text.count("\n") < 2:
        # Short pages come back as one run-on line; the recall setting keeps their paragraphs.
        fuller = trafilatura.extract(html, favor_recall=True, include_comments=False) or ""
        text = fuller if fuller.count("\n") > text.count("\n") else text
    if not text.strip():
        raise ParseError(f"{name}: no article text found in the web page")
    return Raw(
        text,
        title=(found.title or "").strip(),
        date=date_in(found.date or ""),
        publisher=(found.sitename or "").strip(),
        credit=(found.author or "").strip(),
    )


def decode_text(data: bytes, name: str) -> str:
    """Decode the bytes of a text file, or raise ParseError when they are not text.

    UTF-8 (with or without BOM) is tried strictly first; then GB18030, the superset of
    GBK and GB2312 that Chinese files come in, accepted only when the result reads as
    Chinese; then charset-normalizer for anything else.  A result that does not look like
    text is refused rather than ingested as mojibake.
    """
    if not data.strip():
        raise ParseError(f"{name}: the file is empty")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as e:
                raise ParseError(f"{name}: marked as {encoding.upper()} but not valid {encoding.upper()}") from e
    if b"\x00" in data[:8192]:
        text = _utf16_without_bom(data)
        if text is None:
            raise ParseError(f"{name}: binary content, not a text file")
        return text
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        if _looks_like_text(text, chinese=True):
            return text
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        text = str(best)
        if _looks_like_text(text, chinese=False):
            return text
    raise ParseError(f"{name}: cannot tell the text encoding; save the file as UTF-8")


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text saved without a byte-order mark, or None.

    Its ASCII characters (newlines, digits) hold one zero byte each: at odd offsets in
    little-endian, at even ones in big-endian -- that tells the byte order.
    """
    if len(data) % 2:
        return None
    sample = data[:65536]
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    encoding = "utf-16-le" if odd > even else "utf-16-be"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    return text if "\x00" not in text and _looks_like_text(text, chinese=False) else None


def _looks_like_text(text: str, chinese: bool) -> bool:
    sample = text[:20000]
    if not sample:
        return False
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\r\n\t")
    if controls / len(sample) > 0.01:
        return False
    if not chinese:
        return True
    cjk = [c for c in sample if "\u4e00" <= c <= "\u9fff"]
    if not cjk:
        return False
    # Text misread as GB18030 lands on rare characters; real Chinese is mostly GB2312.
    common = 0
    for c in cjk:
        try:
            c.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common / len(cjk) >= 0.9


def docx_text(path: Path, max_unpacked: int = MAX_UNPACKED_BYTES) -> Raw:
    """A .docx as lines: its Title and Heading styles marked with their level, bold paragraphs marked."""
    import docx

    try:
        with zipfile.ZipFile(path) as archive:
            # Every part counts, whatever its name: [Content_Types].xml may name any part the main
            # document, which python-docx then parses into memory.  Pictures are stored about as
            # large as they unpack, so a genuine file stays under RAG_MAX_FILE_MB of them.
            unpacked = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ParseError(f"{path.name}: not a valid .docx file ({e.__class__.__name__})") from e
    if unpacked > max_unpacked:
        raise ParseError(
            f"{path.name}: it unpacks to {unpacked / 2**20:.0f} MB, over the "
            f"{max_unpacked / 2**20:.0f} MB limit (RAG_MAX_UNPACKED_MB; refused as a possible zip bomb)"
        )
    try:
        document = docx.Document(str(path))
        lines: list[str] = []
        headings: dict[int, int] = {}
        emphasis: set[int] = set()
        _docx_blocks(document, lines, headings, emphasis)
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise ParseError(f"{path.name}: not a valid .docx file ({e.__class__.__name__})") from e
    except Exception as e:  # python-docx, lxml and zipfile raise many types for broken files: each is one reason
        if "depth" in str(e).lower():
            raise ParseError(f"{path.name}: nested too deeply to read (over 256 levels of XML)") from e
        raise ParseError(f"{path.name}: cannot read this .docx file ({e.__class__.__name__})") from e
    return Raw("\n".join(lines), headings, frozenset(emphasis))


def _docx_blocks(container, lines: list[str], headings: dict[int, int], emphasis: set[int]) -> None:
    """Paragraphs and tables in document order; a table nested in a cell is read where it stands."""
    from docx.table import Table

    for block in container.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = list(dict.fromkeys(row.cells))  # a merged cell appears once per column it spans
                if any(cell.tables for cell in cells):
                    for cell in cells:
                        _docx_blocks(cell, lines, headings, emphasis)
                else:
                    lines.append(" | ".join(cell.text.strip() for cell in cells))
            continue
        style = (block.style.name if block.style is not None else "") or ""
        if style.startswith(("Heading", "Title")) and block.text.strip():
            level = style.removeprefix("Heading").strip()
            headings[len(lines)] = int(level) if level.isdigit() else 0
        elif _bold(block):
            emphasis.add(len(lines))
        lines.append(block.text)


def _bold(paragraph) -> bool:
    """Whether every run with text in a paragraph is bold (by the run or its style)."""
    runs = [r for r in paragraph.runs if r.text.strip()]
    style_bold = bool(paragraph.style is not None and paragraph.style.font.bold)
    return bool(runs) and all(r.bold or (r.bold is None and style_bold) for r in runs)


class Collected(logging.Handler):
    """Keeps the messages logged while one file is read (pypdf warns once per broken object)."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def pdf_pages(path: Path) -> list[str]:
    """The text of each page of a PDF; raises ParseError with a one-line reason."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    pypdf_log = logging.getLogger("pypdf")
    collected = Collected()
    pypdf_log.addHandler(collected)
    propagate, pypdf_log.propagate = pypdf_log.propagate, False
    try:
        with warnings.catch_warnings(record=True) as warned:  # PdfReadWarning: to the log, not the terminal
            warnings.simplefilter("always")
            reader = PdfReader(str(path))
            pages = [page.extract_text() or "" for page in reader.pages]
        collected.messages += [str(w.message) for w in warned]
    except FileNotDecryptedError as e:
        raise ParseError(f"{path.name}: the PDF is protected by a password; save an unprotected copy") from e
    except RecursionError as e:
        raise ParseError(f"{path.name}: cannot read this PDF (its objects nest too deeply)") from e
    except Exception as e:  # pypdf raises many types for broken files (LimitReachedError, DependencyError, ...)
        raise ParseError(f"{path.name}: cannot read this PDF ({e.__class__.__name__}: {str(e)[:120]})") from e
    finally:
        pypdf_log.removeHandler(collected)
        pypdf_log.propagate = propagate
        if collected.messages:
            log.info(
                "%s: pypdf reported %d problems, the first: %s",
                path.name,
                len(collected.messages),
                collected.messages[0],
            )
    return pages
