"""Several processes, one store: `rag serve` processes answer from one `chroma run` server while
another process ingests into it, and agree once it is done -- two that share the ingesting
process's RAG_HOME (they load the BM25 side it saves) and one with a RAG_HOME of its own (it
builds its BM25 side from Chroma when the collection's count changes; docs/deployment.md)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.server import start_api
from ingest.pipeline import ingest
from rag.assistant import Assistant
from rag.config import Settings
from rag.retrieval import COUNT_SECONDS, HybridRetriever
from rag.store import STAMP_KEY, chroma_client
from tests.conftest import split_corpus

pytestmark = pytest.mark.slow

DURING = "乡村教育要实现怎样的转变？"  # answered from what is indexed before the third process starts
AFTER = "市住建局取消了哪些纸质申报材料？"  # answered only from what the third process adds


def _answer(url: str, question: str) -> dict:
    reply = httpx.post(url + "v1/answers", json={"question": question}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _quotes(answer: dict) -> list[tuple]:
    return [(c["source"], c["start"], c["end"], c["quote"]) for c in answer["citations"]]


def _on_the_server(port: int, tmp_path, monkeypatch) -> tuple[Settings, Path]:
    """Settings that use the `chroma run` server on ``port``; the bundled articles as five files."""
    monkeypatch.setenv("RAG_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("RAG_CHROMA_PORT", str(port))
    articles = tmp_path / "articles"
    articles.mkdir()
    split_corpus(articles)
    return Settings.from_env(), articles


def test_two_answering_processes_and_an_ingest_share_one_chroma_server(chroma_server, tmp_path, monkeypatch, e5):
    settings, articles = _on_the_server(chroma_server, tmp_path, monkeypatch)
    first, later = sorted(articles.iterdir())[:3], sorted(articles.iterdir())[3:]
    assert ingest(first, settings, embedder=e5).added > 0

    apart = {**os.environ, "RAG_HOME": str(tmp_path / "apart-home")}  # shares only the Chroma server
    servers = [start_api(env=dict(os.environ)) for _ in range(2)] + [start_api(env=apart)]
    try:
        urls = [url for _, url in servers]
        before = [_answer(url, AFTER) for url in urls]
        assert not any(a["found"] and "纸质" in a["text"] for a in before)
        writer = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "ingest", "--quiet", *map(str, later)],
            env={**os.environ, "RAG_EMBED_BATCH_SIZE": "2"},  # small batches: a longer run to answer beside
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        answered_during = 0
        while writer.poll() is None:
            for url in urls:
                answer = _answer(url, DURING)
                assert answer["found"] and "就近就便" in "".join(c["quote"] for c in answer["citations"])
                answered_during += 1
        _, err = writer.communicate()
        assert writer.returncode == 0, err
        assert answered_during >= 2

        after = [_answer(url, AFTER) for url in urls]
        assert all(a["found"] and "纸质" in a["text"] for a in after)
        assert _quotes(after[0]) == _quotes(after[1]) == _quotes(after[2])
        assert after[0]["text"] == after[1]["text"] == after[2]["text"]
        during = [_quotes(_answer(url, DURING)) for url in urls]
        assert during[0] == during[1] == during[2]
        here = Assistant(settings, embedder=e5).ask(AFTER)  # and the same as a process started afresh
        assert [(c.start, c.end, c.quote) for c in here.citations] == [q[1:] for q in _quotes(after[0])]
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=30)


def test_an_edit_that_keeps_the_count_reaches_a_process_of_its_own_home(chroma_server, tmp_path, monkeypatch, e5_once):
    """A process sharing only the Chroma server sees an ingest that replaced a sentence without
    changing how many chunks there are: the stamp the ingest published in the collection moves."""
    writing, articles = _on_the_server(chroma_server, tmp_path, monkeypatch)
    assert ingest([articles], writing, embedder=e5_once).added > 0
    reading = HybridRetriever(dataclasses.replace(writing, home=tmp_path / "apart-home"), e5_once)
    count = reading.count()
    assert not reading.bm25("量子纠缠", 3)

    edited = next(p for p in sorted(articles.iterdir()) if "纸质" in p.read_text(encoding="utf-8"))
    edited.write_text(edited.read_text(encoding="utf-8").replace("纸质", "量子纠缠", 1), encoding="utf-8")
    report = ingest([edited], writing, embedder=e5_once)
    assert report.added == report.deleted > 0  # chunks replaced, as many as before
    published = chroma_client(writing).get_collection(writing.collection_name).metadata[STAMP_KEY]
    assert published == (writing.home / f"{writing.collection_name}.stamp").read_text()

    time.sleep(COUNT_SECONDS + 0.1)
    assert reading.count() == count and reading.snapshot().marker == published
    hits = reading.bm25("量子纠缠", 3)
    assert hits and "量子纠缠" in hits[0][0].text
