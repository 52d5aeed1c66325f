"""The ingestion run: files -> parsed documents -> chunks -> embeddings -> Chroma.

Idempotence is LangChain's indexing API: ``index()`` with a SQL record manager skips
chunks it has seen, and its ``scoped_full`` cleanup deletes, once the whole file is through,
the chunks of that file the run did not see again: an unchanged chunk of a changed file is
never deleted and re-added, and a file of any size goes in batches no larger than Chroma
accepts (``client.get_max_batch_size()``), each batch's vectors cached as soon as it is
embedded.  A record is keyed by ``Chunk.id`` (source, title, text), not by a hash of its
metadata: after an edit the chunks the edit did not touch keep their records and vectors,
and only their metadata (offsets, paragraph numbers, document version) is rewritten in place.  A run killed part-way is completed by the next one: Chroma writes are upserts by content id, and ``reconcile`` -- before indexing and
after -- removes vectors the record manager never heard of and records whose vectors are
missing (a kill between the two deletes of a removal), so one run heals either case.

Files are read one at a time, each within a budget (``ingest.budget``): the next in a thread
while this one is embedded, the first before the write lock is taken (a slow .docx keeps no
other run waiting).  Each file's chunks go into the BM25 side's chunk table as soon as it is
indexed: a run holds two files' text and chunks at most, whatever the size of the collection.
Any failure of one file is its one-line reason.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from langchain_core.embeddings import Embeddings

from ingest.budget import read_document
from ingest.chunk import chunk_document
from ingest.files import FileOutcome, collect_files, remember, to_read
from ingest.lexical import ChunkTable
from ingest.progress import CountingEmbeddings, Progress
from ingest.records import (
    all_metadata,
    chunk_key,
    collect_garbage,
    cut_short,
    ensure_lexical,
    forget_sources,
    heal,
    lexical_rows,
    live_texts,
    mark_changed,
    max_batch,
    previous_chunks,
    reconcile,
    refresh_metadata,
    tidy_after,
)
from ingest.storage import ingest_lock, prune_cache, record_manager, storage_errors
from ingest.tokens import APART_BYTES, Tokenizer
from rag.config import Settings
from rag.errors import ParseError
from rag.home import begin_pending, end_pending, pending_sources
from rag.store import DocumentStore, cached_embedder, chroma_client, vector_store, widen_search
from rag.types import Chunk, ParsedDocument

log = logging.getLogger(__name__)
T = TypeVar("T")
_END = object()

BUNDLED_COLLECTION = Path(__file__).parent / "data" / "leader_interviews.txt"
# The bundled collection is stored under this name, not its install path: a reinstall
# elsewhere sharing RAG_HOME finds it indexed already instead of indexing it twice.
BUNDLED_SOURCE = "<bundled>/leader_interviews.txt"


@dataclass
class IngestReport:
    """The summary of one run."""

    files: list[FileOutcome] = field(default_factory=list)
    pruned: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def deleted(self) -> int:
        return sum(f.deleted for f in self.files) + self.pruned

    @property
    def unchanged(self) -> int:
        return sum(f.unchanged for f in self.files)

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.deleted or any(f.moved for f in self.files))


def _to_documents(chunks: list[Chunk]):
    from langchain_core.documents import Document

    return [Document(page_content=c.indexed_text, metadata=c.stored_metadata()) for c in chunks]


def read_files(
    files: list[Path],
    settings: Settings,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> Iterator[tuple[Path, tuple[ParsedDocument, list[Chunk]] | FileOutcome]]:
    """Each file in turn, parsed and chunked -- or the outcome of one that cannot be read.

    One at a time, as the run asks for them (``ahead`` reads one more meanwhile), whatever the
    number of files.  A scan's OCR is reported page by page to ``on_progress`` ("scan.pdf: OCR").
    """
    for path in files:
        name = Path(path).name
        on_page = (lambda done, total, name=name: on_progress(done, total, f"{name}: OCR")) if on_progress else None
        try:
            doc = read_document(path, settings, cancel, on_page)
            if Path(path).resolve() == BUNDLED_COLLECTION.resolve():
                doc = dataclasses.replace(doc, source=BUNDLED_SOURCE)
            yield path, (doc, chunk_document(doc, settings.chunk_size, settings.chunk_overlap))
        except ParseError as e:
            yield path, FileOutcome(str(path), "failed", str(e))
        except Exception as e:  # a failure nobody foresaw stays this file's: the run goes on
            log.exception("reading %s failed", path)
            yield path, FileOutcome(str(path), "failed", f"{name}: cannot read this file ({e.__class__.__name__})")


def ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one made in a thread of its own while the caller works on this one:
    a file is parsed while the one before it is embedded, and no more than one waits."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
    try:
        step = pool.submit(next, items, _END)
        while (item := step.result()) is not _END:
            step = pool.submit(next, items, _END)
            yield item
    finally:  # the run stopped early: the file being read is left to finish on its own
        pool.shutdown(wait=False, cancel_futures=True)


def ingest(
    paths: Iterable[Path] | None = None,
    settings: Settings | None = None,
    *,
    prune: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
    embedder=None,
    cancel: threading.Event | None = None,
) -> IngestReport:
    """Ingest ``paths`` (None: the bundled collection) into the index under ``settings.home``,
    and complete or remove first what a stopped run left half-written (``[]``: that alone).

    ``cancel``, set from another thread, stops a file that is still being read (it is reported failed).
    """
    from rag.embeddings import load_embedder

    settings = settings or Settings.from_env()
    began = time.perf_counter()
    report = IngestReport()
    files, report.files = collect_files([BUNDLED_COLLECTION] if paths is None else paths)
    left = pending_sources(settings.home)  # what a stopped run (or an upload) left journaled
    files += [f for f in cut_short(left, {BUNDLED_SOURCE: BUNDLED_COLLECTION}) if f not in files]
    unchanged, files, read = to_read(settings, files, left)  # read: the hash of each file's bytes, as parsed
    report.files += unchanged
    parsed = ahead(read_files(files, settings, cancel, on_progress))
    first = list(itertools.islice(parsed, 1))  # read before the write lock: a slow file keeps no one waiting
    with storage_errors(settings), ingest_lock(settings):
        sizes = {path: _size(path) for path in files}
        progress = Progress(on_progress)
        progress.start(sizes.values())
        counting = CountingEmbeddings(embedder or load_embedder(settings), progress)
        client = chroma_client(settings)
        apart = sum(sizes.values()) >= APART_BYTES  # tokenise in a worker beside this process
        with _Run.open(settings, counting, client, Tokenizer(apart)) as run:
            reconcile(run.store, run.records, run.collection)
            healed, report.pruned = heal(settings, run.store, run.records, left)
            run.changed({source: [] for source in healed})
            if BUNDLED_COLLECTION.resolve() in files:  # files are resolved paths
                run.changed(forget(run.store, run.records, _legacy_bundled(run.store), report))
            whole = _index_files(run, itertools.chain(first, parsed), sizes, read, report)
            if prune:
                run.changed(forget(run.store, run.records, _missing_sources(run.store), report))
            reconcile(run.store, run.records, run.collection)
            if report.pruned:  # whole files removed: the sweep over every chunk (rare: --prune, a moved install)
                collect_garbage(run.store, run.documents)
                prune_cache(run.cached, live_texts(settings, client))
        if report.changed:
            mark_changed(settings, run.collection, {})  # the chunk table has every change already
        else:
            ensure_lexical(settings, run.collection)
        remember(settings, whole)  # the next run finds these unchanged without reading them
    report.seconds = time.perf_counter() - began
    return report


def _index_files(run: _Run, parsed, sizes: dict[Path, int], read: dict[Path, str], report: IngestReport) -> list:
    """Each file of ``parsed`` indexed as it comes; (path, source, chunks, hash of the bytes read)
    of each now in whole, for ``files.remember``."""
    whole = []
    for path, result in parsed:
        if isinstance(result, FileOutcome):  # could not be read
            report.files.append(result)
            run.counting.progress.close_file(sizes[path])
            continue
        doc, chunks = result
        outcome = _index_file(doc, chunks, run, sizes[path])
        report.files.append(outcome)
        if path in read:
            whole.append((path, doc.source, len(chunks), read[path]))
        if outcome.status == "indexed":
            run.changed({doc.source: chunks})
    return whole


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since it was listed: reading it will say so
        return 0


def sentence_texts(chunks: list[Chunk]) -> list[str]:
    """The sentences of ``chunks`` as the answerer reads them, each once."""
    return list(dict.fromkeys(c.text[start - c.start : end - c.start] for c in chunks for start, end in c.sentences()))


def embed_sentences(settings: Settings, embedder: Embeddings, texts: list[str]) -> None:
    """Make the sentence vectors the answer scorer reads, now rather than at the first question.

    They are kept in the answerer's sentence cache (by the sentence's text), so a sentence met
    again in another file or another run is not embedded twice.
    """
    if texts:
        cached_embedder(settings, embedder, sentences=True).embed_documents(texts)


@dataclass
class _Run:
    """What one run writes with: the settings, the counting embedder and its vector cache,
    LangChain's store and the Chroma collection under it, the records, the stored documents."""

    settings: Settings
    counting: CountingEmbeddings
    cached: Embeddings
    store: object
    collection: object
    records: object
    documents: DocumentStore
    batch: int
    table: ChunkTable  # the BM25 side's chunk table, changed file by file

    @classmethod
    def open(cls, settings: Settings, counting: CountingEmbeddings, client, tokenizer: Tokenizer) -> _Run:
        cached = cached_embedder(settings, counting)
        store = vector_store(settings, cached, client)
        collection = client.get_collection(settings.collection_name)
        widen_search(collection)  # an index an older version made
        records, documents = record_manager(settings), DocumentStore(settings)
        table = ChunkTable(settings.home, settings.collection_name, tokenizer)
        return cls(settings, counting, cached, store, collection, records, documents, max_batch(client), table)

    def changed(self, changes: dict[str, list[Chunk]]) -> None:
        """The chunks each of these sources holds now (none: removed), into the chunk table
        (their rows written when the next file is done: ``ChunkTable.submit``)."""
        if changes:
            self.table.submit(lexical_rows(changes))

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc) -> None:
        try:  # also when the run fails: the rows of the files it indexed are Chroma's
            self.table.flush()
        except Exception as e:  # the next run finds the table short and fills it from Chroma
            log.warning("the BM25 chunk table was left short: %s", e)
        finally:
            self.table.close()


