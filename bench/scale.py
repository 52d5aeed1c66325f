"""``python -m bench.scale``: ingestion and answering at 10,000, 100,000 … chunks.

Collections are built from real passages (the bundled collection, CMRC 2018 dev, DRCD dev),
repeated with a change: copy k heads every passage with "第k辑", so no two chunks are the
same text.  The store side runs on precomputed vectors: the real model embeds the base
passages once (kept under ``--work``), and a copy's chunk gets its base vector with a little
noise (cosine about 0.97); sentence vectors are stand-ins.  Questions are embedded by the
real model.  Sizes grow in one home: each size ingests only the files the last one lacked.

For each size: chunks per second into the store (the increment), seconds from a new
process's start to its first answer (and the same when the saved BM25 index is moved
aside, so the process builds it from Chroma), ``ask()`` p50/p95 over the seed questions,
the slowest of them (a p95 over 48 questions hides the two slowest), that process's peak
memory, the home's size on disk.  ``--plot FILE`` draws how they grow.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PASSAGES = (
    ROOT / "tests" / "data" / "cmrc2018" / "cmrc2018_dev.json",
    ROOT / "tests" / "data" / "drcd" / "DRCD_dev.json",
)
NOISE = 0.013  # per dimension: a copy's vector keeps a cosine of about 0.97 with its base


def base_passages(limit_chars: int) -> list[str]:
    """The bundled collection, then CMRC and DRCD passages (title line + context), up to ``limit_chars``."""
    from ingest.pipeline import BUNDLED_COLLECTION

    passages = [BUNDLED_COLLECTION.read_text(encoding="utf-8")]
    for path in PASSAGES:
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                passages.append(f"{article.get('title', '')}\n{paragraph['context']}")
    kept, size = [], 0
    for passage in passages:
        if size >= limit_chars:
            break
        kept.append(passage)
        size += len(passage)
    return kept


def body(text: str) -> str:
    """A chunk's text without its header line (the part copies share)."""
    return text.split("\n", 1)[1] if "\n" in text else text


