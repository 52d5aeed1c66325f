"""``python -m bench.ingest``: ingestion timings of the bundled collection, each in a fresh process.

Cold start: a new RAG_HOME and an empty model cache (the model is converted, then loaded).
Warm model: a new RAG_HOME, the converted model already cached.  Re-ingest: the same
RAG_HOME again, nothing changed.  Peak memory is the largest resident size of the runs.
``--large MB``: instead, read and chunk a text file of that many megabytes (the collection
repeated), in a fresh process, without embedding it.  ``--edit MB``: ingest a file of that
many megabytes with a stand-in embedder, add one sentence in its middle, ingest again: what
an edit costs (texts embedded again, chunks rewritten in Chroma, seconds).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(home: Path, cache: Path) -> tuple[float, float]:
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ui.cli", "ingest", "--quiet"], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - began
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def chunk_timings(path: Path) -> str:
    """Read and chunk ``path``; one Markdown row of seconds, chunks and peak memory (run in a fresh process)."""
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file

    began = time.perf_counter()
    doc = parse_file(path, max_bytes=path.stat().st_size + 1)
    parsed = time.perf_counter()
    chunks = chunk_document(doc)
    done = time.perf_counter()
    return (
        f"| {path.stat().st_size / 2**20:.1f} MB | {parsed - began:.1f} | {done - parsed:.1f} | {len(chunks):,} "
        f"| {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} |"
    )


def large(megabytes: float) -> int:
    from ingest.pipeline import BUNDLED_COLLECTION

    unit = BUNDLED_COLLECTION.read_text(encoding="utf-8") + "\n"
    copies = int(megabytes * 2**20 / len(unit.encode("utf-8"))) + 1
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        path = Path(tmp) / "large.txt"
        path.write_text(unit * copies, encoding="utf-8")
        print("| file | parse s | chunk s | chunks | peak memory (MB) |")
        print("|---|---|---|---|---|")
        subprocess.run([sys.executable, "-m", "bench.ingest", "--chunk-only", str(path)], check=True)
    return 0


class _CountingStandIn:
    """A deterministic stand-in for the model (a hash of the text): counts what would be embedded."""

    def __init__(self) -> None:
        self.texts = 0

    def _vector(self, text: str) -> list[float]:
        import hashlib

        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return [b / 255 for b in digest[:32]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def edit_cost(megabytes: float) -> int:
    from ingest.pipeline import BUNDLED_COLLECTION, ingest
    from rag.config import Settings

    unit = BUNDLED_COLLECTION.read_text(encoding="utf-8")
    parts, size = [], 0
    while size < megabytes * 2**20:  # numbered copies, so no two chunks are the same text
        parts.append(unit.replace("xx", f"第{len(parts)}号"))
        size += len(parts[-1].encode("utf-8"))
    text = "\n".join(parts)
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        path, settings, model = Path(tmp) / "archive.txt", Settings(home=Path(tmp) / "home"), _CountingStandIn()
        path.write_text(text, encoding="utf-8")
        print("| run | chunks added | deleted | unchanged | of them moved | texts embedded | seconds |")
        print("|---|---|---|---|---|---|---|")
        for name in ("first ingest", "one sentence added in the middle"):
            model.texts, began = 0, time.perf_counter()
            report = ingest([path], settings, embedder=model)
            print(
                f"| {name} ({path.stat().st_size / 2**20:.2f} MB) | {report.added:,} | {report.deleted:,} "
                f"| {report.unchanged:,} | {sum(f.moved for f in report.files):,} | {model.texts:,} "
                f"| {time.perf_counter() - began:.1f} |"
            )
            at = text.index("。", len(text) // 2) + 1
            path.write_text(text[:at] + "这是新加的一句话。" + text[at:], encoding="utf-8")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--edit":
        return edit_cost(float(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--large":
        return large(float(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--chunk-only":  # the fresh process ``large`` starts
        print(chunk_timings(Path(sys.argv[2])))
        return 0
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        tmp = Path(tmp)
        rows = [
            (
                "cold start (convert + load model, embed 38 chunks and 149 sentences)",
                *_run(tmp / "home1", tmp / "models"),
            ),
            ("warm model (load model, embed 38 chunks and 149 sentences)", *_run(tmp / "home2", tmp / "models")),
            ("re-ingest, nothing changed", *_run(tmp / "home2", tmp / "models")),
        ]
    print("| run | seconds | peak memory so far (MB) |")
    print("|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
