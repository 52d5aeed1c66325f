"""Scans: image files and image-only PDF pages read by OCR, offline, on the CPU.

RapidOCR runs PP-OCRv4's Chinese detection and recognition models, shipped inside its wheel
(nothing is downloaded).  It returns lines with their boxes; joining lines into paragraphs is
written here, from the boxes: a line that reaches the column's right edge continues in the
next, a short line, an indented one or a wider gap ends a paragraph.  The OCR text is the
document's text; each line keeps its page and box (``Region``), so a quote can say which page
it stands on and the page can show the scanned line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from rag.errors import ParseError
from rag.types import Region

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
RENDER_SCALE = 2.0  # PDF pages rendered at 144 dpi: small print stays legible to the recogniser
MIN_CONFIDENCE = 0.5  # lines read with less are noise (a stain, a fold), not text
_ASCII_PUNCT = {",": "，", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
_CJK = r"[\u4e00-\u9fff]"
# A half-width mark the recogniser reads between Chinese characters stands for the full-width one printed.
_MISREAD = re.compile(rf"(?<={_CJK})([,:;?!()])|([,:;?!()])(?={_CJK})")

# What one page reports while a scan is read: (pages done, pages in all).
PageProgress = Callable[[int, int], None]


@lru_cache(maxsize=1)
def _engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:  # pragma: no cover - installed with the package
        raise ParseError("reading scans needs rapidocr-onnxruntime: pip install rapidocr-onnxruntime") from e
    return RapidOCR()


def ocr_lines(image) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(text, box) of each line the recogniser reads on one page image, in reading order."""
    import numpy as np

    result, _ = _engine()(np.asarray(image.convert("RGB")))
    lines = []
    for points, text, confidence in result or []:
        if float(confidence) < MIN_CONFIDENCE or not text.strip():
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        box = (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))
        lines.append((_as_printed(text.strip()), box))
    lines.sort(key=lambda line: (line[1][1] + line[1][3]) / 2)  # top to bottom (one column)
    return lines


def _as_printed(text: str) -> str:
    """Punctuation as a Chinese page prints it: the recogniser reads full-width marks between
    Chinese characters as their ASCII look-alikes, and curly quotes as straight ones."""
    return _MISREAD.sub(lambda m: _ASCII_PUNCT[m.group(1) or m.group(2)], text)


def _quotes_paired(paragraph: str) -> str:
    """Double quotes in a Chinese paragraph opened and closed in turn: the recogniser gives “ or "
    for either side."""
    if not re.search(_CJK, paragraph):
        return paragraph
    marks = iter("“”" * len(paragraph))
    return re.sub('["“”]', lambda _: next(marks), paragraph)


def _continues(before: tuple[str, tuple], after: tuple[str, tuple], left: int, right: int) -> bool:
    """Whether ``after`` goes on with the paragraph of ``before`` (on one page)."""
    (_, (_, top1, right1, bottom1)), (_, (left2, top2, _, bottom2)) = before, after
    height = max(1, bottom1 - top1)
    full_width = right1 >= right - 1.5 * height
    indented = left2 > left + 1.2 * height
    gap = top2 - bottom1
    return full_width and not indented and gap < 1.2 * height and (bottom2 - top2) < 1.6 * height


def read_pages(images, on_page: PageProgress | None = None) -> tuple[str, tuple[Region, ...]]:
    """The text of page images, paragraph by paragraph, with every line's region."""
    pieces: list[str] = []
    regions: list[Region] = []
    at = 0
    total = len(images)
    for number, image in enumerate(images, 1):
        lines = ocr_lines(image)
        left = min((box[0] for _, box in lines), default=0)
        right = max((box[2] for _, box in lines), default=0)
        for k, (text, box) in enumerate(lines):
            joined = k > 0 and _continues(lines[k - 1], lines[k], left, right)
            if pieces and not joined:
                pieces.append("\n")
                at += 1
            elif joined and re.search(r"[A-Za-z0-9]$", pieces[-1]) and re.match(r"[A-Za-z]", text):
                pieces.append(" ")
                at += 1
            pieces.append(text)
            regions.append(Region(at, at + len(text), number, box))
            at += len(text)
        if on_page:
            on_page(number, total)
    # paired per paragraph (a quote never spans two); the lengths do not change, so the regions hold
    return "\n".join(_quotes_paired(p) for p in "".join(pieces).split("\n")), tuple(regions)


def image_text(path: Path, on_page: PageProgress | None = None):
    """An image file (a scanned page, or each frame of a multi-page TIFF) read by OCR."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    from ingest.formats import Raw

    try:
        with Image.open(path) as image:
            frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ParseError(f"{path.name}: not a readable image ({e.__class__.__name__})") from e
    text, regions = read_pages(frames, on_page)
    if not text.strip():
        raise ParseError(f"{path.name}: no text could be read from the image")
    return Raw(text, regions=regions)


def page_images(path: Path, numbers: list[int] | None = None) -> list:
    """Pages of a PDF rendered as images (1-based ``numbers``; all pages when None)."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
        wanted = numbers or list(range(1, len(pdf) + 1))
        return [pdf[n - 1].render(scale=RENDER_SCALE).to_pil() for n in wanted]
    except pdfium.PdfiumError as e:
        raise ParseError(f"{path.name}: cannot render this PDF's pages ({str(e)[:80]})") from e


def pdf_scan(path: Path, layer: list[str], on_page: PageProgress | None = None):
    """A PDF with pages that hold no text layer: those pages read by OCR, the others as they are."""
    from ingest.formats import Raw

    pieces: list[str] = []
    regions: list[Region] = []
    at = 0
    for number, page_text in enumerate(layer, 1):
        if page_text.strip():
            text, found = page_text.strip(), ()
        else:
            text, found = read_pages(page_images(path, [number]))
            found = tuple(Region(r.start, r.end, number, r.box) for r in found)
        if on_page:
            on_page(number, len(layer))
        if not text:
            continue
        if pieces:
            pieces.append("\n")
            at += 1
        pieces.append(text)
        regions += [Region(r.start + at, r.end + at, r.page, r.box) for r in found]
        at += len(text)
    if not "".join(pieces).strip():
        raise ParseError(f"{path.name}: no text layer, and OCR found no text on its pages")
    return Raw("".join(pieces), regions=tuple(regions))


def line_image(path: Path, region: Region):
    """The scanned line of ``region``, cut from its page with a margin and marked, or None when the
    file is gone or unreadable."""
    from PIL import Image, ImageDraw

    try:
        if path.suffix.lower() == ".pdf":
            page = page_images(path, [region.page])[0]
        else:
            with Image.open(path) as image:
                image.seek(region.page - 1)
                page = image.convert("RGB")
    except (OSError, ValueError, EOFError, ParseError):
        return None
    left, top, right, bottom = region.box
    margin = bottom - top
    x, y = max(0, left - margin), max(0, top - margin)
    crop = page.crop((x, y, right + margin, bottom + margin)).convert("RGB")
    ImageDraw.Draw(crop).rectangle((left - x, top - y, right - x, bottom - y), outline=(220, 40, 40), width=3)
    return crop