class PrecomputedEmbedder:
    """Vectors of base chunks (by their text without the header), with noise for each copy."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.dim = len(next(iter(table.values())))

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
        noise = np.random.default_rng(seed).normal(0.0, NOISE, self.dim)
        base = self.table.get(body(text))
        v = noise * 30 if base is None else base + noise  # a sentence: a stand-in vector
        return (v / np.linalg.norm(v)).astype(np.float32).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def copy_files(work: Path, passages: list[str], copies: int) -> list[Path]:
    """``copies`` files, each all base passages under a title that names the copy."""
    folder = work / "files"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(copies):
        path = folder / f"copy-{k:05d}.txt"
        if not path.exists():
            text = "\n\n".join(f"第{k}辑 {p}" for p in passages)
            path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


def vector_table(work: Path, base_file: Path) -> dict[str, np.ndarray]:
    """The real model's vectors of the base file's chunks, made once and kept in ``work``."""
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file
    from rag.config import Settings
    from rag.embeddings import load_embedder

    kept = work / "base-vectors.npz"
    chunks = chunk_document(parse_file(base_file, max_bytes=1 << 30))
    bodies = list(dict.fromkeys(body(c.indexed_text) for c in chunks))
    if not kept.exists():
        began = time.perf_counter()
        vectors = np.asarray(load_embedder(Settings.from_env()).embed_documents(bodies), dtype=np.float32)
        chars = sum(map(len, bodies))
        print(
            f"base: {len(bodies):,} chunks embedded by the real model, {chars / (time.perf_counter() - began):,.0f} chars/s"
        )
        np.savez(kept, vectors=vectors)
    vectors = np.load(kept)["vectors"]
    return dict(zip(bodies, vectors))


def ingest_stage(home: Path, files: list[Path], work: Path) -> dict:
    """Ingest ``files`` (in this process) with the precomputed vectors; chunks, seconds, peak MB."""
    from ingest.pipeline import ingest
    from rag.config import Settings

    settings = dataclasses.replace(Settings.from_env(), home=home)
    embedder = PrecomputedEmbedder(vector_table(work, files[0]))
    began = time.perf_counter()
    report = ingest(files, settings, embedder=embedder)
    assert not report.failed, report.failed[0].reason
    return {
        "added": report.added,
        "deleted": report.deleted,
        "moved": sum(f.moved for f in report.files),
        "seconds": time.perf_counter() - began,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def ask_stage(home: Path, started: float) -> dict:
    """A new process answering: seconds from its start to the first answer, then p50/p95."""
    from rag.assistant import Assistant
    from rag.config import Settings
    from tests.conftest import load_seed_questions

    settings = dataclasses.replace(Settings.from_env(), home=home)
    questions = [q["question"] for q in load_seed_questions()]
    assistant = Assistant(settings)
    assistant.ask(questions[0])
    first = time.time() - started
    times = []
    for q in questions[1:]:
        began = time.perf_counter()
        assistant.ask(q)
        times.append(1000 * (time.perf_counter() - began))
    return {
        "first_answer_s": first,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "max_ms": max(times),
        "slowest": questions[1 + int(np.argmax(times))],
        "chunks": assistant.retriever.count(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def rebuild_stage(home: Path) -> dict:
    """The BM25 side rebuilt from the chunk table (what every run that changes something ends with)."""
    from ingest import lexical
    from rag.config import Settings
    from rag.store import chroma_client

    settings = dataclasses.replace(Settings.from_env(), home=home)
    collection = chroma_client(settings).get_collection(settings.collection_name)
    stamp = (home / f"{settings.collection_name}.stamp").read_text()
    began = time.perf_counter()
    lexical.write(home, collection, stamp, {})
    return {
        "chunks": collection.count(),
        "seconds": time.perf_counter() - began,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def rebuild(work: Path) -> int:
    """The BM25 side of the collection ``--work`` holds rebuilt twice, each in a new process
    (the first also converts a chunk table an earlier version wrote, if there is one)."""
    print("| run | chunks | seconds | peak memory (MB) |")
    print("|---|---|---|---|")
    for name in ("first", "second"):
        done = _child("rebuild", work / "home", work)
        print(f"| {name} | {done['chunks']:,} | {done['seconds']:.1f} | {done['peak_mb']:,.0f} |", flush=True)
    return 0


def _child(stage: str, home: Path, work: Path, files: list[Path] = ()) -> dict:
    """Run a stage in a new process (its own peak memory and start time); its JSON result."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_HOME": str(home)}
    command = [sys.executable, "-m", "bench.scale", "--stage", stage, "--home", str(home), "--work", str(work)]
    command += ["--started", repr(time.time()), *map(str, files)]
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def copy_chunks(path: Path) -> int:
    """How many chunks one copy makes."""
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file

    return len(chunk_document(parse_file(path, max_bytes=1 << 30)))


def disk_mb(folder: Path) -> tuple[float, int]:
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return sum(sizes) / 2**20, len(sizes)


