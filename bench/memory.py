"""Memory of the answering process: ``rag ui`` on the bundled collection after N questions.

    python -m bench.memory [--questions 30] [--backends onnx torch]

For each embedding backend, in one run: a fresh RAG_HOME, ``rag ui`` started (it indexes the
bundled collection), N different questions of the seed dev set asked through ``/v1/answers``,
then the process's peak and current resident memory (``VmHWM``, ``VmRSS`` of /proc) and how long
it took to start.  Prints one row per backend.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "tests" / "data" / "seed_dev.jsonl"


def _memory(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS and its parts (RssAnon: the process's own; RssFile: mapped files) of ``pid``, in MB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmHWM", "VmRSS", "RssAnon", "RssFile")))
    return {k: int(v.split()[0]) // 1024 for k, v in fields.items()}


def _ask(url: str, question: str) -> None:
    body = json.dumps({"question": question}).encode()
    request = urllib.request.Request(f"{url}v1/answers", body, {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=120).read()


def measure(backend: str, questions: list[str]) -> dict:
    from bench.server import start_page

    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        proc, url = start_page(env={"RAG_HOME": home, "RAG_EMBED_BACKEND": backend})
        started = time.perf_counter() - began
        try:
            after_start = _memory(proc.pid)
            for question in questions:
                _ask(url, question)
            after = _memory(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"backend": backend, "start_s": started, "start_rss": after_start["VmRSS"], **after}


def seed_questions(n: int) -> list[str]:
    """The first ``n`` questions of the seed dev set, as the measurement asks them."""
    seed = [json.loads(line)["question"] for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return seed[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--backends", nargs="+", default=["onnx", "torch"])
    args = parser.parse_args(argv)
    questions = seed_questions(args.questions)
    print(
        "| backend | start (s, indexing included) | RSS after start (MB) | peak RSS (MB) | RSS after questions (MB) |"
    )
    print("|---|---|---|---|---|")
    for backend in args.backends:
        row = measure(backend, questions)
        print(
            f"| {row['backend']} | {row['start_s']:.1f} | {row['start_rss']:,} | {row['VmHWM']:,} | {row['VmRSS']:,} "
            f"| {row['RssAnon']:,} | {row['RssFile']:,} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
