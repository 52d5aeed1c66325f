"""``python -m bench.load``: how much load the chat page, the HTTP API and ``ask()`` hold.

Conversations made from the dev set are sent by 1, 4, 16 and 64 concurrent clients, each
client a session of its own, through the page's Gradio API (``gradio_client``, the same
``/ask`` event the page uses), through the HTTP API (``rag serve``, ``POST /v1/answers``
with the conversation's history) and through ``ask()`` in this process.  Every answer is
compared with the one the same conversation gets when it runs alone, so an answer that
changes under load, or a follow-up that reads another session's turns, is counted.

Bounded: ``--conversations`` per level and ``--max-seconds`` per level; the page is started
on a free loopback port (or ``--url``, which must be loopback).  A request the page's queue
refuses (more than ``RAG_UI_QUEUE_SIZE`` waiting) is counted as refused, not as an error.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import server
from rag.config import is_loopback

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT / "tests" / "data" / "seed_dev.jsonl"
FOLLOW_UP = "这方面还有哪些具体做法？"
QUEUE_FULL = "queue is full"

Conversation = tuple[str, ...]


def conversations(path: Path = DEV_SET) -> list[Conversation]:
    """One conversation per dev question (after its history, if any); every third one gets a follow-up."""
    result = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        turns = [q for q, _ in item.get("history", [])] + [item["question"]]
        if i % 3 == 0:
            turns.append(FOLLOW_UP)
        result.append(tuple(turns))
    return result


@dataclass
class Level:
    """What one concurrency level did."""

    path: str
    clients: int
    conversations: int = 0
    requests: int = 0
    refused: int = 0
    errors: int = 0
    mismatches: int = 0
    not_run: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]

    def row(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "latencies_ms"}
        data |= {
            "throughput_per_s": round(self.throughput, 2),
            "p50_ms": round(self.percentile(50), 1),
            "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
        }
        return data


class Refused(Exception):
    """The page's queue was full."""


def run_level(
    path: str,
    clients: int,
    work: list[Conversation],
    converse: Callable[[Conversation, Callable[[float], None]], tuple],
    expected: dict[Conversation, tuple] | None,
    max_seconds: float,
) -> tuple[Level, dict[Conversation, tuple]]:
    """Run ``work`` with ``clients`` concurrent workers; compare with ``expected`` when given."""
    level = Level(path, clients)
    results: dict[Conversation, tuple] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds

    def one(conversation: Conversation) -> None:
        if time.perf_counter() > deadline:
            with lock:
                level.not_run += 1
            return
        timings: list[float] = []
        try:
            outcome = converse(conversation, timings.append)
        except Refused:
            with lock:
                level.refused += 1
                level.requests += len(timings)
                level.latencies_ms += timings
            return
        except Exception as e:  # counted and shown: the point is to see every failure
            with lock:
                level.errors += 1
                if len(level.error_samples) < 5:
                    level.error_samples.append(f"{e.__class__.__name__}: {str(e)[:200]}")
            return
        with lock:
            level.conversations += 1
            level.requests += len(timings)
            level.latencies_ms += timings
            results[conversation] = outcome
            if expected is not None and expected.get(conversation) != outcome:
                level.mismatches += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, work))
    level.seconds = time.perf_counter() - began
    return level, results


class PageClients:
    """One ``gradio_client.Client`` per worker thread; a fresh session per conversation."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    def _client(self):
        from gradio_client import Client

        if not hasattr(self._local, "client"):
            self._local.client = Client(self.url, verbose=False)
        return self._local.client

    def converse(self, conversation: Conversation, timed: Callable[[float], None]) -> tuple:
        client = self._client()
        client.reset_session()
        chat: list = []
        replies = []
        for question in conversation:
            t = time.perf_counter()
            try:
                chat, *_ = client.predict(question, chat, api_name="/ask")
            except Exception as e:
                if QUEUE_FULL in str(e).lower():
                    raise Refused(str(e)) from e
                raise
            timed(1000 * (time.perf_counter() - t))
            content = chat[-1]["content"]
            replies.append("".join(part.get("text", "") for part in content) if isinstance(content, list) else content)
        return tuple(replies)


class ApiClients:
    """``POST /v1/answers`` with the history a program would keep; one HTTP connection per worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/v1/answers"
        self._local = threading.local()

    def converse(self, conversation: Conversation, timed: Callable[[float], None]) -> tuple:
        import httpx

        if not hasattr(self._local, "client"):
            self._local.client = httpx.Client(timeout=120)
        turns: list[dict] = []
        replies = []
        for question in conversation:
            t = time.perf_counter()
            response = self._local.client.post(self.url, json={"question": question, "history": turns})
            if response.status_code == 429:
                raise Refused(response.json()["error"]["message"])
            response.raise_for_status()
            timed(1000 * (time.perf_counter() - t))
            answer = response.json()
            if answer["found"]:
                turns.append({"question": answer["question"], "answer": answer["text"]})
            replies.append(
                (answer["text"], answer["found"], tuple((c["start"], c["end"]) for c in answer["citations"]))
            )
        return tuple(replies)


