"""The BM25 side of retrieval, kept on disk: written at ingestion, loaded by each answering process.

Tokenising every chunk with jieba is what made a new process slow on a large collection
(and each process held all chunks in memory).  Ingestion now keeps, per chunk, its distinct
tokens (as columns of a vocabulary) with their counts, its source and interviewee in a small
SQLite table, changed source by source as files are indexed or removed (a run tokenises only
the chunks it added and reads nothing back from Chroma), rebuilds the BM25 weights from it and
saves them, with the chunk ids, document frequencies, each chunk's source and interviewee
(for filters) and the mean chunk vector, in a folder named by the index stamp.  A process
whose stamp has such a folder memory-maps it; one that has none (an index made by an older
version, a collection written elsewhere) builds the same thing from Chroma, as before.

Ingestion's half -- the chunk table and saving a version -- is ``ingest.lexical``; this is
what answering reads, and the in-memory build both use.

The weights are computed here, on arrays, rather than by ``bm25s.BM25.index``: that takes
every chunk as a Python list of token strings and counts them in Python, which at a million
chunks costs minutes and several GB on every run.  bm25s still saves, memory-maps and
searches them (``weight_matrix`` sets the fields its ``index`` would; ``tests/test_lexical.py``
checks the result equals what ``index`` gives).
"""

from __future__ import annotations

import array
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.store import iter_pages
from rag.text import tokenize
from rag.types import Scope

