"""The BM25 side of retrieval, kept on disk: written at ingestion, loaded by each answering process.

Tokenising every chunk with jieba is what made a new process slow on a large collection
(and each process held all chunks in memory).  Ingestion now keeps each chunk's tokens in
a small SQLite table (so a run tokenises only the chunks it added), rebuilds the bm25s
index from them and saves it, with the chunk ids, document frequencies, each chunk's
source and interviewee codes (for filters) and the mean chunk vector, in a folder named
by the index stamp.  A process whose stamp has such a folder memory-maps it; one that
has none (an index made by an older version, a collection written elsewhere) builds the
same thing from Chroma, as before.  bm25s saves and memory-maps its own arrays; the
rest is written here because bm25s keeps neither tokens by id nor our per-chunk fields.
"""

from __future__ import annotations

import json
import math
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
        sources, people = set(scope.sources), set(scope.interviewees)
        return np.fromiter(
            (
                (not sources or s in sources) and (not people or p in people)
                for s, p in zip(self.sources, self.interviewees, strict=True)
            ),
            dtype=np.float32,
            count=len(self.ids),
        )


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
    ids, tokens, metadatas, total, count = [], [], [], None, 0
    for page in iter_pages(collection, ["documents", "metadatas", "embeddings"]):
        ids += page["ids"]
        tokens += [tokenize(text) for text in page["documents"]]
        metadatas += page["metadatas"]
        total, count = _add_vectors(total, count, page["embeddings"])
    return build(ids, tokens, metadatas, None if total is None else total / count, key)


def _add_vectors(total, count: int, vectors) -> tuple:
    if vectors is None or len(vectors) == 0:
        return total, count
    block = np.asarray(vectors, dtype=np.float64).sum(axis=0)
    return (block if total is None else total + block), count + len(vectors)


def folder(home: Path, collection_name: str) -> Path:
    return home / "lexical" / collection_name


def write(home: Path, collection, stamp: str) -> Path:
    """Bring the token table up to date with ``collection`` and save the index for ``stamp``.

    Only chunks not in the table are read in full and tokenised.
    """
    root = folder(home, collection.name)
    root.mkdir(parents=True, exist_ok=True)
    ids, metadatas, total, count = [], [], None, 0
    for page in iter_pages(collection, ["metadatas", "embeddings"]):
        ids += page["ids"]
        metadatas += page["metadatas"]
        total, count = _add_vectors(total, count, page["embeddings"])
    tokens = _tokens(root / "tokens.sqlite", collection, ids)
    index = build(ids, tokens, metadatas, None if total is None else total / count)
    target, partial = root / stamp, root / f"{stamp}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    if index.bm25 is not None:
        index.bm25.save(str(partial / "bm25"), show_progress=False)
    (partial / "chunks.json").write_text(
        json.dumps({"ids": ids, "sources": index.sources, "interviewees": index.interviewees}, ensure_ascii=False),
        encoding="utf-8",
    )
    (partial / "idf.json").write_text(json.dumps(index.idf, ensure_ascii=False), encoding="utf-8")
    if index.centroid is not None:
        np.save(partial / "centroid.npy", index.centroid.astype(np.float32))
    (partial / COMPLETE).write_text(json.dumps({"chunks": len(ids)}), encoding="utf-8")
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


def _tokens(path: Path, collection, ids: list[str]) -> list[list[str]]:
    """The tokens of each of ``ids``: from the table, tokenising (and adding) the chunks it lacks."""
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, tokens TEXT NOT NULL)")
        known = dict(db.execute("SELECT id, tokens FROM tokens"))
        live = set(ids)
        gone = [k for k in known if k not in live]
        db.executemany("DELETE FROM tokens WHERE id = ?", [(k,) for k in gone])
        missing = [i for i in ids if i not in known]
        for start in range(0, len(missing), 1000):
            batch = collection.get(ids=missing[start : start + 1000], include=["documents"])
            rows = [(i, SEPARATOR.join(tokenize(text))) for i, text in zip(batch["ids"], batch["documents"])]
            db.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?)", rows)
            known.update(rows)
        db.commit()
    finally:
        db.close()
    return [known[i].split(SEPARATOR) if known[i] else [] for i in ids]


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
