"""Faults during ingestion and hostile documents, with the real model, real Chroma and real files.

After each fault the next run must leave the store exactly as a clean ingest does: no
duplicate, no missing chunk, no orphan on the BM25 side.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.client import SharedSystemClient

import rag.store
from ingest.pipeline import ingest
from ingest.storage import is_storage_full, record_manager
from rag.assistant import Assistant
from rag.config import Settings
from rag.errors import ParseError, StorageFullError
from rag.retrieval import HybridRetriever
from rag.store import DocumentStore, cached_embedder, chroma_client
from rag.types import Chunk
from rag.vector_cache import SqliteByteStore
from tests.conftest import CORPUS, cached_vectors, copy_index, forget_sentence_vectors, split_corpus

pytestmark = pytest.mark.slow


def state(settings: Settings, e5) -> set[tuple]:
    """The store's chunks, checked for duplicates, orphans and offsets that do not quote."""
    data = chroma_client(settings).get_collection(settings.collection_name).get(include=["documents", "metadatas"])
    chunks = [Chunk.from_metadata(d, m) for d, m in zip(data["documents"], data["metadatas"])]
    rows = [(c.text, Path(c.source).name, c.start, c.end, c.doc_hash) for c in chunks]
    assert len(rows) == len(set(rows)), "duplicate chunks"
    assert sorted(data["ids"]) == sorted(record_manager(settings).list_keys()), "store and records disagree"
    assert sorted(HybridRetriever(settings, e5).lexical().ids) == sorted(data["ids"]), "BM25 side disagrees"
    documents = DocumentStore(settings)
    assert documents.hashes() == {c.doc_hash for c in chunks}, "stored documents without chunks, or missing"
    for c in chunks:
        assert documents.load(c.doc_hash).text[c.start : c.end] == c.text
    return set(rows)


# --- disk full -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (needs root and permission to mount; the injected test below always runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int, name: str = "ballast") -> Path:
    ballast = mount / name
    with open(ballast, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(1, shutil.disk_usage(mount).free - leave))
    return ballast


