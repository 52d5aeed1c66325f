"""The BM25 side of retrieval, kept on disk: written at ingestion, loaded by each answering process.

Tokenising every chunk with jieba is what made a new process slow on a large collection
(and each process held all chunks in memory).  Ingestion now keeps each chunk's tokens,
source and interviewee in a small SQLite table, changed source by source as files are
indexed or removed (a run tokenises only the chunks it added and reads nothing back from
Chroma), rebuilds the bm25s index from it and saves it, with the chunk ids, document
frequencies, each chunk's source and interviewee (for filters) and the mean chunk vector,
in a folder named by the index stamp.  A process whose stamp has such a folder memory-maps it; one that
has none (an index made by an older version, a collection written elsewhere) builds the
same thing from Chroma, as before.  bm25s saves and memory-maps its own arrays; the
rest is written here because bm25s keeps neither tokens by id nor our per-chunk fields.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.store import iter_pages
from rag.text import tokenize
from rag.types import Scope

SEPARATOR = "\x1f"  # between tokens in the SQLite table; never inside a jieba token of our text
COMPLETE = "complete.json"  # written last: a folder without it is never read


@dataclass
class LexicalIndex:
    """BM25 over the chunks' jieba tokens, and what a filter and the answerer need per chunk."""

    ids: list[str]
    bm25: object | None
    idf: dict[str, float]
    sources: list[str]  # per chunk, in BM25 order
    interviewees: list[str]
    centroid: np.ndarray | None  # the mean chunk vector (see ``HybridRetriever.background``)
    key: tuple = ()
    known: tuple[set[str], set[str]] | None = field(default=None, repr=False)

    def idf_of(self, token: str) -> float:
        """Inverse document frequency of ``token`` among chunks; unseen tokens weigh most."""
        n = max(1, len(self.ids))
        return self.idf.get(token, math.log(1 + (n + 0.5) / 0.5))

    def mask(self, scope: Scope) -> np.ndarray:
        """1 for each chunk inside ``scope``, else 0."""
        inside = (scope.allows(s, p) for s, p in zip(self.sources, self.interviewees, strict=True))
        return np.fromiter(inside, dtype=np.float32, count=len(self.ids))


def build(ids: list[str], tokens: list[list[str]], metadatas: list[dict], centroid, key: tuple = ()) -> LexicalIndex:
    """The index of these chunks (``tokens``, ``metadatas`` in the order of ``ids``)."""
    bm25 = None
    if ids:
        import bm25s

        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
    df: dict[str, int] = {}
    for toks in tokens:
        for t in set(toks):
            df[t] = df.get(t, 0) + 1
    n = max(1, len(ids))
    idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    sources = [m["source"] for m in metadatas]
    interviewees = [m.get("interviewee", "") for m in metadatas]
    return LexicalIndex(ids, bm25, idf, sources, interviewees, centroid, key)


def from_collection(collection, key: tuple = ()) -> LexicalIndex:
    """The index built by reading every chunk of ``collection`` (no saved index to load)."""
    ids, tokens, metadatas = [], [], []
    for page in iter_pages(collection, ["documents", "metadatas"]):
        ids += page["ids"]
        tokens += [tokenize(text) for text in page["documents"]]
        metadatas += page["metadatas"]
    return build(ids, tokens, metadatas, _centroid(collection, ids), key)  # the centroid as ``write`` makes it


def _add_vectors(total, count: int, vectors) -> tuple:
    if vectors is None or len(vectors) == 0:
        return total, count
    block = np.asarray(vectors, dtype=np.float64).sum(axis=0)
    return (block if total is None else total + block), count + len(vectors)


def folder(home: Path, collection_name: str) -> Path:
    return home / "lexical" / collection_name


def write(home: Path, collection, stamp: str, changes: dict[str, list] | None = None) -> Path:
    """Bring the chunk table up to date and save the index for ``stamp``.

    ``changes``: what this run did, source by source -- the source's chunks now, as (id,
    stored text, interviewee), an empty list for a source removed.  Only those rows change and
    only chunks new to the table are tokenised.  Without ``changes``, or when the table's
    count disagrees with Chroma's afterwards (a run cut short, an index from before the table
    existed), the table is made again from one paginated read of the collection.
    """
    root = folder(home, collection.name)
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "chunks.sqlite")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS chunks "
            "(id TEXT PRIMARY KEY, source TEXT NOT NULL, interviewee TEXT NOT NULL, tokens TEXT NOT NULL)"
        )
        if changes is not None:
            _apply(db, changes)
        if changes is None or db.execute("SELECT count(*) FROM chunks").fetchone()[0] != collection.count():
            _refill(db, collection)
        db.commit()
        rows = db.execute("SELECT id, source, interviewee, tokens FROM chunks ORDER BY rowid").fetchall()
    finally:
        db.close()
    ids = [r[0] for r in rows]
    tokens = [r[3].split(SEPARATOR) if r[3] else [] for r in rows]
    metadatas = [{"source": r[1], "interviewee": r[2]} for r in rows]
    index = build(ids, tokens, metadatas, _centroid(collection, ids))
    return _save(index, root, stamp)


