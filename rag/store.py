"""Where things are kept: Chroma for chunks and vectors, SQLite for ingestion records,
and one JSON file per ingested document version (its text and articles) for citations."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from langchain_core.embeddings import Embeddings

from rag.config import Settings
from rag.errors import IndexMissingError, StoreUnavailable
from rag.home import private_home, tighten
from rag.types import Article, Paragraph, ParsedDocument, Region

log = logging.getLogger(__name__)


def chroma_client(settings: Settings):
    """A Chroma client: a server when ``RAG_CHROMA_HOST`` is set, else a folder under ``RAG_HOME``."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as e:  # connection refused, wrong version...
            raise StoreUnavailable(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({e})"
            ) from e
    path = private_home(settings.home) / "chroma"
    path.mkdir(mode=0o700, exist_ok=True)
    client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    with contextlib.suppress(OSError):
        tighten(path)  # chroma.sqlite3 and the segment files, made with the process's umask
    return client


# How many candidates Chroma's HNSW search keeps while it walks the graph.  Its default, 100,
# missed exact nearest chunks, and not the same ones in each process (the graph a process loads
# differs): on a DRCD index of 1,762 chunks a question's nearest chunk (cosine 0.885, the next
# 0.857) was missing from the top 10 in four processes of four; at 400 it came first.  On 4,000
# random unit vectors (the hardest case) recall@10 rose from 0.79 to 0.98 (tests/test_store.py).
SEARCH_EF = 400


def vector_store(settings: Settings, embedder: Embeddings, client=None):
    """The LangChain Chroma store of this settings' collection (cosine space, our embedder)."""
    from langchain_chroma import Chroma

    return Chroma(
        collection_name=settings.collection_name,
        embedding_function=embedder,
        client=client or chroma_client(settings),
        collection_metadata={"hnsw:space": "cosine", "hnsw:search_ef": SEARCH_EF, "embed_model": settings.embed_model},
    )


STAMP_KEY = "index_stamp"  # in the collection's metadata: the stamp of the last ingest (``published_stamp``)


def publish_stamp(collection, marker: str) -> None:
    """Put the index stamp in the collection's metadata too, for answering processes that share
    the Chroma server but not the ingesting RAG_HOME (docs/deployment.md).

    Chroma refuses a metadata change that names the hnsw settings again, so they are left out
    (they stay in the collection's configuration)."""
    kept = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
    collection.modify(metadata={**kept, STAMP_KEY: marker})


def published_stamp(client, collection_name: str) -> str:
    """The stamp the last ingest put in the collection's metadata ("" when none has)."""
    return str((client.get_collection(collection_name).metadata or {}).get(STAMP_KEY, ""))


def newer_stamp(a: str, b: str) -> str:
    """The later of two index stamps (each the time of its ingest in nanoseconds; "" is none)."""
    return max(a, b, key=lambda stamp: int(stamp) if stamp.isdigit() else -1)


def widen_search(collection) -> bool:
    """Give a collection made with a narrower search (an older version's) ``SEARCH_EF``; whether it changed.

    Only the search changes: the graph and the vectors stay as they are."""
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    if hnsw.get("ef_search", SEARCH_EF) >= SEARCH_EF:
        return False
    collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
    log.info("the collection's search widened: ef_search %s -> %d", hnsw.get("ef_search"), SEARCH_EF)
    return True