def _index_file(doc: ParsedDocument, chunks: list[Chunk], run: _Run, size: int) -> FileOutcome:
    """One file indexed, what it left behind tidied, its sentences' vectors made: journaled from
    before its first chunk until after its last, so that readers see it only whole."""
    # A version stored already is this file unchanged (or a run cut short): nothing of it to tidy.
    before = {} if run.documents.path(doc.content_hash).exists() else previous_chunks(run.collection, doc.source)
    sentences = sentence_texts(chunks)
    run.counting.progress.open_file(size, len(chunks) + len(sentences), doc.file_name)
    begin_pending(run.settings.home, doc.source)
    outcome = _index_document(doc, chunks, run)
    if outcome.status == "indexed":
        tidy_after(run.collection, run.documents, run.cached, before, chunks)
    embedded = run.counting.embedded
    if outcome.added:
        embed_sentences(run.settings, run.counting, sentences)
    run.counting.progress.advance(len(sentences) - (run.counting.embedded - embedded))  # cached, or unchanged
    end_pending(run.settings.home, doc.source)
    run.counting.progress.close_file(size)
    return outcome


def _index_document(doc: ParsedDocument, chunks: list[Chunk], run: _Run) -> FileOutcome:
    """One file's chunks through LangChain's ``index()``, in bounded batches (see the module's note)."""
    from langchain_core.indexing import index

    progress = run.counting.progress
    embedded_before = run.counting.embedded
    run.documents.save(doc, time.time())
    result = index(
        _to_documents(chunks),
        run.records,
        run.store,
        cleanup="scoped_full",
        source_id_key="source",
        batch_size=run.batch,
        cleanup_batch_size=run.batch,
        key_encoder=chunk_key,
    )
    moved = refresh_metadata(run.collection, chunks, run.batch) if result["num_skipped"] else 0
    progress.advance(len(chunks) - (run.counting.embedded - embedded_before))  # the ones found in the cache
    changed = result["num_added"] or result["num_deleted"] or moved
    return FileOutcome(
        doc.source,
        "indexed" if changed else "unchanged",
        added=result["num_added"],
        deleted=result["num_deleted"],
        unchanged=result["num_skipped"],
        moved=moved,
    )


def _missing_sources(store) -> set[str]:
    """The sources whose file no longer exists (the bundled collection always exists)."""
    _, metadatas = all_metadata(store)
    return {m["source"] for m in metadatas if m["source"] != BUNDLED_SOURCE and not Path(m["source"]).exists()}


def forget(store, records, sources: set[str], report: IngestReport) -> dict[str, list[Chunk]]:
    """Delete every chunk of ``sources`` (counted in ``report.pruned``); the change for the BM25 side."""
    report.pruned += forget_sources(store, records, sources)
    return {source: [] for source in sources}


def _legacy_bundled(store) -> set[str]:
    """Sources that are the bundled collection stored under an install path (older indexes)."""
    _, metadatas = all_metadata(store)
    tail = ("ingest", "data", BUNDLED_COLLECTION.name)
    return {m["source"] for m in metadatas if m["source"] != BUNDLED_SOURCE and Path(m["source"]).parts[-3:] == tail}
