"""The ingestion run with a fake embedder: idempotent, incremental, pruning, reporting bad files."""

from __future__ import annotations

import shutil

import pytest

from ingest.pipeline import ingest
from ingest.storage import ingest_lock, record_manager
from rag.errors import IndexBusyError
from rag.store import DocumentStore, chroma_client
from rag.types import Chunk
from tests.conftest import CORPUS


def store_state(settings) -> dict[str, tuple]:
    """Chroma's content: id -> (text, source, start, end)."""
    collection = chroma_client(settings).get_collection(settings.collection_name)
    data = collection.get(include=["documents", "metadatas"])
    chunks = [Chunk.from_metadata(d, m) for d, m in zip(data["documents"], data["metadatas"])]
    return {i: (c.text, c.source, c.start, c.end) for i, c in zip(data["ids"], chunks)}


def write_interview(folder, name, body):
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


def test_second_run_adds_and_deletes_nothing(settings, fake_embedder, tmp_path):
    shutil.copy(CORPUS, tmp_path / "c.txt")
    first = ingest([tmp_path], settings, embedder=fake_embedder)
    assert first.added == 38 and first.deleted == 0 and not first.failed
    calls = list(fake_embedder.calls)
    second = ingest([tmp_path], settings, embedder=fake_embedder)
    assert (second.added, second.deleted, second.unchanged) == (0, 0, 38)
    assert fake_embedder.calls == calls  # nothing was embedded again
    assert len(store_state(settings)) == 38


def test_editing_one_file_changes_only_its_chunks(settings, fake_embedder, tmp_path):
    a = write_interview(
        tmp_path, "a.txt", "标题甲\n记者：审批提速了吗？\n局长：审批时限压缩到x个工作日。我们取消了纸质材料。"
    )
    write_interview(tmp_path, "b.txt", "标题乙\n我们推进教育改革。我们建设新高中。")
    ingest([tmp_path], settings, embedder=fake_embedder)
    before = store_state(settings)
    b_ids = {i for i, v in before.items() if v[1].endswith("b.txt")}

    a.write_text(
        "标题甲\n记者：审批提速了吗？\n局长：审批时限压缩到x个工作日。我们全面推行网上办理。", encoding="utf-8"
    )
    report = ingest([tmp_path], settings, embedder=fake_embedder)
    after = store_state(settings)
    assert b_ids <= set(after)
    assert {i for i, v in after.items() if v[1].endswith("b.txt")} == b_ids
    assert report.added >= 1 and report.deleted >= 1
    assert not any("纸质材料" in v[0] for v in after.values())
    assert any("网上办理" in v[0] for v in after.values())
    # offsets still point into the stored document text
    docs = DocumentStore(settings)
    collection = chroma_client(settings).get_collection(settings.collection_name)
    data = collection.get(include=["documents", "metadatas"])
    for stored, meta in zip(data["documents"], data["metadatas"]):
        chunk = Chunk.from_metadata(stored, meta)
        assert stored.startswith(chunk.title + "\n")
        assert docs.load(meta["doc_hash"]).text[chunk.start : chunk.end] == chunk.text


def _stored_chunks_quote_their_document(settings) -> list[Chunk]:
    """Every stored chunk, checked against the stored document version its metadata names:
    its text at its offsets, and metadata equal to what chunking that version afresh gives."""
    from ingest.chunk import chunk_document

    docs = DocumentStore(settings)
    collection = chroma_client(settings).get_collection(settings.collection_name)
    data = collection.get(include=["documents", "metadatas"])
    chunks = [Chunk.from_metadata(d, m) for d, m in zip(data["documents"], data["metadatas"])]
    fresh = {}
    for doc_hash in {c.doc_hash for c in chunks}:
        fresh |= {c.id: c for c in chunk_document(docs.load(doc_hash), settings.chunk_size, settings.chunk_overlap)}
    for chunk_id, chunk in zip(data["ids"], chunks):
        assert docs.load(chunk.doc_hash).text[chunk.start : chunk.end] == chunk.text
        assert chunk_id == chunk.id and chunk == fresh[chunk_id]
    assert len(fresh) == len(chunks)
    return chunks