def write_atomically(target: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to a temporary file, flush it to the disk, rename it into place.

    With ``durable``, the fsync before the rename means a power cut leaves the old file or the
    new one, never an empty one, and the folder is synced too where the system allows it (not
    on Windows).  Cache entries skip both (two disk flushes per vector would dominate a large
    ingest): an entry a power cut empties does not parse, reads as missing and is embedded again.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            _sync_folder(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


READ_PAGE = 2000  # rows per read of the collection: memory per read stays bounded as the archive grows


def iter_pages(collection, include: list[str], where: dict | None = None, page: int = READ_PAGE):
    """``collection.get`` for ``where``, ``page`` rows at a time: one dict (``ids`` and each
    field of ``include``) per page, so a caller that sums or filters never holds them all.

    ``collection`` is a Chroma collection or LangChain's Chroma store (both take limit and offset).
    """
    offset = 0
    while True:
        data = collection.get(where=where, include=include, limit=page, offset=offset)
        yield data
        if len(data["ids"]) < page:
            return
        offset += page


def read_all(collection, include: list[str], where: dict | None = None, page: int = READ_PAGE) -> dict:
    """Everything ``collection.get`` returns for ``where``, read ``page`` rows at a time and
    merged into one dict of lists: ``ids`` and each field of ``include``."""
    merged: dict[str, list] = {"ids": [], **{field: [] for field in include}}
    for data in iter_pages(collection, include, where, page):
        for key in merged:
            rows = data.get(key)
            merged[key].extend(list(rows) if rows is not None else [])
    return merged


def cached_embedder(settings: Settings, embedder: Embeddings, sentences: bool = False):
    """``embedder`` with its passage vectors kept on disk by the text's hash (``rag.vector_cache``).

    Ingestion keeps there the vector of every chunk, so an edited file re-embeds only what
    changed (``ingest.storage.prune_cache`` drops the vectors of chunks that are gone), and the
    vector of every sentence the answerer reads, in a file of their own that the answerer also
    fills, best effort: a full disk must not stop answers.
    """
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import EncoderBackedStore

    from rag.vector_cache import SqliteByteStore, key_encoder, move_in, packed, unpacked

    kind = "sentences" if sentences else "embeddings"
    store = SqliteByteStore(settings.home / "cache" / f"{kind}-{settings.model_slug}.sqlite", best_effort=sentences)
    older = settings.home / "cache" / kind / settings.model_slug  # one JSON file per vector
    if older.is_dir():
        moved = move_in(older, store)
        log.info("moved %d cached vectors of %s into %s", moved, older, store.path)
        with contextlib.suppress(OSError):
            older.parent.rmdir()  # the folder of that kind, empty now (other models' vectors stay)
    keyed = EncoderBackedStore(store, key_encoder(settings.model_slug), packed, unpacked)
    return CacheBackedEmbeddings(embedder, keyed)


class DocumentStore:
    """One JSON file per document version, named by its content hash (never overwritten)."""

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.home / "documents" / settings.collection_name

    def path(self, doc_hash: str) -> Path:
        return self.folder / f"{doc_hash}.json"

    def save(self, doc: ParsedDocument, ingested_at: float) -> None:
        """Write ``doc`` atomically unless that version is stored already."""
        target = self.path(doc.content_hash)
        if target.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {
            "source": doc.source,
            "title": doc.title,
            "text": doc.text,
            "ingested_at": ingested_at,
            "articles": [asdict(a) for a in doc.articles],
            "regions": [[r.start, r.end, r.page, *r.box] for r in doc.regions],
        }
        write_atomically(target, json.dumps(payload, ensure_ascii=False).encode("utf-8"))

    def load(self, doc_hash: str) -> ParsedDocument:
        """The stored document version ``doc_hash``."""
        data = self.load_raw(doc_hash)
        articles = tuple(
            Article(**{**a, "paragraphs": tuple(Paragraph(**p) for p in a["paragraphs"])}) for a in data["articles"]
        )
        regions = tuple(Region(s, e, page, tuple(box)) for s, e, page, *box in data.get("regions", ()))
        return ParsedDocument(
            source=data["source"], text=data["text"], articles=articles, title=data["title"], regions=regions
        )

    def load_raw(self, doc_hash: str) -> dict:
        try:
            return json.loads(self.path(doc_hash).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise IndexMissingError(f"document {doc_hash} is not in the index; run: rag ingest") from e

    def hashes(self) -> set[str]:
        if not self.folder.exists():
            return set()
        return {p.stem for p in self.folder.glob("*.json")}

    def remove(self, doc_hash: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(doc_hash).unlink()
