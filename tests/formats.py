"""The layouts corpus (tests/data/formats/ and tests/data/formats.json) made ready in a folder:
its text files copied, its Word files, PDF and scans built from the lines the manifest gives.

Scans are rendered with a Noto CJK font from Debian's fonts-noto-cjk (which .ci/run installs)
onto a white A4 page at 150 dpi, the way a flatbed scanner gives them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "formats.json").read_text(encoding="utf-8"))
FONT_FOLDERS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto", "/usr/share/fonts")
PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 110
FONT_SIZE = 30


def cjk_font() -> Path:
    """A Noto CJK font file; raises when none is installed (apt-get install fonts-noto-cjk)."""
    for folder in FONT_FOLDERS:
        for name in ("NotoSerifCJK-Regular.ttc", "NotoSansCJK-Regular.ttc"):
            found = sorted(Path(folder).rglob(name)) if Path(folder).exists() else []
            if found:
                return found[0]
    raise FileNotFoundError("no Noto CJK font: apt-get install fonts-noto-cjk")


def build(folder: Path) -> Path:
    """The whole corpus in ``folder``: the stored files and the built ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (DATA / "formats").iterdir():
        shutil.copy(path, folder / path.name)
    for entry in MANIFEST["files"]:
        kind = entry.get("build")
        target = folder / entry["file"]
        if kind == "docx":
            _docx(target, entry["lines"])
        elif kind == "pdf":
            _pdf(target, entry["lines"])
        elif kind == "scan":
            pages = render_pages(entry["lines"], entry.get("pages", 1))
            if target.suffix == ".pdf":
                pages[0].save(target, save_all=True, append_images=pages[1:], resolution=150)
            else:
                pages[0].save(target)
    return folder


def _docx(target: Path, lines: list[list[str]]) -> None:
    import docx

    document = docx.Document()
    for style, text in lines:
        if style == "bold":
            document.add_paragraph().add_run(text).bold = True
        else:
            document.add_paragraph(text, style=style)
    document.save(str(target))


def _pdf(target: Path, lines: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(target), pagesize=A4)
    y = A4[1] - 72
    for line in lines:
        for piece in _wrap(line, lambda s: pdfmetrics.stringWidth(s, "STSong-Light", 12), A4[0] - 144):
            c.setFont("STSong-Light", 12)
            c.drawString(72, y, piece)
            y -= 18
        y -= 8
    c.save()


def _wrap(text: str, width_of, width: float) -> list[str]:
    lines, current = [], ""
    for ch in text:
        if current and width_of(current + ch) > width:
            lines.append(current)
            current = ""
        current += ch
    return [*lines, current] if current else lines


def render_pages(lines: list[str], pages: int = 1) -> list:
    """``lines`` (paragraphs) typeset onto ``pages`` page images, split evenly between them."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(cjk_font()), FONT_SIZE)
    per_page = -(-len(lines) // pages)
    images = []
    for p in range(pages):
        image = Image.new("L", PAGE, 255)
        draw = ImageDraw.Draw(image)
        y = MARGIN
        for paragraph in lines[p * per_page : (p + 1) * per_page]:
            for piece in _wrap(paragraph, font.getlength, PAGE[0] - 2 * MARGIN):
                draw.text((MARGIN, y), piece, font=font, fill=0)
                y += int(FONT_SIZE * 1.6)
            y += FONT_SIZE
        images.append(image)
    return images


def character_accuracy(truth: str, read: str) -> float:
    """1 - (edit distance / length of ``truth``), whitespace ignored."""
    a, b = "".join(truth.split()), "".join(read.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1 - previous[-1] / max(1, len(a))
