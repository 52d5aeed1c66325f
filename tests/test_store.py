"""Chroma as the store keeps it: the dense search finds the nearest chunks, in every index."""

from __future__ import annotations

import shutil

import numpy as np

from ingest.pipeline import ingest
from rag.store import SEARCH_EF, chroma_client, vector_store
from tests.conftest import CORPUS


def test_dense_search_finds_the_exact_nearest_chunks(settings, fake_embedder):
    """Random unit vectors are the hardest case for HNSW (no clusters to follow): at Chroma's
    default ef_search of 100, recall@10 here is 0.79; the collection's own setting finds them."""
    vector_store(settings, fake_embedder)
    collection = chroma_client(settings).get_collection(settings.collection_name)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(4000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, len(vectors), 1000):
        ids = [str(i) for i in range(start, start + 1000)]
        collection.add(ids=ids, embeddings=vectors[start : start + 1000], documents=ids)
    questions = rng.normal(size=(50, 384)).astype(np.float32)
    exact = np.argsort(-(questions @ vectors.T), axis=1)[:, :10]
    found = collection.query(query_embeddings=questions, n_results=10, include=[])["ids"]
    recall = np.mean([len({int(i) for i in got} & set(best)) / 10 for got, best in zip(found, exact, strict=True)])
    assert collection.configuration["hnsw"]["ef_search"] == SEARCH_EF
    assert recall >= 0.97


def test_an_index_made_with_the_narrower_search_is_widened_by_the_next_run(settings, e5_once, tmp_path):
    """An index an older version made (Chroma's default search) gets the wider one when a run
    next opens it; its chunks and vectors stay as they are."""
    client = chroma_client(settings)
    client.create_collection(
        settings.collection_name, metadata={"hnsw:space": "cosine", "embed_model": settings.embed_model}
    )
    assert client.get_collection(settings.collection_name).configuration["hnsw"]["ef_search"] == 100
    shutil.copy(CORPUS, tmp_path / "c.txt")
    first = ingest([tmp_path], settings, embedder=e5_once)
    collection = client.get_collection(settings.collection_name)
    before = collection.get(include=["embeddings", "documents"])
    assert first.added == len(before["ids"]) > 0
    assert collection.configuration["hnsw"]["ef_search"] == SEARCH_EF

    client.get_collection(settings.collection_name).modify(configuration={"hnsw": {"ef_search": 100}})
    again = ingest([tmp_path], settings, embedder=e5_once)
    collection = client.get_collection(settings.collection_name)
    assert collection.configuration["hnsw"]["ef_search"] == SEARCH_EF and again.added == 0
    after = collection.get(include=["embeddings", "documents"])
    assert after["ids"] == before["ids"] and after["documents"] == before["documents"]
    assert np.array_equal(after["embeddings"], before["embeddings"])