def test_an_edit_in_the_middle_rewrites_only_the_chunks_around_it(settings, fake_embedder, tmp_path):
    """Chunk identity is source + title + text: one sentence added re-embeds and re-adds at most 3
    chunks; the others keep their records, with offsets and paragraph numbers moved in place."""
    unit = CORPUS.read_text(encoding="utf-8")
    text = "\n".join(unit.replace("xx", f"第{i}号") for i in range(6))
    path = write_interview(tmp_path, "archive.txt", text)
    first = ingest([path], settings, embedder=fake_embedder)
    before = {c.id: c for c in _stored_chunks_quote_their_document(settings)}
    at = text.index("。", len(text) // 2) + 1
    path.write_text(text[:at] + "\n这是新加的一段话。" + text[at:], encoding="utf-8")  # one sentence, its own paragraph
    fake_embedder.calls.clear()
    report = ingest([path], settings, embedder=fake_embedder)
    assert 1 <= report.added <= 3 and 1 <= report.deleted <= 3
    assert report.unchanged == first.added - report.deleted and report.files[0].moved > 0
    assert sum(fake_embedder.calls) <= 3 + 8  # the new chunks and their new sentences only
    chunks = _stored_chunks_quote_their_document(settings)
    kept = [c for c in chunks if c.id in before]
    assert len(kept) == first.added - report.deleted
    assert len({c.doc_hash for c in chunks}) == 1 and len(DocumentStore(settings).hashes()) == 1
    assert all(c.start > before[c.id].start for c in kept if c.start > at)  # moved by the edit
    assert any(c.para_start == before[c.id].para_start + 1 for c in kept if c.start > at)  # renumbered


def test_chroma_keeps_only_the_fields_that_differ_from_their_default(settings, fake_embedder, tmp_path):
    """The stored metadata leaves out empty fields, and reads back as the same chunks.  An older
    record that still carries them is not rewritten for it; a field that is no longer wanted (a
    speaker the layout no longer gives) is deleted, not left behind by Chroma's merging update."""
    from ingest.records import refresh_metadata
    from rag.types import DEFAULTS

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    chunks = _stored_chunks_quote_their_document(settings)  # read back equal to a fresh chunking
    collection = chroma_client(settings).get_collection(settings.collection_name)
    data = collection.get(include=["metadatas"])
    stored = dict(zip(data["ids"], data["metadatas"]))
    assert all(stored[c.id] == c.stored_metadata() and len(stored[c.id]) < len(c.metadata()) for c in chunks)
    assert not any(meta.get(key, object()) == value for meta in stored.values() for key, value in DEFAULTS.items())

    older, wrong = chunks[0], chunks[1]
    collection.update(ids=[older.id, wrong.id], metadatas=[older.metadata(), {**wrong.metadata(), "speaker": "某人"}])
    assert refresh_metadata(collection, chunks) == 1
    after = dict(zip(*(lambda d: (d["ids"], d["metadatas"]))(collection.get(ids=[older.id, wrong.id]))))
    assert after[older.id] == older.metadata()  # left as it was: the same once compacted
    assert after[wrong.id] == wrong.stored_metadata() and "speaker" not in after[wrong.id]
    assert len(_stored_chunks_quote_their_document(settings)) == len(chunks)


def test_a_passage_repeated_word_for_word_is_stored_once_per_occurrence(settings, fake_embedder, tmp_path):
    body = "标题甲\n局长：我们取消了纸质材料。\n" * 3
    report = ingest([write_interview(tmp_path, "r.txt", body)], settings, embedder=fake_embedder)
    chunks = _stored_chunks_quote_their_document(settings)
    assert report.added == len(chunks) == 3 and sorted(c.repeat for c in chunks) == [0, 1, 2]
    again = ingest([tmp_path / "r.txt"], settings, embedder=fake_embedder)
    assert (again.added, again.deleted, again.unchanged) == (0, 0, 3)


def test_prune_removes_chunks_of_deleted_files(settings, fake_embedder, tmp_path):
    write_interview(tmp_path, "a.txt", "标题甲\n我们推进审批改革。")
    gone = write_interview(tmp_path, "b.txt", "标题乙\n我们推进教育改革。")
    ingest([tmp_path], settings, embedder=fake_embedder)
    gone.unlink()
    kept = ingest([tmp_path], settings, embedder=fake_embedder)
    assert kept.pruned == 0 and len(store_state(settings)) == 2
    pruned = ingest([tmp_path], settings, embedder=fake_embedder, prune=True)
    assert pruned.pruned == 1
    assert [v[1] for v in store_state(settings).values()] == [str((tmp_path / "a.txt").resolve())]
    assert len(record_manager(settings).list_keys()) == 1
    assert len(DocumentStore(settings).hashes()) == 1


def test_broken_files_are_reported_and_the_rest_ingested(settings, fake_embedder, tmp_path):
    text = "标题\n记者：营商环境怎么样？\n局长：我们取消了纸质申报材料。"
    (tmp_path / "gbk.txt").write_bytes(text.encode("gbk"))
    (tmp_path / "bom.txt").write_bytes(text.replace("标题", "另一标题").encode("utf-8-sig"))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "corrupt.docx").write_bytes(b"PK\x03\x04garbage")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.xyz").write_text("not an interview")
    (tmp_path / ".hidden.txt").write_text("标题\n记者：问？\n局长：答。")
    report = ingest([tmp_path, tmp_path / "notes.xyz", tmp_path / "missing.txt"], settings, embedder=fake_embedder)
    failed = {f.path.rsplit("/", 1)[-1]: f.reason for f in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "corrupt.docx", "image.png", "missing.txt"}
    assert "empty" in failed["empty.txt"] and "binary" in failed["binary.txt"] and "image" in failed["image.png"]
    # every file given is in the report, once: the ones not read say why
    skipped = {f.path.rsplit("/", 1)[-1]: f.reason for f in report.files if f.status == "skipped"}
    assert skipped == {"notes.xyz": "unsupported type .xyz", ".hidden.txt": "hidden file"}
    assert len(report.files) == 9
    sources = {v[1].rsplit("/", 1)[-1] for v in store_state(settings).values()}
    assert sources == {"gbk.txt", "bom.txt"}