def run(sizes: list[int], work: Path, plot: Path | None, unsaved_up_to: int) -> int:
    work.mkdir(parents=True, exist_ok=True)
    passages = base_passages(330_000)  # about 1,600 chunks a copy
    home = work / "home"
    print(
        "| chunks | chunks/s into the store | first answer (s) | the same, BM25 built from Chroma (s) | ask p50 (ms) "
        "| ask p95 (ms) | slowest question (ms) | peak memory answering (MB) | peak memory ingesting (MB) | disk (MB) "
        "| files on disk |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows, done, built = [], 0, {}
    per_copy = copy_chunks(copy_files(work, passages, 1)[0])
    for size in sorted(sizes):
        copies = max(1, -(-size // per_copy))
        if copies > done:
            built = _child("ingest", home, work, copy_files(work, passages, copies)[done:])
            done = copies
        answering = _child("ask", home, work)
        answering["unsaved_first_answer_s"] = _unsaved_first_answer(home, work) if size <= unsaved_up_to else None
        mb, count = disk_mb(home)
        row = {
            "chunks": answering["chunks"],
            "rate": built["added"] / built["seconds"] if built["added"] else None,  # None: all there already
            **answering,
            "ingest_peak_mb": built["peak_mb"],
            "disk_mb": mb,
            "files": count,
        }
        rows.append(row)
        print(
            f"| {row['chunks']:,} | {_rate(row['rate'])} | {row['first_answer_s']:.1f} "
            f"| {_seconds(row['unsaved_first_answer_s'])} | {row['p50_ms']:.0f} "
            f"| {row['p95_ms']:.0f} | {row['max_ms']:,.0f} ({row['slowest'][:16]}) | {row['peak_mb']:,.0f} | {row['ingest_peak_mb']:,.0f} | {mb:,.0f} | {count:,} |",
            flush=True,
        )
    if plot:
        _plot(rows, plot)
    return 0


def _unsaved_first_answer(home: Path, work: Path) -> float:
    """Seconds to the first answer when the process builds BM25 from Chroma (as before it was saved)."""
    saved = home / "lexical"
    saved.rename(home / "lexical.aside")
    try:
        return _child("ask", home, work)["first_answer_s"]
    finally:
        (home / "lexical.aside").rename(saved)


def _rate(value: float | None) -> str:
    return "— (all there already)" if value is None else f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    return "not run" if value is None else f"{value:.1f}"


def changes(work: Path) -> int:
    """On the collection the last run built: one file added, a sentence added to one file, all
    files again unchanged -- what a run costs when an archive of that size changes a little."""
    home = work / "home"
    files = sorted((work / "files").glob("copy-*.txt"))
    _child("ingest", home, work, files)  # every file there is in the collection, whatever ran before
    print("| run | chunks added | deleted | moved | seconds | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    extra = copy_files(work, base_passages(330_000), len(files) + 1)[-1:]
    edited = files[len(files) // 2]
    text = edited.read_text(encoding="utf-8")
    at = text.index("。", len(text) // 2) + 1
    steps = [
        ("one more file", extra, None),
        ("one sentence added to one file", [edited], text[:at] + "这是新加的一句话。" + text[at:]),
    ]
    steps.append(("every file again, nothing changed", [*files, *extra], None))
    for name, chosen, new_text in steps:
        if new_text is not None:
            edited.write_text(new_text, encoding="utf-8")
        done = _child("ingest", home, work, chosen)
        print(
            f"| {name} ({len(chosen)} file{'s' if len(chosen) > 1 else ''}) | {done['added']:,} | {done['deleted']:,} "
            f"| {done['moved']:,} | {done['seconds']:.1f} | {done['peak_mb']:,.0f} |",
            flush=True,
        )
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chunks = [r["chunks"] for r in rows]
    shown = [
        ("first_answer_s", "first answer (s)"),
        ("p95_ms", "ask p95 (ms)"),
        ("peak_mb", "peak memory answering (MB)"),
        ("disk_mb", "disk (MB)"),
    ]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2))
    for ax, (key, label) in zip(axes, shown):
        ax.plot(chunks, [r[key] for r in rows], marker="o")
        if key == "first_answer_s":
            built = [
                (r["chunks"], r["unsaved_first_answer_s"]) for r in rows if r["unsaved_first_answer_s"] is not None
            ]
            ax.plot(*zip(*built), marker="o", label="BM25 built from Chroma")
            ax.legend(fontsize="small")
        ax.set_ylim(bottom=0)
        ax.set_xscale("log")
        ax.set_xlabel("chunks")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-scale"))
    parser.add_argument("--plot", type=Path)
    parser.add_argument(
        "--unsaved-up-to",
        type=int,
        default=200_000,
        help="measure the first answer with BM25 built from Chroma only up to this many chunks (it takes minutes per 100,000)",
    )
    parser.add_argument("--changes", action="store_true", help="small changes to the collection --work holds")
    parser.add_argument("--rebuild", action="store_true", help="time the BM25 rebuild on the collection --work holds")
    parser.add_argument("--stage", choices=["ingest", "ask", "rebuild"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage == "ingest":
        print(json.dumps(ingest_stage(args.home, args.files, args.work)))
        return 0
    if args.stage == "ask":
        print(json.dumps(ask_stage(args.home, args.started)))
        return 0
    if args.stage == "rebuild":
        print(json.dumps(rebuild_stage(args.home)))
        return 0
    if args.changes:
        return changes(args.work)
    if args.rebuild:
        return rebuild(args.work)
    return run(args.sizes, args.work, args.plot, args.unsaved_up_to)


if __name__ == "__main__":
    sys.exit(main())
