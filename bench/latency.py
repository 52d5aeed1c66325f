"""``ask()`` latency on the bundled collection: questions the process has never seen, then asked again.

    python -m bench.latency [--rounds 1]

Indexes the bundled collection into a temporary RAG_HOME, warms one ``Assistant`` up on a
question outside the set, then asks every question of the seed dev set and the first turns of
the conversation dev set once (new: no question vector is cached yet) and once more (repeated).
Prints p50/p95 of each, the time of embedding one question, and how many times one new
question reads the index stamp, loads the BM25 side, counts the collection, tokenizes with jieba,
hashes a chunk id, parses a stored chunk and runs the model (the passes a question makes).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
WARM = "开发区的企业有多少家？"


def questions() -> list[str]:
    seed = [json.loads(line)["question"] for line in (DATA / "seed_dev.jsonl").read_text("utf-8").splitlines() if line]
    conv = [
        json.loads(line)["turns"][0]["q"]
        for line in (DATA / "conversation_dev.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    return list(dict.fromkeys(q for q in seed + conv if q != WARM))


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def counting(targets: list[tuple[object, str]]):
    """Count the calls of each ``(owner, attribute)`` while inside; yields the counter."""
    counts: collections.Counter = collections.Counter()
    saved = []
    for owner, name in targets:
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        label = f"{getattr(owner, '__name__', owner)}.{name}"
        if isinstance(original, property):

            def getter(self, _f=original.fget, _label=label):
                counts[_label] += 1
                return _f(self)

            setattr(owner, name, property(getter))
        elif isinstance(original, functools.cached_property):

            def computed(self, _f=original.func, _label=label):
                counts[_label] += 1
                return _f(self)

            replacement = functools.cached_property(computed)
            replacement.__set_name__(owner, name)
            setattr(owner, name, replacement)
        elif isinstance(original, classmethod):

            def bound(cls, *a, _f=original.__func__, _label=label, **kw):
                counts[_label] += 1
                return _f(cls, *a, **kw)

            setattr(owner, name, classmethod(bound))
        else:

            def wrapper(*a, _f=original, _label=label, **kw):
                counts[_label] += 1
                return _f(*a, **kw)

            setattr(owner, name, wrapper)
    try:
        yield counts
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def passes(assistant, question: str) -> dict[str, int]:
    """How many times one new question goes through each costly step."""
    import rag.retrieval
    import rag.text
    from rag.onnx_backend import OnnxEncoder
    from rag.retrieval import HybridRetriever
    from rag.types import Chunk

    targets = [
        (HybridRetriever, "_marker"),
        (HybridRetriever, "lexical"),
        (HybridRetriever, "_counted"),
        (rag.text, "tokenize"),
        (rag.retrieval, "tokenize"),
        (Chunk, "id"),
        (Chunk, "from_metadata"),
        (OnnxEncoder, "encode"),
    ]
    with counting(targets) as counts:
        assistant.ask(question)
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    from ingest.pipeline import ingest
    from rag.assistant import Assistant
    from rag.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes' worth of new questions")
    args = parser.parse_args(argv)
    asked = questions()
    new: list[float] = []
    again: list[float] = []
    with tempfile.TemporaryDirectory() as home:
        settings = dataclasses.replace(Settings.from_env(), home=Path(home))
        ingest(None, settings)
        for _ in range(args.rounds):
            assistant = Assistant(settings)
            assistant.warm_up()
            assistant.ask(WARM)
            for times in (new, again):
                for q in asked:
                    began = time.perf_counter()
                    assistant.ask(q)
                    times.append(1000 * (time.perf_counter() - began))
        embedder = assistant.embedder
        one = []
        for i in range(20):
            began = time.perf_counter()
            embedder._encode([f"query: 第{i}个问题是什么？"], None, 1)
            one.append(1000 * (time.perf_counter() - began))
        counted = passes(assistant, "住建局在审批上是怎么做的，效果如何？")
    print(f"{len(asked)} questions, {args.rounds} round(s)")
    print(f"new questions:      p50 {statistics.median(new):.1f} ms, p95 {_percentile(new, 95):.1f} ms")
    print(f"asked again:        p50 {statistics.median(again):.1f} ms, p95 {_percentile(again, 95):.1f} ms")
    print(f"embedding one question: {statistics.median(one):.1f} ms")
    print("one new question's passes: " + ", ".join(f"{k} {v}" for k, v in sorted(counted.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