@pytest.mark.parametrize("trials", [2, pytest.param(5, marks=pytest.mark.soak)])
def test_a_full_disk_stops_ingestion_with_one_line_and_the_next_run_completes_it(
    small_disk, tmp_path, e5, e5_once, model_cache, bundled_index, trials
):
    clean = Settings(home=bundled_index, model_cache=model_cache)
    expected = state(clean, e5)
    env = {**os.environ, "RAG_MODEL_CACHE": str(clean.model_cache)}
    rng = random.Random(2026)
    # The store takes ~1.3 MB: leave from nothing to nearly enough, so each trial fails at a different write.
    for trial, leave_kb in enumerate(sorted(rng.sample(range(20, 1300, 10), trials))):
        home = small_disk / f"home{trial}"
        ballast = _fill(small_disk, leave_kb * 1024)
        result = subprocess.run(
            [sys.executable, "-m", "ui.cli", "ingest", "--quiet"],
            env={**env, "RAG_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2, (leave_kb, result.stderr[-2000:])
        assert result.stderr.strip().startswith("error: no space left on the disk holding"), result.stderr[-2000:]
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        ballast.unlink()
        settings = Settings(home=home, model_cache=clean.model_cache)
        ingest(None, settings, embedder=e5_once)  # the next run, with room again
        assert state(settings, e5) == expected, f"trial {trial}: {leave_kb} KB left"
        SharedSystemClient.clear_system_cache()  # close the store's files, or deleting them frees nothing
        shutil.rmtree(home)

    # Answering goes on with the disk full: its sentence-vector cache is best effort.
    home = small_disk / "answering"
    settings = Settings(home=home, model_cache=clean.model_cache)
    ingest(None, settings, embedder=e5)
    # Sentence vectors are made at ingestion; without them (an index made before, a cache
    # removed) the answerer makes them when asked and tries to keep them on the full disk.
    forget_sentence_vectors(home)
    assistant = Assistant(settings, embedder=e5)
    assistant.warm_up()
    gc.collect()  # files of the trials' stores, deleted while open, are freed only when closed
    _fill(small_disk, 0)
    for more in range(3):  # a store closing late gives space back: take that too
        if shutil.disk_usage(small_disk).free < 64 * 1024:
            break
        gc.collect()
        _fill(small_disk, 0, f"ballast-{more}")
    assert shutil.disk_usage(small_disk).free < 64 * 1024
    answer = assistant.ask("审批时效提升了多少？")
    english = assistant.ask("By how much did the approval time improve?")
    assert answer.found and "50%" in answer.text and english.text
    # (Space a closing store gives back may let some writes through here; that every write can
    # fail is shown by the next test, which makes them fail.)


class _FullDisk:
    """A connection to the vector cache whose writes fail as SQLite's do on a full disk, after
    ``allowed`` write transactions (reads go through)."""

    def __init__(self, db, budget: list[int], writes: list[str], kind: str) -> None:
        self.db, self.budget, self.writes, self.kind = db, budget, writes, kind

    def execute(self, sql: str, *args):
        if sql.startswith("BEGIN IMMEDIATE"):
            self.writes.append(self.kind)
            self.budget[0] -= 1
            if self.budget[0] < 0:
                raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def _fill_the_vector_cache_after(monkeypatch, allowed: int, writes: list[str] | None = None) -> list[int]:
    """The vector cache's writes fail past ``allowed`` (a budget shared with other writes);
    ``writes`` records each write's kind (best effort or not)."""
    budget, writes = [allowed], writes if writes is not None else []
    real = SqliteByteStore._connection

    def connection(self):
        return _FullDisk(real(self), budget, writes, "best effort" if self.best_effort else "vectors")

    monkeypatch.setattr(SqliteByteStore, "_connection", connection)
    return budget


def test_answers_go_on_when_no_sentence_vector_can_be_written(settings, e5, monkeypatch):
    ingest(None, settings, embedder=e5)
    forget_sentence_vectors(settings.home)  # as if made before sentence vectors existed
    _fill_the_vector_cache_after(monkeypatch, 0)
    assistant = Assistant(settings, embedder=e5)
    answer = assistant.ask("审批时效提升了多少？")
    english = assistant.ask("By how much did the approval time improve?")
    assert answer.found and "50%" in answer.text and english.text
    assert cached_vectors(settings.home, "sentences") == 0


@pytest.mark.parametrize("nth", [0, 1, 2])
def test_an_injected_enospc_at_any_cache_write_is_survived(settings, tmp_path, e5_once, monkeypatch, nth):
    """Where no tmpfs can be mounted: ENOSPC raised at the ``nth`` write of the ingestion (a file,
    or a batch of the vector cache) and at every one after it."""
    clean = Settings(home=tmp_path / "clean", model_cache=settings.model_cache)
    real_write = rag.store.write_atomically
    writes: list[str] = []
    budget = _fill_the_vector_cache_after(monkeypatch, 10**9, writes)  # one budget for files and batches

    def full_disk(target, data, durable=True):
        writes.append("file")
        budget[0] -= 1
        if budget[0] < 0:
            # What a short write leaves before the error: half a file, never renamed into place.
            target.with_name(".tmp-torn").write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(target, data, durable)

    monkeypatch.setattr(rag.store, "write_atomically", full_disk)
    ingest(None, clean, embedder=e5_once)
    expected = state(clean, e5_once)
    assert writes == ["file", "vectors", "best effort"]  # the document, its chunks' vectors, its sentences'
    budget[0] = nth
    if writes[nth] == "best effort":  # only the sentence vectors fail: the ingestion goes on without them
        ingest(None, settings, embedder=e5_once)
        assert cached_vectors(settings.home, "sentences") == 0 and state(settings, e5_once) == expected
    else:
        with pytest.raises(StorageFullError, match="no space left"):
            ingest(None, settings, embedder=e5_once)
    monkeypatch.undo()
    ingest(None, settings, embedder=e5_once)
    assert state(settings, e5_once) == expected


def test_the_older_cache_layout_is_moved_in_once_and_its_torn_entries_embedded_again(settings, e5):
    """Vectors kept one JSON file each (the older layout), some torn by LangChain's in-place write
    on a full disk: moved into the packed cache, the folder removed, the torn ones embedded again."""
    ingest(None, settings, embedder=e5)
    expected = state(settings, e5)
    for kind in ("embeddings", "sentences"):
        store = cached_embedder(settings, e5, sentences=kind == "sentences").document_embedding_store.store
        older = settings.home / "cache" / kind / settings.model_slug
        older.mkdir(parents=True)
        for key, value in zip(keys := list(store.yield_keys()), store.mget(keys)):
            (older / key).write_text(json.dumps(np.frombuffer(value, dtype=np.float32).tolist()))
        store.close()
        for path in (settings.home / "cache").glob(f"{kind}-*.sqlite*"):
            path.unlink()
        for entry in sorted(older.iterdir())[:5]:
            entry.write_bytes(entry.read_bytes()[:100])  # torn
    SharedSystemClient.clear_system_cache()
    shutil.rmtree(settings.home / "chroma")
    (settings.home / "records.sqlite").unlink()
    ingest(None, settings, embedder=e5)
    assert state(settings, e5) == expected
    assert not (settings.home / "cache" / "embeddings").exists()  # moved in once
    assert cached_vectors(settings.home) == len(expected)  # every chunk's vector, the torn ones made again


def test_storage_full_is_told_apart_from_other_errors(tmp_path):
    assert is_storage_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert is_storage_full(RuntimeError("error returned from database: (code: 13) database or disk is full"), tmp_path)
    assert not is_storage_full(ValueError("bad value"), tmp_path)  # tmp_path has room


# --- files that change while they are read ------------------------------------------------------


def test_a_file_edited_during_ingestion_is_stored_as_one_version_then_updated(tmp_path, settings, e5):
    folder = tmp_path / "files"
    folder.mkdir()
    split_corpus(folder)
    edited = folder / "article1.txt"
    final_text = (
        edited.read_text(encoding="utf-8").replace("首战告捷", "首战大捷") + "\n记者：还有什么计划？\n答：继续推进。"
    )

    def edit_while_indexing(done: int, total: int, label: str) -> None:
        if label == "article3.txt" and edited.read_text(encoding="utf-8") != final_text:
            edited.write_text(final_text, encoding="utf-8")  # article1 was read; its new version arrives now

    ingest([folder], settings, on_progress=edit_while_indexing, embedder=e5)
    first = state(settings, e5)  # consistent: the version that was read, every quote exact
    assert any("首战告捷" in row[0] for row in first)
    ingest([folder], settings, embedder=e5)  # the next run picks up the edit
    clean = Settings(home=tmp_path / "clean", model_cache=settings.model_cache)
    ingest([folder], clean, embedder=e5)
    assert state(settings, e5) == state(clean, e5)


def test_a_file_rewritten_while_it_is_read_is_read_again(tmp_path, monkeypatch):
    import ingest.parse as parse

    path = tmp_path / "growing.txt"
    path.write_text("标题\n第一版的内容。", encoding="utf-8")
    real_decode = parse.decode_text
    rewrites = []

    def decode_then_rewrite(data: bytes, name: str) -> str:
        if len(rewrites) < 1:
            rewrites.append(name)
            path.write_text("标题\n第二版的内容，更长一些。", encoding="utf-8")
        return real_decode(data, name)

    monkeypatch.setattr(parse, "decode_text", decode_then_rewrite)
    assert "第二版" in parse.parse_file(path).text

    def always_rewrite(data: bytes, name: str) -> str:
        path.write_text(path.read_text(encoding="utf-8") + "又改了。", encoding="utf-8")
        return real_decode(data, name)

    monkeypatch.setattr(parse, "decode_text", always_rewrite)
    with pytest.raises(ParseError, match="kept changing while it was read"):
        parse.parse_file(path)


def test_a_file_being_appended_to_during_ingestion(tmp_path, settings, e5):
    """A writer appends to a file while ``rag ingest`` reads it: a whole version or a message, never half."""
    folder = tmp_path / "files"
    folder.mkdir()
    split_corpus(folder)
    growing = folder / "article2.txt"
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 300:  # ~0.4 s of appends: longer than reading all five files
            with open(growing, "a", encoding="utf-8") as f:
                f.write(f"\n第{n}段补充：审批事项再精简。")
            n += 1
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = ingest([folder], settings, embedder=e5)
    finally:
        stop.set()
        thread.join()
    assert all("kept changing" in f.reason for f in report.failed)
    state(settings, e5)  # whatever was stored is one consistent version
    ingest([folder], settings, embedder=e5)
    clean = Settings(home=tmp_path / "clean", model_cache=settings.model_cache)
    ingest([folder], clean, embedder=e5)
    assert state(settings, e5) == state(clean, e5)


# --- hostile documents --------------------------------------------------------------------------


def test_a_50_mb_text_file_is_refused_by_size_and_the_rest_is_ingested(tmp_path, settings, e5):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "good.txt").write_text("标题\n我们取消了纸质申报材料。", encoding="utf-8")
    big = folder / "huge.txt"
    unit = CORPUS.read_text(encoding="utf-8").encode("utf-8")
    with open(big, "wb") as f:
        while f.tell() < 50 * 2**20:
            f.write(unit)
    report = ingest([folder], settings, embedder=e5)
    assert [Path(f.path).name for f in report.failed] == ["huge.txt"]
    assert (
        "over the limit of 20,971,520 bytes (20 MB) per file" in report.failed[0].reason
        and "RAG_MAX_FILE_MB" in report.failed[0].reason
    )
    assert report.added == 1


def test_a_50_mb_text_file_parses_and_chunks_in_linear_time(tmp_path):
    """With the limit raised, 50 MB is read and chunked (embedding it is what takes hours)."""
    from ingest.chunk import chunk_document
    from ingest.parse import parse_file

    big = tmp_path / "huge.txt"
    unit = CORPUS.read_text(encoding="utf-8")
    big.write_text(unit * (50 * 2**20 // len(unit.encode("utf-8")) + 1), encoding="utf-8")
    doc = parse_file(big, max_bytes=64 * 2**20)
    chunks = chunk_document(doc)
    assert len(chunks) > 80_000
    rng = random.Random(7)
    for c in rng.sample(chunks, 200):
        assert doc.text[c.start : c.end] == c.text and len(c.text) <= 300

    line = tmp_path / "line.txt"  # one 270,000-character line without punctuation
    line.write_text("标题\n" + "很长的一行没有标点" * 30000, encoding="utf-8")
    doc = parse_file(line)
    chunks = chunk_document(doc)
    assert len(chunks) == 900 and all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_a_very_long_line_and_deeply_nested_docx(tmp_path, settings, e5):
    import docx

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "line.txt").write_text("标题\n" + "很长的一行没有标点" * 1500, encoding="utf-8")

    def nested(depth: int, path: Path) -> None:
        document = docx.Document()
        document.add_paragraph("嵌套表格")
        cell = document.add_table(rows=1, cols=1).cell(0, 0)
        for _ in range(depth):
            cell = cell.add_table(rows=1, cols=1).cell(0, 0)
        cell.paragraphs[0].text = "最深处的句子说明审批时效提升了一半。"
        document.save(path)

    nested(40, folder / "nested.docx")
    nested(300, folder / "too-deep.docx")
    report = ingest([folder], settings, embedder=e5)
    assert [(Path(f.path).name, f.reason) for f in report.failed] == [
        ("too-deep.docx", "too-deep.docx: nested too deeply to read (over 256 levels of XML)")
    ]
    rows = state(settings, e5)
    assert any("最深处的句子" in text for text, *_ in rows)
    assert max(len(text) for text, *_ in rows) <= 300


# --- hostile uploads through the running page -----------------------------------------------------


def test_hostile_uploads_through_the_page_are_refused_and_the_rest_indexed(tmp_path, settings, bundled_index):
    """Refused files are not kept, kept ones are private, Gradio's copies are deleted, removal needs no listing."""
    from gradio_client import Client, handle_file

    from bench.hostile import slow_docx
    from bench.load import start_page

    copy_index(bundled_index, settings.home)
    files = tmp_path / "to-upload"
    files.mkdir()
    (files / "good.txt").write_text("新的访谈\n市长表示，明年将新建三所高中。", encoding="utf-8")
    (files / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)  # an image named .txt
    (files / "report.docx").write_text("这不是一个docx文件。", encoding="utf-8")  # text named .docx
    (files / "tool.exe").write_bytes(b"MZ" + b"\0" * 100)
    (files / "big.txt").write_text("大" * (2**20), encoding="utf-8")  # 3 MB, over a 1 MB limit
    slow_docx(files / "slow.docx", 40)  # minutes of python-docx work, under the unpacked limit
    gradio_temp = tmp_path / "gradio-temp"
    before_outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(settings.home)}

    proc, url = start_page(env={"RAG_MAX_FILE_MB": "1", "GRADIO_TEMP_DIR": str(gradio_temp)})
    try:
        client = Client(url, verbose=False)
        names = ["good.txt", "photo.txt", "report.docx"]
        message, table, *_ = client.predict([handle_file(str(files / n)) for n in names], api_name="/upload")
        assert message.startswith("已索引 1 个文件")
        assert "photo.txt: binary content" in message
        assert "report.docx: not a valid .docx file" in message
        assert "good.txt" in str(table) and str(settings.home) not in str(table) + message
        refused, *_ = client.predict([handle_file(str(files / "tool.exe"))], api_name="/upload")
        assert "tool.exe: unsupported file type .exe" in refused  # said in the report, never stored
        with pytest.raises(Exception, match="(?i)size|large|limit"):
            client.predict([handle_file(str(files / "big.txt"))], api_name="/upload")
        chat, *_ = client.predict("明年将新建几所高中？", [], api_name="/ask")
        assert "三所高中" in str(chat[-1]["content"])

        kept = [p for p in (settings.home / "uploads").rglob("*") if p.is_file()]
        assert [p.name for p in kept] == ["good.txt"]  # the refused ones are gone
        assert all(p.stat().st_mode & 0o077 == 0 for p in kept)  # readable by this user only
        copies = [p.name for p in gradio_temp.rglob("*") if p.is_file() and p.name in names]
        assert copies == [], copies

        shown = kept[0].relative_to(settings.home).as_posix()
        fresh = Client(url, verbose=False)  # a new session that never listed the documents
        *_, asked = fresh.predict([shown], api_name="/remove")  # the page asks first: nothing goes yet
        assert "good.txt" in asked and "个片段" in asked and kept[0].exists()
        removed, *_ = fresh.predict([shown], api_name="/confirm_remove")
        assert removed.startswith("已删除 1 个文件")
        assert not [p for p in (settings.home / "uploads").rglob("*") if p.is_file()]
        chat, *_ = fresh.predict("明年将新建几所高中？", [], api_name="/ask")
        assert "三所高中" not in str(chat[-1]["content"])

        job = fresh.submit([handle_file(str(files / "slow.docx"))], api_name="/upload")
        time.sleep(3)
        fresh.predict(api_name="/stop_upload")
        cancelled, *_ = job.result(timeout=60)
        assert "slow.docx: cancelled while it was being read" in cancelled
        assert not [p for p in (settings.home / "uploads").rglob("*") if p.is_file()]
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after_outside = {
        p for p in tmp_path.rglob("*") if not p.is_relative_to(settings.home) and not p.is_relative_to(gradio_temp)
    }
    assert after_outside == before_outside, "the upload wrote outside RAG_HOME"
