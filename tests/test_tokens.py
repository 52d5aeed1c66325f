"""Tokenising for BM25 in a worker process beside the writer (``ingest.tokens``)."""

from __future__ import annotations

import dataclasses
import sqlite3

import ingest.tokens as tokens
from ingest.pipeline import ingest
from rag.lexical import folder
from rag.text import tokenize
from tests.conftest import CORPUS

TEXTS = ["住建局推进审批制度改革，审批时效提升了60%。", "", "Paper materials 纸质材料", "乡村教育"]


def test_the_worker_gives_the_tokens_this_process_would():
    tokenizer = tokens.Tokenizer(apart=True)
    try:
        first = tokenizer.submit(TEXTS)
        assert tokenizer._process is not None and first() == [tokenize(t) for t in TEXTS]
        assert tokenizer.submit(TEXTS[:1])() == [tokenize(TEXTS[0])]  # the same worker, again
    finally:
        tokenizer.close()
    assert tokenizer._process is None


def test_a_worker_that_dies_leaves_the_texts_to_this_process(caplog):
    tokenizer = tokens.Tokenizer(apart=True)
    tokenizer.submit(["热身"])()
    tokenizer._process.kill()
    tokenizer._process.wait()
    assert tokenizer.submit(TEXTS)() == [tokenize(t) for t in TEXTS]
    assert not tokenizer.apart and "tokenising in this process" in caplog.text
    assert tokenizer.submit(TEXTS[:1])() == [tokenize(TEXTS[0])]
    tokenizer.close()


def _rows(settings) -> list[tuple]:
    db = sqlite3.connect(folder(settings.home, settings.collection_name) / "chunks.sqlite")
    vocab = dict(db.execute("SELECT col, token FROM vocab"))
    rows = db.execute("SELECT id, source, interviewee, columns FROM terms ORDER BY id").fetchall()
    db.close()
    return [(i, s, p, sorted(vocab[c] for c in memoryview(cols).cast("i"))) for i, s, p, cols in rows]


def test_a_large_run_tokenises_in_the_worker_and_keeps_the_table_a_small_run_keeps(
    settings, e5_once, tmp_path, monkeypatch
):
    """Real files, the real model and Chroma: a run over the threshold writes the same chunk
    table, and this process tokenises none of its chunks."""
    files = tmp_path / "files"
    files.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        text = CORPUS.read_text(encoding="utf-8")
        (files / name).write_text(text.replace("访谈", f"访谈{name[0]}"), encoding="utf-8")
    ingest([files], settings, embedder=e5_once)
    here = _rows(settings)
    settings = dataclasses.replace(settings, home=tmp_path / "another home")

    calls = []
    local = tokens.tokenize_all
    monkeypatch.setattr(tokens, "tokenize_all", lambda texts: calls.append(len(texts)) or local(texts))
    monkeypatch.setattr("ingest.pipeline.APART_BYTES", 0)
    report = ingest([files], settings, embedder=e5_once)
    assert report.count("indexed") == 3 and not calls
    assert _rows(settings) == here and len(here) == report.added
