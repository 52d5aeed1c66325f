"""Keeping Chroma, LangChain's record manager and the stored documents in agreement, in bounded steps."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ingest import lexical
from rag import lexical as lexical_index
from rag.config import Settings
from rag.home import end_pending, pending_sources
from rag.store import DocumentStore, publish_stamp, read_all, write_atomically
from rag.types import Chunk, compact

log = logging.getLogger(__name__)

INDEX_BATCH = 1000  # chunks per index() batch: progress and the vector cache move at this step


def max_batch(client) -> int:
    """The most records one write may carry: ``INDEX_BATCH``, or less when Chroma accepts fewer."""
    try:
        return max(1, min(INDEX_BATCH, client.get_max_batch_size()))
    except Exception:  # a client without the call (an older server): the default
        return INDEX_BATCH


def delete_in_batches(store, ids: list[str], batch: int = INDEX_BATCH) -> None:
    """``store.delete`` in steps Chroma accepts."""
    for i in range(0, len(ids), batch):
        store.delete(ids[i : i + batch])


def chunk_key(document) -> str:
    """The record key ``index()`` gives a chunk: its own id (see ``Chunk.id``)."""
    return document.metadata["chunk_id"]


def refresh_metadata(collection, chunks: list[Chunk], batch: int = INDEX_BATCH) -> int:
    """Rewrite the stored metadata of ``chunks`` where it differs (offsets moved by an edit
    elsewhere in the file); return how many records changed.  Vectors are left alone.

    ``collection`` is the Chroma collection itself: LangChain's store has no metadata-only
    update (its ``update_documents`` embeds again).
    """
    changed = 0
    for i in range(0, len(chunks), batch):
        wanted = {c.id: c.stored_metadata() for c in chunks[i : i + batch]}
        stored = collection.get(ids=list(wanted), include=["metadatas"])
        # An older record may still carry its empty fields: the same metadata once compacted.
        # Chroma's update merges, so a field no longer wanted is sent as None (deleted).
        stale = [
            (chunk_id, {**dict.fromkeys(meta.keys() - wanted[chunk_id].keys()), **wanted[chunk_id]})
            for chunk_id, meta in zip(stored["ids"], stored["metadatas"], strict=True)
            if compact(meta) != wanted[chunk_id]
        ]
        if stale:
            collection.update(ids=[k for k, _ in stale], metadatas=[m for _, m in stale])
            changed += len(stale)
    return changed


def live_texts(settings: Settings, client) -> list[str]:
    """The chunk texts of every collection in this home embedded by this model (they share a cache)."""
    texts: list[str] = []
    for collection in client.list_collections():
        if collection.name.endswith(f"-{settings.model_slug}"):
            texts += read_all(client.get_collection(collection.name), ["documents"])["documents"]
    return texts


def all_metadata(store) -> tuple[list[str], list[dict]]:
    data = read_all(store, ["metadatas"])
    return data["ids"], data["metadatas"]


def forget_sources(store, records, sources: set[str]) -> int:
    """Delete every chunk and record of ``sources``; return how many chunks."""
    if not sources:
        return 0
    doomed = read_all(store, [], where={"source": {"$in": sorted(sources)}})["ids"]
    if doomed:
        delete_in_batches(store, doomed)
    records.delete_keys(records.list_keys(group_ids=sorted(sources)))
    return len(doomed)


def reconcile(store, records, collection=None) -> None:
    """Make Chroma and the record manager agree after an interrupted run.

    With ``collection`` (the Chroma collection under ``store``), nothing is read when the two
    hold as many chunks: with one writer at a time, a run cut short leaves them unequal
    (``index()`` writes Chroma before its records and deletes in the same order), and the
    next run heals it; only then are both sides' ids read.
    """
    if collection is not None and collection.count() == record_count(records):
        return
    recorded = set(records.list_keys())
    in_store = set(read_all(store, [])["ids"])
    orphans = sorted(in_store - recorded)
    if orphans:
        delete_in_batches(store, orphans)
    missing = sorted(recorded - in_store)
    if missing:
        records.delete_keys(missing)


def record_count(records) -> int:
    """How many keys the record manager holds: one SQL count (``list_keys`` builds an object
    per key, seconds at 100,000 chunks); the table is LangChain's ``upsertion_record``."""
    from sqlalchemy import text

    try:
        with records.engine.connect() as connection:
            query = text("SELECT count(*) FROM upsertion_record WHERE namespace = :namespace")
            return connection.execute(query, {"namespace": records.namespace}).scalar_one()
    except Exception:  # another record manager, or a schema of another LangChain version
        return len(records.list_keys())


def previous_chunks(collection, source: str) -> dict[str, tuple[str, str]]:
    """The stored chunks of ``source`` before this run: id -> (stored text, document version)."""
    data = read_all(collection, ["documents", "metadatas"], where={"source": source})
    return {i: (text, m["doc_hash"]) for i, text, m in zip(data["ids"], data["documents"], data["metadatas"])}


