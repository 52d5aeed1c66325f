"""What each layout yields, and how fast and how well scans are read.

    python -m bench.formats [--pages 6]

Part one reads the layouts corpus (tests/data/formats.json) and prints, per file, whether its
title, interviewee(s), date and publisher came out as expected, how many reporter's questions
and answers were told apart, and whether any paragraph starts with a label.  Part two renders
``--pages`` A4 pages of the bundled collection's text with a Noto CJK font, reads them back by
OCR and prints pages per second and character accuracy.  Run from the repository's root.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

LABELLED = re.compile(r"^(?:[\[【(（]?\d{1,2}:\d{2}|[*_#>]|(?:记者|问|答|Q|A|主持人|[\u4e00-\u9fff]{2,4})\s*[:：])")


def layouts(folder: Path) -> list[str]:
    """One line per article of the layouts corpus: what was recognised."""
    from ingest.parse import parse_file
    from tests.formats import MANIFEST, build

    build(folder)
    rows = [
        "| file | title | interviewee | date | publisher | questions / answers | label-free |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in MANIFEST["files"]:
        doc = parse_file(folder / entry["file"])
        for article, expected in zip(doc.articles, entry["articles"]):
            roles = [p.role for p in article.paragraphs]
            clean = not any(LABELLED.match(doc.text[p.start : p.end]) for p in article.paragraphs)
            rows.append(
                f"| {entry['file']} | {_mark(''.join(article.title.split()) == ''.join(expected['title'].split()))}"
                f" | {_mark(all(n in article.interviewee for n in expected['interviewees']))}"
                f" | {_mark(article.date == expected.get('date', ''))} {article.date}"
                f" | {_mark(article.publisher == expected.get('publisher', ''))} {article.publisher}"
                f" | {roles.count('question')} / {roles.count('answer')} | {_mark(clean)} |"
            )
    return rows


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def ocr(pages: int) -> str:
    """Pages of the bundled collection rendered and read back: speed and character accuracy."""
    from ingest.pipeline import BUNDLED_COLLECTION
    from ingest.scans import _engine, read_pages
    from tests.formats import character_accuracy, render_pages

    text = BUNDLED_COLLECTION.read_text(encoding="utf-8").replace("##paidbegin##", "").replace("##paidend##", "")
    # from the second article on: the first prints ASCII commas between Chinese characters, which
    # the reader gives as the full-width marks Chinese text prints (ingest.scans._as_printed)
    lines = [line for line in text.splitlines() if line.strip()]
    lines = lines[next(i for i, line in enumerate(lines) if len(line) > 60 and "，" in line) :]
    # about 700 characters a page at the size rendered
    chosen, total = [], 0
    for line in lines:
        if total > 700 * pages:
            break
        chosen.append(line)
        total += len(line)
    images = render_pages(chosen, pages)
    _engine()  # loading the models is not reading
    began = time.perf_counter()
    read, _ = read_pages(images)
    seconds = time.perf_counter() - began
    accuracy = character_accuracy("".join(chosen), read)
    words = character_accuracy(_words("".join(chosen)), _words(read))
    return (
        f"OCR: {pages} rendered A4 pages ({total} characters) in {seconds:.1f} s = {pages / seconds:.2f} pages/s; "
        f"character accuracy {accuracy:.4f} (letters, digits and Chinese characters only: {words:.4f})"
    )


def _words(text: str) -> str:
    return "".join(re.findall(r"[0-9A-Za-z\u4e00-\u9fff]", text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=6, help="pages to render and read by OCR")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        print("\n".join(layouts(Path(folder))))
    print(ocr(args.pages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