def test_progress_reaches_the_total(settings, fake_embedder, tmp_path):
    shutil.copy(CORPUS, tmp_path / "c.txt")
    seen = []
    ingest([tmp_path], settings, embedder=fake_embedder, on_progress=lambda d, t, label: seen.append((d, t)))
    done, total = seen[-1]
    assert done == total == CORPUS.stat().st_size  # in bytes of the files read
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_files_are_streamed_one_ahead_and_their_chunks_reach_the_bm25_table_file_by_file(
    settings, fake_embedder, tmp_path, monkeypatch
):
    """A run holds at most the file being indexed and the next one read: file k+2 is not read
    before file k is indexed, and file k's chunks are in the chunk table before file k+2 is
    indexed (they are tokenised while file k+1 is written), every file's at the end."""
    import sqlite3

    import ingest.pipeline as pipeline
    from rag.lexical import folder

    names = [f"{i}.txt" for i in range(5)]
    for i, name in enumerate(names):
        write_interview(tmp_path, name, f"标题{i}\n局长：第{i}件事情我们做完了。我们推进了第{i}项改革。")
    events, table_rows = [], []
    read, index = pipeline.read_document, pipeline._index_file

    def reading(path, *args):
        events.append(("read", path.name))
        return read(path, *args)

    def indexing(doc, chunks, run, size):
        db = sqlite3.connect(folder(settings.home, settings.collection_name) / "chunks.sqlite")
        table_rows.append({source.rsplit("/", 1)[-1] for (source,) in db.execute("SELECT source FROM terms")})
        db.close()
        outcome = index(doc, chunks, run, size)
        events.append(("indexed", doc.file_name))
        return outcome

    monkeypatch.setattr(pipeline, "read_document", reading)
    monkeypatch.setattr(pipeline, "_index_file", indexing)
    report = ingest([tmp_path], settings, embedder=fake_embedder)
    assert report.count("indexed") == 5
    for k in range(3):
        assert events.index(("read", names[k + 2])) > events.index(("indexed", names[k]))
    assert table_rows == [set(names[: max(0, k - 1)]) for k in range(5)]  # before each file: all but the last
    db = sqlite3.connect(folder(settings.home, settings.collection_name) / "chunks.sqlite")
    assert {source.rsplit("/", 1)[-1] for (source,) in db.execute("SELECT source FROM terms")} == set(names)
    db.close()