def tidy_after(collection, documents: DocumentStore, cached, before: dict, chunks: list[Chunk]) -> None:
    """After a file was indexed: the cached vectors of its chunks that are gone, and the stored
    versions of it no chunk refers to any more, deleted (what a whole-collection sweep would
    find, found from the file's own chunks).  A vector another collection of this home still
    uses may go with them: it is embedded again if that collection is re-ingested."""
    now = {c.id for c in chunks}
    texts_now = {c.indexed_text for c in chunks}
    gone = {before[i][0] for i in before.keys() - now} - texts_now
    if gone:
        keyed = cached.document_embedding_store
        keyed.store.mdelete([keyed.key_encoder(text) for text in gone])
    current = {c.doc_hash for c in chunks}
    for doc_hash in {h for _, h in before.values()} - current:
        if not collection.get(where={"doc_hash": doc_hash}, limit=1, include=[])["ids"]:
            documents.remove(doc_hash)


def collect_garbage(store, documents: DocumentStore) -> None:
    """Remove stored document versions no chunk refers to any more."""
    _, metadatas = all_metadata(store)
    live = {m["doc_hash"] for m in metadatas}
    for doc_hash in documents.hashes() - live:
        documents.remove(doc_hash)


def stamp_path(settings: Settings) -> Path:
    return settings.home / f"{settings.collection_name}.stamp"


def lexical_rows(changes: dict[str, list[Chunk]]) -> dict[str, list[tuple[str, str, str]]]:
    """What the BM25 chunk table keeps of each changed source's chunks: (id, stored text, interviewee)."""
    return {source: [(c.id, c.indexed_text, c.interviewee) for c in chunks] for source, chunks in changes.items()}


def mark_changed(settings: Settings, collection, changes: dict[str, list[Chunk]] | None = None) -> None:
    """Save the BM25 side for a new index stamp, then write the stamp readers use to notice
    an ingest: a reader that sees the new stamp finds its saved index (``rag.lexical``).

    ``changes``: the chunks each changed source holds now (an empty list: removed; ``{}``: applied
    already, file by file, through ``ingest.lexical.ChunkTable``); None when the whole collection
    must be read.
    """
    marker = str(time.time_ns())
    lexical.write(settings.home, collection, marker, None if changes is None else lexical_rows(changes))
    write_atomically(stamp_path(settings), marker.encode())
    publish_stamp(collection, marker)
    lexical.forget_others(settings.home, collection.name, marker)


def ensure_lexical(settings: Settings, collection) -> None:
    """Save the BM25 side for the current stamp when none is saved (an index made before
    indexes were saved, or a save cut short)."""
    try:
        marker = stamp_path(settings).read_text()
    except OSError:
        marker = ""
    if not marker:
        mark_changed(settings, collection)
    elif not lexical_index.saved(settings.home, collection.name, marker):
        lexical.write(settings.home, collection, marker)


def cut_short(left: frozenset[str], aliases: dict[str, Path]) -> list[Path]:
    """Of the sources ``left`` journaled in RAG_HOME/pending by a stopped run (or an upload), the
    files still there (``aliases``: sources that are not paths): the run reads them again, whole."""
    paths = [aliases.get(s) or Path(s) for s in left]
    return [p.resolve() for p in paths if p.is_file()]


def heal(settings: Settings, store, records, left: frozenset[str]) -> tuple[set[str], int]:
    """Take out what a stopped run left half-written: the chunks and records of every journaled
    source (the write lock is held: no run is at it now), and the leftovers of an upload whose
    copy never completed.  ``left``: the sources journaled when the run began (one that an upload
    journals meanwhile is that upload's to index).  (The sources, how many chunks.)  The stored versions no chunk refers
    to go with the run's garbage collection; the files still there go in again whole (``cut_short``)."""
    left = set(left) & pending_sources(settings.home)  # journaled when the run began, and still
    if not left:
        return set(), 0
    log.warning("completing or removing %d document(s) a stopped run left half-written", len(left))
    removed = forget_sources(store, records, left)
    for source in left:
        end_pending(settings.home, source)
        if not Path(source).exists():
            discard_upload(settings, Path(source))
    return left, removed


def discard_upload(settings: Settings, path: Path) -> None:
    """Delete a stored upload (and its folder, once empty); anything outside RAG_HOME/uploads is left alone."""
    uploads = (settings.home / "uploads").resolve()
    path = Path(path).resolve()
    if not path.is_relative_to(uploads) or path == uploads:
        return
    path.unlink(missing_ok=True)
    end_pending(settings.home, str(path))
    if path.parent != uploads:
        for leftover in path.parent.glob(".*.partial"):  # a copy cut short by a kill
            leftover.unlink(missing_ok=True)
        if not any(path.parent.iterdir()):
            path.parent.rmdir()
