"""``python -m bench.embed``: the embedding backends side by side (``RAG_EMBED_BACKEND``).

For torch, onnx and onnx-int8, in one run: seconds to load (the ONNX file exported on first
use is made before timing), characters per second on the texts ingestion embeds (chunks and
their sentences: the bundled collection and the first CMRC 2018 passages), and the cosine of
each vector to torch's.  ``--eval``: also ``rag eval`` with each backend, on the seed dev set
and on the scorer's test part of CMRC 2018 (retrieval hit@1/hit@5 and answers must not drop).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.onnx_backend import BACKENDS

ROOT = Path(__file__).resolve().parent.parent


def sample_texts(passages: int) -> list[str]:
    """What ingestion embeds for the bundled collection and ``passages`` CMRC passages."""
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file
    from ingest.pipeline import BUNDLED_COLLECTION, sentence_texts

    docs = [parse_file(BUNDLED_COLLECTION)]
    data = json.loads((ROOT / "tests" / "data" / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        for i, paragraph in enumerate(p for a in data["data"] for p in a["paragraphs"]):
            if i >= passages:
                break
            path = Path(tmp) / f"{i}.txt"
            path.write_text(paragraph["context"], encoding="utf-8")
            docs.append(parse_file(path))
    texts = []
    for doc in docs:
        chunks = chunk_document(doc)
        texts += [c.indexed_text for c in chunks] + sentence_texts(chunks)
    return texts


def speed(passages: int) -> None:
    from rag.config import Settings
    from rag.embeddings import load_embedder

    texts = sample_texts(passages)
    chars = sum(map(len, texts))
    print(f"{len(texts):,} texts, {chars:,} characters (chunks and their sentences)\n")
    print("| backend | load (s) | characters/s | × torch | cosine to torch: min | mean |")
    print("|---|---|---|---|---|---|")
    reference, base_rate = None, None
    for backend in BACKENDS:
        settings = dataclasses.replace(Settings.from_env(), embed_backend=backend)
        if backend != "torch":  # the export, once and untimed: a user pays it on first use only
            load_embedder(settings).warm_up()
        embedder = load_embedder(settings)
        began = time.perf_counter()
        embedder.warm_up()
        loaded = time.perf_counter() - began
        embedder.embed_documents(texts[:16])  # first-call costs out of the timing
        began = time.perf_counter()
        vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
        rate = chars / (time.perf_counter() - began)
        reference = vectors if reference is None else reference
        base_rate = base_rate or rate
        cosine = (vectors * reference).sum(axis=1)
        print(
            f"| {backend} | {loaded:.1f} | {rate:,.0f} | {rate / base_rate:.2f} | {cosine.min():.4f} | {cosine.mean():.4f} |",
            flush=True,
        )


def evaluate() -> None:
    sets = {
        "seed dev (49)": [str(ROOT / "tests" / "data" / "seed_dev.jsonl")],
        "CMRC 2018, test part": [str(ROOT / "tests" / "data" / "cmrc2018" / "cmrc2018_dev.json"), "--part", "test"],
    }
    print("\n| set | backend | hit@1 | hit@5 | answer contains | citation precision | refusal | false refusal |")
    print("|---|---|---|---|---|---|---|---|")
    for name, args in sets.items():
        for backend in BACKENDS:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "figures.json"
                command = [sys.executable, "-m", "ui.cli", "eval", *args, "--no-baselines", "--answerer", "learned"]
                env = {**os.environ, "RAG_EMBED_BACKEND": backend, "HF_HUB_OFFLINE": "1"}
                subprocess.run([*command, "--quiet", "--json", str(out)], env=env, check=True, capture_output=True)
                figures = json.loads(out.read_text(encoding="utf-8"))
            hits, answers = figures["retrieval"]["ours"], figures["answers"]["learned"]
            print(
                f"| {name} | {backend} | {hits['hit@1']:.3f} | {hits['hit@5']:.3f} | {answers['answer_contains']:.3f} "
                f"| {answers['citation_precision']:.3f} | {answers['refusal_accuracy']:.3f} "
                f"| {answers['false_refusal_rate']:.3f} |",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=120, help="CMRC passages added to the bundled collection")
    parser.add_argument("--eval", action="store_true", help="also rag eval with each backend")
    args = parser.parse_args(argv)
    speed(args.passages)
    if args.eval:
        evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
