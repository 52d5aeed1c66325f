"""Hostile files for the reader's tests and figures: fuzzed PDFs and .docx, inflating streams, slow XML.

python -m bench.hostile fuzz --per-format 1000 --seed 7   # how many fuzzed files each outcome gets
python -m bench.hostile docx --megabytes 125              # time and memory of a .docx of that much XML
python -m bench.hostile logins --tries 30                 # wrong passwords against a real page: how long they take
(needs reportlab: pip install -e '.[test]')
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

SAMPLE = "科技局长谈创新\n记者：量子实验室什么时候建成？\n局长：量子计算实验室将于x月底前建成投用。\n"


def pdf_bytes(text: str = "Interview with the director. We cut approval time to five working days.") -> bytes:
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    c = canvas.Canvas(buffer)
    c.drawString(72, 720, text)
    c.save()
    return buffer.getvalue()


def docx_bytes(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def inflating_pdf(megabytes: int) -> bytes:
    """A one-page PDF whose content stream inflates to ``megabytes`` MB (a few hundred KB on disk)."""
    stream = zlib.compress(b"BT /F1 12 Tf 72 720 Td (bomb) Tj ET\n" + b" " * (megabytes * 2**20), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A seeded corruption: flipped bytes, a cut, a duplicated or dropped span."""
    out = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 40)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 1:
        del out[rng.randrange(len(out) // 4, len(out)) :]
    elif kind == 2:
        i, j = sorted(rng.sample(range(len(out)), 2))
        out[i:i] = out[i:j][:5000]
    else:
        i = rng.randrange(len(out))
        del out[i : i + rng.randint(1, 2000)]
    return bytes(out)


def slow_docx(path: Path, megabytes: int) -> None:
    """A .docx of ``megabytes`` MB of XML in many small paragraphs (a few hundred KB zipped)."""
    paragraph = "<w:p><w:r><w:t>营商环境持续优化审批时限压缩</w:t></w:r></w:p>"
    body = paragraph * (megabytes * 2**20 // len(paragraph.encode()))
    template = zipfile.ZipFile(io.BytesIO(docx_bytes(["x"])))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for item in template.infolist():
            data = template.read(item.filename)
            if item.filename == "word/document.xml":
                head, _, tail = data.decode().partition("<w:body>")
                data = (head + "<w:body>" + body + tail.split("</w:p>", 1)[1]).encode()
            z.writestr(item.filename, data)


def fuzz(per_format: int, seed: int) -> None:
    """Read ``per_format`` mutated PDFs and .docx files; every one must end read or refused with one line."""
    from ingest.files import FileOutcome
    from ingest.pipeline import read_files
    from rag.config import Settings

    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp())
    seeds = {
        ".pdf": pdf_bytes("审批时限压缩到5个工作日以内。 Approval within five days."),
        ".docx": docx_bytes(SAMPLE.split("\n")),
    }
    files = []
    for suffix, data in seeds.items():
        for i in range(per_format):
            path = folder / f"f{i:04d}{suffix}"
            path.write_bytes(mutate(data, rng))
            files.append(path)
    began = time.perf_counter()
    results = [result for _, result in read_files(files, Settings(home=folder / "home"))]
    failed = [r for r in results if isinstance(r, FileOutcome)]
    parsed = [r for r in results if not isinstance(r, FileOutcome)]
    reasons = Counter(f.reason.split(": ", 1)[1][:60] for f in failed)
    print(
        f"{len(files)} fuzzed files: {len(parsed)} read, {len(failed)} refused with one line, "
        f"{len(files) - len(parsed) - len(failed)} unaccounted; {time.perf_counter() - began:.1f} s"
    )
    for reason, n in reasons.most_common(8):
        print(f"  {n:5d}  {reason}")


def docx_budget(megabytes: int, unpacked_mb: int, parse_seconds: int) -> None:
    """Read a .docx of ``megabytes`` MB of XML under the given budget; print time, memory and outcome."""
    from ingest.budget import read_document
    from rag.config import Settings

    path = Path(tempfile.mkdtemp()) / "crafted.docx"
    slow_docx(path, megabytes)
    settings = Settings(home=path.parent / "home", max_unpacked_mb=unpacked_mb, parse_seconds=parse_seconds)
    began = time.perf_counter()
    try:
        outcome = f"read, {len(read_document(path, settings).text):,} characters"
    except Exception as e:  # the point is to print whatever happens
        outcome = str(e)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"{path.stat().st_size / 2**20:.2f} MB .docx, {megabytes} MB of XML: {time.perf_counter() - began:.1f} s, "
        f"peak memory {own:.0f} MB here, {worker:.0f} MB in the worker: {outcome}"
    )


def logins(tries: int) -> None:
    """Start a page with a password; time ``tries`` wrong logins, then the right one."""
    import httpx

    from bench.server import start_page

    password = "right-" + str(random.random())
    proc, url = start_page(env={"RAG_UI_AUTH": f"admin:{password}", "RAG_HOME": tempfile.mkdtemp()})
    try:
        began, statuses = time.perf_counter(), Counter()
        for i in range(tries):
            statuses[
                httpx.post(url + "login", data={"username": "admin", "password": f"guess{i}"}, timeout=60).status_code
            ] += 1
        wrong = time.perf_counter() - began
        began = time.perf_counter()
        right = httpx.post(url + "login", data={"username": "admin", "password": password}, timeout=60).status_code
        print(
            f"{tries} wrong logins: {wrong:.1f} s, statuses {dict(statuses)}; "
            f"then the right one: {right} in {time.perf_counter() - began:.2f} s"
        )
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fuzz")
    p.add_argument("--per-format", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p = sub.add_parser("docx")
    p.add_argument("--megabytes", type=int, default=125)
    p.add_argument("--unpacked-mb", type=int, default=64, help="RAG_MAX_UNPACKED_MB")
    p.add_argument("--parse-seconds", type=int, default=120, help="RAG_PARSE_SECONDS")
    p = sub.add_parser("logins")
    p.add_argument("--tries", type=int, default=30)
    args = parser.parse_args()
    if args.command == "fuzz":
        fuzz(args.per_format, args.seed)
    elif args.command == "docx":
        docx_budget(args.megabytes, args.unpacked_mb, args.parse_seconds)
    else:
        logins(args.tries)


if __name__ == "__main__":
    main()