def test_a_second_writer_is_refused(settings, fake_embedder, tmp_path):
    with ingest_lock(settings), pytest.raises(IndexBusyError, match="another ingestion"):
        ingest([CORPUS], settings, embedder=fake_embedder)


def test_orphans_from_an_interrupted_run_are_reconciled(settings, fake_embedder, tmp_path):
    from ingest.records import reconcile
    from rag.store import vector_store

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    store = vector_store(settings, fake_embedder)
    # a vector written before the crash, whose record never was
    store.add_texts(["孤儿片段。"], metadatas=[{"source": "x", "doc_hash": "y"}], ids=["orphan"])
    records = record_manager(settings)
    reconcile(store, records)
    assert "orphan" not in store_state(settings)
    assert len(store_state(settings)) == 38


def test_a_kill_between_the_two_deletes_heals_in_one_run(settings, fake_embedder, tmp_path):
    """Chroma's chunks of a file deleted, the record manager's keys not (a kill in between): one run restores them."""
    from rag.store import vector_store

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    clean = store_state(settings)
    store = vector_store(settings, fake_embedder)
    store.delete(sorted(clean)[:7])
    report = ingest([tmp_path], settings, embedder=fake_embedder)
    assert report.added == 7
    assert store_state(settings) == clean
    assert set(record_manager(settings).list_keys()) == set(clean)


def test_the_bundled_collection_is_one_document_whatever_its_install_path(settings, fake_embedder, tmp_path):
    """An index made by an older install (source = its absolute path) and a new install share RAG_HOME."""
    from ingest.pipeline import BUNDLED_SOURCE
    from rag.store import vector_store

    elsewhere = tmp_path / "old-venv" / "site-packages" / "ingest" / "data"
    elsewhere.mkdir(parents=True)
    shutil.copy(CORPUS, elsewhere / CORPUS.name)
    ingest([elsewhere / CORPUS.name], settings, embedder=fake_embedder)  # an older index keyed by the path
    store = vector_store(settings, fake_embedder)
    assert {v[1] for v in store_state(settings).values()} == {str((elsewhere / CORPUS.name).resolve())}
    report = ingest(None, settings, embedder=fake_embedder)  # the bundled collection from this install
    state = store_state(settings)
    assert len(state) == 38 and {v[1] for v in state.values()} == {BUNDLED_SOURCE}
    assert report.pruned == 38
    assert ingest([CORPUS], settings, embedder=fake_embedder).added == 0  # the same file by its path: one document
    assert len(store.get(include=[])["ids"]) == 38