def _apply(db, changes: dict[str, list]) -> None:
    """Each changed source's rows made equal to its chunks now (tokenising only new ones)."""
    for source, chunks in changes.items():
        have = {row[0] for row in db.execute("SELECT id FROM chunks WHERE source = ?", (source,))}
        now = {chunk_id for chunk_id, _, _ in chunks}
        db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in have - now])
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?)",
            [(i, source, person, SEPARATOR.join(tokenize(text))) for i, text, person in chunks if i not in have],
        )
        db.executemany(
            "UPDATE chunks SET interviewee = ? WHERE id = ?", [(person, i) for i, _, person in chunks if i in have]
        )


def _refill(db, collection) -> None:
    """The table made again from the collection: rows it lacks added, rows Chroma lacks removed."""
    known = {row[0] for row in db.execute("SELECT id FROM chunks")}
    live = set()
    for page in iter_pages(collection, ["documents", "metadatas"]):
        live.update(page["ids"])
        db.executemany(
            "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)",
            [
                (i, m["source"], m.get("interviewee", ""), SEPARATOR.join(tokenize(text)))
                for i, text, m in zip(page["ids"], page["documents"], page["metadatas"], strict=True)
                if i not in known
            ],
        )
    db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in known - live])


CENTROID_SAMPLE = 4096


def _centroid(collection, ids: list[str]) -> np.ndarray | None:
    """The mean chunk vector: exact up to ``CENTROID_SAMPLE`` chunks, else the mean of a fixed
    random sample of that many (its error, about 1/64 of the vectors' spread, is far below
    what the answer scorer reads it for: a question's mean similarity to the collection)."""
    if not ids:
        return None
    chosen = ids if len(ids) <= CENTROID_SAMPLE else random.Random(0).sample(ids, CENTROID_SAMPLE)
    total, count = None, 0
    for start in range(0, len(chosen), 1000):
        vectors = collection.get(ids=chosen[start : start + 1000], include=["embeddings"])["embeddings"]
        total, count = _add_vectors(total, count, vectors)
    return None if total is None else (total / count).astype(np.float32)


def _save(index: LexicalIndex, root: Path, stamp: str) -> Path:
    """``index`` written into ``root/stamp`` (through a partial folder renamed into place)."""
    target, partial = root / stamp, root / f"{stamp}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    if index.bm25 is not None:
        index.bm25.save(str(partial / "bm25"), show_progress=False)
    (partial / "chunks.json").write_text(
        json.dumps(
            {"ids": index.ids, "sources": index.sources, "interviewees": index.interviewees}, ensure_ascii=False
        ),
        encoding="utf-8",
    )
    (partial / "idf.json").write_text(json.dumps(index.idf, ensure_ascii=False), encoding="utf-8")
    if index.centroid is not None:
        np.save(partial / "centroid.npy", index.centroid.astype(np.float32))
    (partial / COMPLETE).write_text(json.dumps({"chunks": len(index.ids)}), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def saved(home: Path, collection_name: str, stamp: str) -> bool:
    """Whether an index is saved for ``stamp``."""
    return bool(stamp) and (folder(home, collection_name) / stamp / COMPLETE).exists()


def forget_others(home: Path, collection_name: str, stamp: str) -> None:
    """Remove the saved versions other than ``stamp``'s (a process still reading one keeps
    its open files where the system allows it; elsewhere it is left for the next run)."""
    for old in folder(home, collection_name).iterdir():
        if old.is_dir() and old.name != stamp:
            shutil.rmtree(old, ignore_errors=True)


def load(home: Path, collection_name: str, stamp: str, count: int, key: tuple) -> LexicalIndex | None:
    """The index saved for ``stamp``, if there is one and it holds ``count`` chunks; else None."""
    saved = folder(home, collection_name) / stamp
    try:
        if not stamp or json.loads((saved / COMPLETE).read_text(encoding="utf-8"))["chunks"] != count:
            return None
        chunks = json.loads((saved / "chunks.json").read_text(encoding="utf-8"))
        idf = json.loads((saved / "idf.json").read_text(encoding="utf-8"))
        centroid = np.load(saved / "centroid.npy") if (saved / "centroid.npy").exists() else None
        bm25 = None
        if chunks["ids"]:
            import bm25s

            bm25 = bm25s.BM25.load(str(saved / "bm25"), mmap=True, show_progress=False)
    except (OSError, ValueError, KeyError):  # missing, half-removed or from another version: build instead
        return None
    return LexicalIndex(chunks["ids"], bm25, idf, chunks["sources"], chunks["interviewees"], centroid, key)