COMPLETE = "complete.json"  # written last: a folder without it is never read
K1, B = 1.5, 0.75  # bm25s's defaults (Lucene's BM25)


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
    pairs: tuple[list[tuple[str, str]], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def idf_of(self, token: str) -> float:
        """Inverse document frequency of ``token`` among chunks; unseen tokens weigh most."""
        n = max(1, len(self.ids))
        return self.idf.get(token, math.log(1 + (n + 0.5) / 0.5))

    def mask(self, scope: Scope) -> np.ndarray:
        """1 for each chunk inside ``scope``, else 0: the scope asked once per (source,
        interviewee) pair, not once per chunk (0.11 s a question at a million chunks)."""
        if self.pairs is None:  # once per index version; two threads doing it at once agree
            codes: dict[tuple[str, str], int] = {}
            each = (codes.setdefault(pair, len(codes)) for pair in zip(self.sources, self.interviewees, strict=True))
            chunks = np.fromiter(each, dtype=np.int32, count=len(self.ids))
            self.pairs = (list(codes), chunks)
        pairs, chunks = self.pairs
        inside = np.fromiter((scope.allows(s, p) for s, p in pairs), dtype=np.float32, count=len(pairs))
        return inside[chunks]


class Vocabulary:
    """Token -> column of the BM25 matrix; a token met for the first time gets the next column."""

    def __init__(self, columns: dict[str, int] | None = None) -> None:
        self.columns = columns or {}
        self.new: list[tuple[str, int]] = []

    def counted(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The distinct columns of ``tokens`` and how often each occurs."""
        cols = np.fromiter(map(self._column, tokens), dtype=np.int32, count=len(tokens))
        distinct, counts = np.unique(cols, return_counts=True)
        return distinct.astype(np.int32), counts.astype(np.int32)

    def _column(self, token: str) -> int:
        col = self.columns.get(token)
        if col is None:
            col = self.columns[token] = len(self.columns)
            self.new.append((token, col))
        return col


class Postings:
    """Chunk by chunk, in BM25 order: id, source, interviewee, distinct columns and counts.

    Columns and counts go into a few large arrays (a block per ``BLOCK`` chunks) rather than two
    small ones per chunk: at a million chunks those were two million Python objects and, with
    the copies a COO matrix made of them, most of the rebuild's 5.6 GB.
    """

    BLOCK = 20_000

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.interviewees: list[str] = []
        self.lengths = array.array("d")  # tokens per chunk
        self._blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._names: dict[str, str] = {}  # one string object per source and interviewee, not one per chunk

    def add(self, chunk_id: str, source: str, interviewee: str, columns: np.ndarray, counts: np.ndarray) -> None:
        self.ids.append(chunk_id)
        self.sources.append(self._names.setdefault(source, source))
        self.interviewees.append(self._names.setdefault(interviewee, interviewee))
        self.lengths.append(float(counts.sum()))
        self._pending.append((columns, counts))
        if len(self._pending) >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            columns, counts = zip(*self._pending, strict=True)
            sizes = np.fromiter(map(len, columns), dtype=np.int64, count=len(columns))
            cols = np.concatenate(columns).astype(np.int32, copy=False)
            self._blocks.append((cols, np.concatenate(counts).astype(np.float32), sizes))
            self._pending.clear()

    def blocks(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The postings, a block of chunks at a time: columns, counts, distinct tokens per chunk."""
        self._flush()
        return self._blocks


def build(postings: Postings, vocabulary: Vocabulary, centroid, key: tuple = ()) -> LexicalIndex:
    """The index of these chunks."""
    n = len(postings.ids)
    df = np.zeros(len(vocabulary.columns), dtype=np.int64)
    for cols, _, _ in postings.blocks():
        df += np.bincount(cols, minlength=len(df))
    lengths = np.frombuffer(postings.lengths, dtype=np.float64)
    idf = inverse_frequencies(n, df)
    bm25 = weight_matrix(n, df, idf, lengths, postings.blocks(), vocabulary.columns) if n else None
    return LexicalIndex(
        postings.ids, bm25, known_idf(vocabulary, idf, df), postings.sources, postings.interviewees, centroid, key
    )


def inverse_frequencies(n: int, df: np.ndarray) -> np.ndarray:
    return np.log1p((n - df + 0.5) / (df + 0.5))  # Lucene's, as bm25s computes it


def known_idf(vocabulary: Vocabulary, idf: np.ndarray, df: np.ndarray) -> dict[str, float]:
    """Token -> idf, for the tokens some chunk holds."""
    tokens = sorted(vocabulary.columns, key=vocabulary.columns.__getitem__)
    return {tokens[c]: float(idf[c]) for c in np.flatnonzero(df)}


def weight_matrix(n: int, df: np.ndarray, idf: np.ndarray, lengths: np.ndarray, blocks, columns: dict[str, int]):
    """A bm25s index whose matrix holds, for each chunk and token, Lucene's BM25 weight.

    ``blocks``: the postings in chunk order, a block at a time (columns, counts, distinct tokens
    per chunk), read once.  Each weight is put straight into its place in the matrix bm25s reads
    (compressed by columns, a column per token, the empty token's last): nothing the size of all
    postings is held but the matrix itself.
    """
    nnz = int(df.sum())
    index_type = np.int32 if nnz < 2**31 else np.int64
    indptr = np.zeros(len(columns) + 2, dtype=index_type)
    np.cumsum(df, out=indptr[1:-1])
    indptr[-1] = indptr[-2]
    data, indices = np.empty(nnz, dtype=np.float32), np.empty(nnz, dtype=index_type)
    average = lengths.mean() if lengths.sum() > 0 else 1.0
    norms = (K1 * (1 - B + B * lengths / average)).astype(np.float32)  # per chunk
    cursor, idf32, first = indptr[:-1].astype(np.int64), idf.astype(np.float32), 0
    for cols, tf, sizes in blocks:
        docs = np.repeat(np.arange(first, first + len(sizes), dtype=index_type), sizes)
        first += len(sizes)
        order = np.argsort(cols, kind="stable")  # by token, chunks in order within each
        by_token = cols[order]
        tokens, starts, counts = np.unique(by_token, return_index=True, return_counts=True)
        places = cursor[by_token] + np.arange(len(by_token)) - np.repeat(starts, counts)
        data[places] = (idf32[cols] * tf / (tf + norms[docs]))[order]  # float32 throughout, as bm25s stores them
        indices[places] = docs[order]
        cursor[tokens] += counts
    import bm25s

    bm25 = bm25s.BM25(k1=K1, b=B)
    bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n}
    bm25.vocab_dict = {**columns, "": len(columns)}
    bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
    bm25.nonoccurrence_array = None  # used by BM25L and BM25+ only
    return bm25


def from_collection(collection, key: tuple = ()) -> LexicalIndex:
    """The index built by reading every chunk of ``collection`` (no saved index to load)."""
    postings, vocabulary = Postings(), Vocabulary()
    for page in iter_pages(collection, ["documents", "metadatas"]):
        for i, text, m in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            postings.add(i, m["source"], m.get("interviewee", ""), *vocabulary.counted(tokenize(text)))
    return build(postings, vocabulary, _centroid(collection, postings.ids), key)  # the centroid as ``write`` makes it


def _add_vectors(total, count: int, vectors) -> tuple:
    if vectors is None or len(vectors) == 0:
        return total, count
    block = np.asarray(vectors, dtype=np.float64).sum(axis=0)
    return (block if total is None else total + block), count + len(vectors)


def folder(home: Path, collection_name: str) -> Path:
    return home / "lexical" / collection_name


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


def saved(home: Path, collection_name: str, stamp: str) -> bool:
    """Whether an index is saved for ``stamp``."""
    return bool(stamp) and (folder(home, collection_name) / stamp / COMPLETE).exists()


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