def test_a_file_of_more_chunks_than_one_chroma_write_takes_is_stored_once(settings, fake_embedder, tmp_path):
    """Over 6,000 chunks (Chroma takes 5,461 a write here): bounded batches, every chunk exactly once."""
    from dataclasses import replace

    from ingest.records import max_batch
    from rag.store import chroma_client

    small = replace(settings, chunk_size=50, chunk_overlap=0)
    sentences = [f"第{i}项举措是把审批时限压缩到{i % 9 + 1}个工作日以内并全面推行网上办理。" for i in range(6500)]
    (tmp_path / "big.txt").write_text("大文件\n" + "\n".join(sentences), encoding="utf-8")
    report = ingest([tmp_path / "big.txt"], small, embedder=fake_embedder)
    assert not report.failed and report.added > max(6000, chroma_client(small).get_max_batch_size())
    assert max_batch(chroma_client(small)) <= 1000
    assert max(fake_embedder.calls) <= 4 * 16  # embedded group by group, never all at once
    state = store_state(small)
    assert len(state) == report.added == len({(v[2], v[3]) for v in state.values()})  # once each, by offsets
    again = ingest([tmp_path / "big.txt"], small, embedder=fake_embedder)
    assert (again.added, again.deleted, again.unchanged) == (0, 0, report.added)

    from rag.retrieval import HybridRetriever
    from rag.store import read_all, vector_store

    paged = read_all(vector_store(small, fake_embedder), ["metadatas"], page=700)  # reads are paginated
    assert sorted(paged["ids"]) == sorted(state) and len(paged["metadatas"]) == len(state)
    assert len(HybridRetriever(small, fake_embedder).lexical().ids) == len(state)


def test_stored_documents_reach_the_disk_before_they_are_renamed_into_place(
    settings, fake_embedder, tmp_path, monkeypatch
):
    """fsync of the file (and its folder) before and after the rename: a power cut leaves old or new, never empty."""
    import os

    import rag.store

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(rag.store.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    target = tmp_path / "doc.json"
    rag.store.write_atomically(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}' and len(synced) == 2  # the file, then its folder
    synced.clear()
    rag.store.write_atomically(tmp_path / "vector.json", b"[0.1]", durable=False)  # a cache entry
    assert synced == []


def test_unchanged_files_are_found_unchanged_without_being_read(settings, fake_embedder, tmp_path, monkeypatch):
    """Size and content hash as recorded, chunks all there: not parsed again.  An edit, a removal, a
    new chunk size or a store that disagrees with its records: read again."""
    import dataclasses
    import os
    from pathlib import Path

    import ingest.pipeline as pipeline
    from ingest.collection import remove_documents

    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.txt").write_text(f"访谈{i}\n局长：第{i}项改革已经完成。", encoding="utf-8")
    first = ingest([folder], settings, embedder=fake_embedder)
    real, read = pipeline.read_document, []
    monkeypatch.setattr(
        pipeline, "read_document", lambda path, *a, **k: read.append(Path(path).name) or real(path, *a, **k)
    )
    os.utime(folder / "f0.txt", (1, 1))  # a new mtime, the same bytes
    again = ingest([folder], settings, embedder=fake_embedder)
    assert read == [] and [f.status for f in again.files] == ["unchanged"] * 3
    assert again.unchanged == first.added
    (folder / "f1.txt").write_text("访谈1\n局长：第1项改革明年完成。", encoding="utf-8")
    assert ingest([folder], settings, embedder=fake_embedder).added >= 1 and read == ["f1.txt"]
    remove_documents(settings, [str((folder / "f2.txt").resolve())], embedder=fake_embedder)
    read.clear()
    assert ingest([folder], settings, embedder=fake_embedder).added >= 1 and read == ["f2.txt"]
    read.clear()
    ingest([folder], dataclasses.replace(settings, chunk_size=120), embedder=fake_embedder)
    assert sorted(read) == ["f0.txt", "f1.txt", "f2.txt"]


def test_the_bundled_collection_stored_under_an_older_install_path_is_replaced(settings, fake_embedder, tmp_path):
    """An index made when the bundled file was stored under its install path: ingesting the bundled
    collection removes that copy, so it is not held twice."""
    from ingest.pipeline import BUNDLED_SOURCE

    older = tmp_path / "old-install" / "ingest" / "data" / CORPUS.name
    older.parent.mkdir(parents=True)
    shutil.copy(CORPUS, older)
    ingest([older], settings, embedder=fake_embedder)
    report = ingest(None, settings, embedder=fake_embedder)
    assert report.deleted == 38
    assert {v[1] for v in store_state(settings).values()} == {BUNDLED_SOURCE}
