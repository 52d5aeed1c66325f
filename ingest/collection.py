"""The collection as a person manages it: what is in it, uploads, removals, the bundled set on first start."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from ingest.parse import SUPPORTED_SUFFIXES, over_limit
from ingest.pipeline import BUNDLED_COLLECTION, BUNDLED_SOURCE, IngestReport, ingest
from ingest.records import collect_garbage, delete_in_batches, discard_upload, live_texts, mark_changed
from ingest.storage import ingest_lock, prune_cache, record_manager, storage_errors
from rag.config import Settings
from rag.errors import ParseError, RagError
from rag.home import begin_pending, end_pending, pending_sources
from rag.store import DocumentStore, cached_embedder, chroma_client, read_all, vector_store


def needs_bundled_ingest(settings: Settings) -> bool:
    """Whether the index is empty, or holds the bundled collection older than the bundled file."""
    documents = list_documents(settings)
    if not documents:
        return True
    stamp = settings.home / f"{settings.collection_name}.stamp"
    bundled_indexed = any(d["source"] == BUNDLED_SOURCE for d in documents)
    stale = not stamp.exists() or stamp.stat().st_mtime < BUNDLED_COLLECTION.stat().st_mtime
    return bundled_indexed and stale


def ensure_index(
    settings: Settings, embedder=None, on_progress: Callable[[int, int, str], None] | None = None
) -> IngestReport | None:
    """Ingest the bundled collection when ``needs_bundled_ingest``, else complete what a stopped
    run left half-written if it left anything; the run's report, or None."""
    if needs_bundled_ingest(settings):
        return ingest(None, settings, on_progress=on_progress, embedder=embedder)
    if pending_sources(settings.home):
        return ingest([], settings, on_progress=on_progress, embedder=embedder)
    return None


def list_documents(settings: Settings) -> list[dict]:
    """The ingested documents: source, file, title, articles (their interviewees, dates and
    publishers), chunk count, when ingested."""
    from collections import Counter

    client = chroma_client(settings)
    try:
        collection = client.get_collection(settings.collection_name)
    except Exception:  # chromadb raises NotFoundError (or ValueError in older versions)
        return []
    metadatas = read_all(collection, ["metadatas"])["metadatas"]
    counts = Counter((m["source"], m["doc_hash"]) for m in metadatas)
    documents = DocumentStore(settings)
    root = collection_root(settings, {source for source, _ in counts})
    rows = []
    hidden = pending_sources(settings.home)  # being written, or cut short: not listed until whole
    for (source, doc_hash), n in sorted(counts.items()):
        if source in hidden:
            continue
        try:
            raw = documents.load_raw(doc_hash)
        except RagError:
            raw = {"title": Path(source).stem, "articles": [], "ingested_at": 0}
        rows.append(
            {
                "id": document_id(source),
                "source": source,
                "path": shown_path(source, settings, root),
                "file": Path(source).name,
                "title": raw["title"],
                "articles": [a["title"] for a in raw["articles"]],
                "interviewees": [a.get("interviewee", "") for a in raw["articles"]],
                "dates": [a.get("date", "") for a in raw["articles"]],
                "publishers": [a.get("publisher", "") for a in raw["articles"]],
                "chunks": n,
                "ingested_at": raw.get("ingested_at", 0),
            }
        )
    return rows


def document_id(source: str) -> str:
    """A short, stable name of a document for programs (the API's /v1/documents/{id})."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def collection_root(settings: Settings, sources: set[str]) -> Path | None:
    """The folder the files from outside RAG_HOME have in common (None when there are none)."""
    outside = [s for s in sources if s != BUNDLED_SOURCE and not Path(s).is_relative_to(settings.home)]
    if not outside:
        return None
    return Path(os.path.commonpath([str(Path(s).parent) for s in outside]))


def shown_path(source: str, settings: Settings, root: Path | None = None) -> str:
    """``source`` as a person is shown it: relative to RAG_HOME or to the collection's root, never absolute."""
    path = Path(source)
    for base in (settings.home, root):
        if base is not None and path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return source if source == BUNDLED_SOURCE else path.name


def remove_documents(settings: Settings, sources: list[str], embedder=None) -> int:
    """Remove every chunk of ``sources`` from the index, and the uploaded copies; return how many chunks."""
    from rag.embeddings import load_embedder

    with storage_errors(settings), ingest_lock(settings):
        embedder = embedder or load_embedder(settings)
        client = chroma_client(settings)
        store = vector_store(settings, embedder, client)
        records = record_manager(settings)
        data = read_all(store, [], where={"source": {"$in": list(sources)}})
        if data["ids"]:
            delete_in_batches(store, data["ids"])
        records.delete_keys(records.list_keys(group_ids=list(sources)))
        collect_garbage(store, DocumentStore(settings))
        prune_cache(cached_embedder(settings, embedder), live_texts(settings, client))
        mark_changed(settings, client.get_collection(settings.collection_name), {s: [] for s in sources})
    for source in sources:
        end_pending(settings.home, source)
        discard_upload(settings, Path(source))
    return len(data["ids"])


MAX_NAME_BYTES = 160  # of a stored upload's name, its type apart
_SAFE_NAME = re.compile(r"[^\w\u4e00-\u9fff.()（）-]+")


def store_upload(settings: Settings, temp_path: Path, original_name: str) -> Path:
    """Copy an uploaded file into ``RAG_HOME/uploads`` under a name made from its content.

    The uploaded name is only shown, never used as a path: the file lands in a folder
    named by its hash, under a name cleaned of separators and dots at the start.  Only this
    user can read it (0600 in 0700 folders), like the stored documents.
    """
    suffix = Path(original_name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(
            f"{Path(original_name).name}: unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}"
        )
    size = Path(temp_path).stat().st_size
    if size > settings.max_file_mb * 2**20:
        raise ParseError(
            f"{Path(original_name).name}: {over_limit(size, settings.max_file_mb * 2**20)} per file (RAG_MAX_FILE_MB)"
        )
    data = Path(temp_path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    stem = _SAFE_NAME.sub("_", Path(original_name.replace("\\", "/")).stem).strip("._") or "upload"
    # A file name may have 255 bytes: Chinese characters take 3 in UTF-8, some 4.
    stem = stem.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    target = settings.home / "uploads" / digest / f"{stem}{suffix}"
    for folder in (settings.home / "uploads", target.parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    begin_pending(settings.home, str(target.resolve()))  # kept, not yet indexed: a kill from here on is healed
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # whole or absent, never half
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    partial.replace(target)
    return target