class DirectAsk:
    """``Assistant.ask`` in this process, with the history a session would keep."""

    def __init__(self) -> None:
        from ingest.collection import ensure_index
        from rag.assistant import Assistant

        self.assistant = Assistant()
        ensure_index(self.assistant.settings, self.assistant.embedder)
        self.assistant.warm_up()

    def converse(self, conversation: Conversation, timed: Callable[[float], None]) -> tuple:
        turns: list[tuple[str, str]] = []
        replies = []
        for question in conversation:
            t = time.perf_counter()
            answer = self.assistant.ask(question, history=turns)
            timed(1000 * (time.perf_counter() - t))
            if answer.found:
                turns.append((answer.question, answer.text))
            replies.append((answer.text, answer.found, tuple((c.source, c.start, c.end) for c in answer.citations)))
        return tuple(replies)


def _check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    if not is_loopback(host):
        raise SystemExit(f"error: the load script only drives a page on loopback, not {host!r}")


def start_page(timeout: float = 600, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start the chat page on a free loopback port (it indexes the bundled collection if needed)."""
    try:
        return server.start_page(timeout, env)
    except server.ServerFailed as e:
        raise SystemExit(f"error: the page did not start: {e}") from None


def measure(
    path: str,
    converse: Callable,
    work: list[Conversation],
    levels: list[int],
    per_level: int,
    max_seconds: float,
    report: Callable[[Level], None],
) -> list[Level]:
    """The solo answers first, then every level against them."""
    solo, expected = run_level(path, 1, work, converse, None, max_seconds * 4)
    if solo.errors:
        raise SystemExit(f"error: answering alone failed: {solo.error_samples}")
    done = []
    for clients in levels:
        batch = [work[i % len(work)] for i in range(max(per_level, clients))]
        level, _ = run_level(path, clients, batch, converse, expected, max_seconds)
        report(level)
        done.append(level)
    return done


def _run_paths(paths: list[str], args, work: list[Conversation], levels: list[int], report) -> list[Level]:
    """Every chosen path, each against its own solo answers."""
    results: list[Level] = []
    if "ui" in paths:
        proc = None
        if args.url:
            _check_loopback(args.url)
            url = args.url
        else:
            proc, url = start_page()
        try:
            page = PageClients(url)
            results += measure("ui", page.converse, work, levels, args.conversations, args.max_seconds, report)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    if "api" in paths:
        proc, url = server.start_api()
        try:
            api = ApiClients(url)
            results += measure("api", api.converse, work, levels, args.conversations, args.max_seconds, report)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if "ask" in paths:
        direct = DirectAsk()
        results += measure("ask", direct.converse, work, levels, args.conversations, args.max_seconds, report)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--conversations", type=int, default=128, help="conversations per level (at least the level)")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop starting conversations after this")
    parser.add_argument(
        "--paths",
        default="ui,api,ask",
        help="ui (the page's Gradio API), api (rag serve's /v1/answers), ask (in process)",
    )
    parser.add_argument("--url", help="a running page on loopback (default: start one)")
    parser.add_argument("--questions", type=Path, default=DEV_SET, help="a dev set in the seed_dev.jsonl format")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    work = conversations(args.questions)
    paths = [p.strip() for p in args.paths.split(",")]
    print(
        f"{len(work)} conversations ({sum(map(len, work))} questions); queue size "
        f"{os.environ.get('RAG_UI_QUEUE_SIZE', '64')}, workers {os.environ.get('RAG_UI_CONCURRENCY', '4')}",
        file=sys.stderr,
    )
    print("| path | clients | conversations | requests | throughput (req/s) | p50 ms | p95 ms | p99 ms | refused | errors | answers differing from solo |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def report(level: Level) -> None:
        r = level.row()
        print(
            f"| {level.path} | {level.clients} | {level.conversations} | {level.requests} | {r['throughput_per_s']:.1f} "
            f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | {level.refused} | {level.errors} "
            f"| {level.mismatches} |",
            flush=True,
        )
        for sample in level.error_samples:
            print(f"  error: {sample}", file=sys.stderr)

    results = _run_paths(paths, args, work, levels, report)
    if args.json:
        args.json.write_text(json.dumps([r.row() for r in results], ensure_ascii=False, indent=1), encoding="utf-8")
    return 1 if any(r.errors or r.mismatches for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
