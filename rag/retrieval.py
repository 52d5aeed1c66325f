"""Hybrid retrieval: dense search in Chroma plus BM25 over jieba tokens, fused by reciprocal rank.

The BM25 index (``rag.lexical``) is the one ingestion saved for the current index stamp,
or one built from the Chroma collection itself; either way it is replaced whenever an
ingest has changed the collection (the stamp or the chunk count moved), so the two sides
can never disagree about which chunks exist.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from rag import lexical
from rag.config import Settings
from rag.home import pending_sources
from rag.lexical import LexicalIndex
from rag.store import chroma_client, newer_stamp, published_stamp, read_all, vector_store
from rag.terms import Weights, term_coverage, term_weights
from rag.text import tokenize
from rag.types import Chunk, Hit, Scope

RRF_K = 60
# Weights of the two sides in the fusion, compared with ``rag eval`` on the seed dev set
# and 400 CMRC 2018 questions: equal weights did as well as any mix once re-ranked.
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
# After fusion the candidates are re-ranked by how much of the question's weighted terms
# each chunk holds (the same coverage the extractive answerer reads sentences with).
# Measured with equal side weights: hit@1 0.865 -> 0.900 on 400 CMRC questions and
# 0.696 -> 0.913 on the seed dev set, hit@5 unchanged or better (docs/benchmarks.md).
COVERAGE_WEIGHT = 0.02
# A count of the collection is reused this long when the index stamp has not changed (an
# ingest by this home changes the stamp at once; one written from elsewhere through a shared
# Chroma server is noticed by its count, this much later).
COUNT_SECONDS = 1.0
ARTICLES_KEPT = 64  # whole articles remembered between questions (a conversation stays on a few)


def top_scores(scores: np.ndarray, k: int, ids: list[str]) -> list[tuple[str, float]]:
    """The ``k`` best of the chunks that score above zero, best first (ties by id).

    Chosen among the non-zero scores only: bm25s's ``retrieve`` partitions all of them, and
    numpy's partition slows down on an array that is mostly equal values -- at a million
    chunks, 170 ms a question instead of a few.
    """
    if k <= 0:
        return []
    hit = np.flatnonzero(scores > 0)
    if len(hit) > k:
        kth = np.partition(scores[hit], -k)[-k]
        hit = hit[scores[hit] >= kth]  # all that tie with the k-th too, so the cut below is by id
    return sorted(((ids[int(i)], float(scores[i])) for i in hit), key=lambda pair: (-pair[1], pair[0]))[:k]


@dataclasses.dataclass
class Snapshot:
    """The index as one question sees it, read once: every step of an answer agrees on which
    chunks exist, and what a step computes from the question (its terms, its vector, the chunks
    it read) is there for the next."""

    marker: str  # the index stamp
    count: int
    home: Path
    lexical: LexicalIndex | None = None
    terms: dict[str, Weights] = dataclasses.field(default_factory=dict)
    vectors: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    chunks: dict[str, Chunk] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        """What a BM25 side is saved under: it stands for this version of the index."""
        return (self.marker, self.count)

    @cached_property
    def hidden(self) -> frozenset[str]:
        """The documents being written (journaled in RAG_HOME/pending)."""
        return pending_sources(self.home)


# The snapshot a question pinned, per retriever.  Each answer runs in a context of its own
# (``rag.answering.AnswerStream``), so a pin lasts exactly as long as the answer it serves.
_PINNED: contextvars.ContextVar[dict[HybridRetriever, Snapshot] | None] = contextvars.ContextVar("pinned", default=None)


class HybridRetriever:
    """Dense + BM25 retrieval over one collection."""

    def __init__(self, settings: Settings, embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._client = None
        self._store = None
        self._chroma = None
        self._lexical: LexicalIndex | None = None
        self._lock = threading.Lock()
        self._count: tuple[str, float, str, int] | None = None  # (home's stamp, when, stamp, count)
        self._count_lock = threading.Lock()
        self._articles: dict[tuple, list[Chunk]] = {}  # (stamp, source, article) -> its chunks
        self.dense_weight = DENSE_WEIGHT
        self.lexical_weight = LEXICAL_WEIGHT
        self.coverage_weight = COVERAGE_WEIGHT

    @property
    def store(self):
        if self._store is None:
            self._client = chroma_client(self.settings)
            self._store = vector_store(self.settings, self.embedder, self._client)
        return self._store

    def _collection(self):
        """The Chroma collection itself, for what LangChain's store does not offer (counting)."""
        if self._chroma is None:
            self.store  # noqa: B018 -- creates the collection with our settings when it is new
            self._chroma = self._client.get_collection(self.settings.collection_name)
        return self._chroma

    def count(self) -> int:
        """How many chunks the collection holds."""
        return self.snapshot().count

    def snapshot(self) -> Snapshot:
        """The pinned snapshot of the current answer, or else the index as it is now."""
        pinned = _PINNED.get()
        if pinned is not None and self in pinned:
            return pinned[self]
        marker, count = self._counted(self._marker())
        return Snapshot(marker, count, self.settings.home)

    def pin(self) -> Snapshot:
        """Read the index once for the rest of the current context (one answer): see ``Snapshot``."""
        pinned = dict(_PINNED.get() or {})
        pinned.pop(self, None)
        snapshot = pinned[self] = self.snapshot()
        _PINNED.set(pinned)
        return snapshot

    def _marker(self) -> str:
        """The index stamp ingestion writes after each change (empty when there is none)."""
        try:
            return (self.settings.home / f"{self.settings.collection_name}.stamp").read_text()
        except OSError:
            return ""

    def _counted(self, marker: str) -> tuple[str, int]:
        """The index stamp and Chroma's count, asked again when this home's stamp changed or the
        last answer is older than ``COUNT_SECONDS``: Chroma counts by reading the collection (80 ms
        at a million chunks) and a question needs the count several times.

        The stamp is the newer of this home's and the one the last ingest published in the
        collection: a process that shares the Chroma server but not the ingesting home sees an
        ingest that kept the count (an edit) there."""
        now = time.monotonic()
        with self._count_lock:
            if self._count is None or self._count[0] != marker or now - self._count[1] > COUNT_SECONDS:
                collection = self._collection()
                published = published_stamp(self._client, self.settings.collection_name)
                self._count = (marker, now, newer_stamp(marker, published), collection.count())
            return self._count[2], self._count[3]

    def lexical(self) -> LexicalIndex:
        """The BM25 side for the collection as it is now: the one ingestion saved for the
        current stamp, or, when there is none, one built from Chroma (``rag.lexical``)."""
        snapshot = self.snapshot()
        if snapshot.lexical is not None:
            return snapshot.lexical
        key = snapshot.key
        with self._lock:
            if self._lexical is None or self._lexical.key != key:
                self._lexical = lexical.load(
                    self.settings.home, self.settings.collection_name, snapshot.marker, snapshot.count, key
                ) or lexical.from_collection(self._collection(), key)
            snapshot.lexical = self._lexical
            return self._lexical

    def query_vector(self, text: str) -> np.ndarray:
        """``text`` embedded as a question, once per snapshot (retrieval, the background and the
        answerer's sentence similarity all read it)."""
        vectors = self.snapshot().vectors
        if text not in vectors:
            vectors[text] = np.asarray(self.embedder.embed_query(text), dtype=np.float32)
        return vectors[text]

    def background(self, text: str) -> float:
        """The mean cosine similarity of question ``text`` to the chunks of the collection."""
        centroid = self.lexical().centroid
        if centroid is None:
            return 0.0
        return float(self.query_vector(text) @ centroid)

    def term_weights(self, text: str) -> Weights:
        """The weighted terms of ``text``, with inverse document frequencies from this collection."""
        terms = self.snapshot().terms
        if text not in terms:
            terms[text] = term_weights(text, self.lexical().idf_of)
        return terms[text]

    def visible(self, scope: Scope = Scope()) -> Scope:
        """``scope`` without the documents being written (journaled in RAG_HOME/pending): a
        document is answered from only once all its chunks are in."""
        hidden = self.snapshot().hidden
        return dataclasses.replace(scope, hidden=hidden) if hidden != scope.hidden else scope

    def dense(self, query: str, k: int, scope: Scope = Scope()) -> list[tuple[Chunk, float]]:
        """Top ``k`` chunks by cosine similarity to ``query`` (within ``scope``: Chroma's metadata filter)."""
        if self.count() == 0:
            return []
        scope = self.visible(scope)
        vector = self.query_vector(query).tolist()
        results = self.store.similarity_search_by_vector_with_relevance_scores(vector, k=k, filter=scope.where())
        known = self.snapshot().chunks
        found = []
        for d, dist in results:
            chunk = known.get(d.id) if d.id else None
            if chunk is None:
                chunk = Chunk.from_metadata(d.page_content, d.metadata)
                known[chunk.id] = chunk
            found.append((chunk, 1.0 - float(dist)))
        return found

    def bm25(self, query: str, k: int, scope: Scope = Scope()) -> list[tuple[Chunk, float]]:
        """Top ``k`` chunks by BM25 over jieba tokens (within ``scope``: the others masked out)."""
        lex = self.lexical()
        q = [t for t in tokenize(query) if t in lex.idf]
        if not q or lex.bm25 is None:
            return []
        scope = self.visible(scope)
        mask = None
        if scope:
            mask = lex.mask(scope)
            k = min(k, int(mask.sum()))
            if k == 0:
                return []
        found = top_scores(lex.bm25.get_scores(q, weight_mask=mask), k, lex.ids)
        chunks = self.chunks([i for i, _ in found])
        return [(chunks[i], score) for i, score in found if i in chunks]

    def chunks(self, ids: list[str]) -> dict[str, Chunk]:
        """The chunks of ``ids`` read from Chroma (BM25 keeps only their ids); one that another
        process's ingest removed since the BM25 side was loaded is simply absent."""
        known = self.snapshot().chunks
        missing = [i for i in ids if i not in known]
        if missing:
            data = self._collection().get(ids=missing, include=["documents", "metadatas"])
            for i, d, m in zip(data["ids"], data["documents"], data["metadatas"]):
                known[i] = Chunk.from_metadata(d, m)
        return {i: known[i] for i in ids if i in known}

    def article(self, source: str, article: int) -> list[Chunk]:
        """Every chunk of one article, in reading order (what a summary or a passage is read from)."""
        key = (self.snapshot().marker, source, article)
        with self._lock:
            cached = self._articles.get(key)
        if cached is None:
            where = {"$and": [{"source": source}, {"article": article}]}
            data = read_all(self._collection(), ["documents", "metadatas"], where)
            cached = sorted(
                (Chunk.from_metadata(d, m) for d, m in zip(data["documents"], data["metadatas"])), key=lambda c: c.start
            )
            with self._lock:
                if len(self._articles) >= ARTICLES_KEPT:
                    self._articles.pop(next(iter(self._articles)))
                self._articles[key] = cached
        return cached

    def articles(self, scope: Scope = Scope(), limit: int = 5000) -> list[tuple[str, int, str, str]] | None:
        """(source, article, title, interviewee) of every article inside ``scope``, in collection
        order; None when the scope holds more than ``limit`` chunks (too many to go through)."""
        if self.count() == 0:
            return []
        data = self._collection().get(where=self.visible(scope).where(), include=["metadatas"], limit=limit + 1)
        if len(data["ids"]) > limit:
            return None
        found = {
            (m["source"], int(m["article"])): (m.get("title", ""), m.get("interviewee", ""), int(m["start"]))
            for m in data["metadatas"]
        }
        order = sorted(found, key=lambda key: (key[0], key[1]))
        return [(source, article, *found[(source, article)][:2]) for source, article in order]

    def containing(self, word: str, scope: Scope = Scope(), k: int = 200) -> set[tuple[str, int, str]]:
        """(source, article, interviewee) of the articles whose chunks hold ``word`` (found through BM25)."""
        return {(chunk.source, chunk.article, chunk.interviewee) for chunk in self.holding(word, scope, k)}

    def holding(self, word: str, scope: Scope = Scope(), k: int = 200) -> list[Chunk]:
        """The chunks that hold ``word`` (or whose interviewee does), found through BM25."""
        return [
            chunk
            for chunk, _ in self.bm25(word, k, scope)
            if word in chunk.indexed_text.lower() or word in chunk.interviewee.lower()
        ]

    def near(self, text: str, scope: Scope = Scope()) -> dict[tuple[str, int], float]:
        """An extra RRF-like weight for the articles of the three chunks BM25 finds for ``text``."""
        boost: dict[tuple[str, int], float] = {}
        for rank, (chunk, _) in enumerate(self.bm25(text, 3, scope)):
            boost.setdefault((chunk.source, chunk.article), 1.0 / (RRF_K + rank + 1))
        return boost

    def known(self) -> tuple[set[str], set[str]]:
        """The sources and the interviewees the collection holds (what a scope may name)."""
        lex = self.lexical()
        if lex.known is None:  # once per index version, not once per question or citation
            lex.known = (set(lex.sources), {p for p in lex.interviewees if p})
        hidden = self.snapshot().hidden
        if not hidden:
            return lex.known
        shown = [(s, p) for s, p in zip(lex.sources, lex.interviewees) if s not in hidden]
        return {s for s, _ in shown}, {p for _, p in shown if p}

    def retrieve(
        self, query: str, k: int = 5, candidates: int | None = None, near: str | None = None, scope: Scope = Scope()
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query`` by reciprocal rank fusion of both sides.

        ``near``: text whose articles are preferred (a follow-up stays near the article
        the conversation is about).  ``scope``: only chunks inside it, on both sides.
        """
        n = candidates or max(20, 4 * k)
        boost = self.near(near, scope) if near else {}
        coverage = None
        if self.coverage_weight:
            weights = self.term_weights(query)

            def coverage(chunk: Chunk) -> float:
                return self.coverage_weight * term_coverage(weights, chunk.indexed_text.lower())

        return fuse(
            self.dense(query, n, scope),
            self.bm25(query, n, scope),
            k,
            (self.dense_weight, self.lexical_weight),
            boost,
            coverage,
            n,
        )


def fuse(
    dense: list[tuple[Chunk, float]],
    lexical: list[tuple[Chunk, float]],
    k: int,
    weights: tuple[float, float] = (DENSE_WEIGHT, LEXICAL_WEIGHT),
    boost: dict[tuple[str, int], float] | None = None,
    coverage: Callable[[Chunk], float] | None = None,
    reranked: int = 20,
) -> list[Hit]:
    """The ``k`` best of two ranked lists by weighted reciprocal rank fusion (a pure function).

    ``boost``: an extra score per (source, article); ``coverage``: an extra score per chunk,
    added to the ``reranked`` best after fusion.  Ties keep the dense side's order first.
    """
    fused: dict[str, dict] = {}
    for weight, ranked, name in ((weights[0], dense, "dense_rank"), (weights[1], lexical, "lexical_rank")):
        for rank, (chunk, sim) in enumerate(ranked):
            entry = fused.setdefault(chunk.id, {"chunk": chunk, "score": 0.0})
            entry["score"] += weight / (RRF_K + rank + 1)
            entry[name] = rank + 1
            if name == "dense_rank":
                entry["similarity"] = sim
    if boost:
        for entry in fused.values():
            entry["score"] += boost.get((entry["chunk"].source, entry["chunk"].article), 0.0)
    if coverage is not None:
        for entry in sorted(fused.values(), key=lambda e: -e["score"])[:reranked]:
            entry["score"] += coverage(entry["chunk"])
    return [
        Hit(
            chunk=e["chunk"],
            score=e["score"],
            dense_rank=e.get("dense_rank"),
            lexical_rank=e.get("lexical_rank"),
            similarity=e.get("similarity"),
        )
        for e in sorted(fused.values(), key=lambda e: -e["score"])[:k]
    ]


class InterviewRetriever(BaseRetriever):
    """The hybrid retriever as a LangChain ``BaseRetriever``, for use in other chains."""

    hybrid: object
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content=h.text, metadata={**h.chunk.metadata(), "score": h.score})
            for h in self.hybrid.retrieve(query, k=self.k)
        ]
