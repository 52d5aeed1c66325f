"""The BM25 side saved at ingestion: loaded by a new process, kept up to date run by run."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

import ingest.lexical as ingest_lexical
import ingest.tokens as ingest_tokens
import rag.lexical
from ingest.pipeline import ingest
from rag.retrieval import HybridRetriever
from rag.types import Scope
from tests.conftest import CORPUS

QUERIES = ["审批时效提升了多少", "乡村教育", "小规模学校撤并", "营商环境", "qwertyuiop"]


def _results(retriever: HybridRetriever, scope: Scope = Scope()) -> list:
    return [[(c.id, round(s, 4)) for c, s in retriever.bm25(q, 5, scope)] for q in QUERIES]


@pytest.fixture
def tokenised(monkeypatch) -> list[int]:
    """How many chunk texts ``rag.lexical`` tokenises, call by call."""
    calls: list[int] = []
    real = rag.lexical.tokenize
    for module in (rag.lexical, ingest_lexical, ingest_tokens):  # building from Chroma; ingestion's table
        monkeypatch.setattr(module, "tokenize", lambda text: calls.append(1) or real(text))
    return calls


def test_a_new_process_loads_the_saved_index_and_finds_what_a_fresh_build_finds(
    settings, fake_embedder, tmp_path, monkeypatch, tokenised
):
    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    assert len(tokenised) == 38  # each chunk tokenised once, at ingestion
    built = HybridRetriever(settings, fake_embedder)
    built._lexical = rag.lexical.from_collection(built._collection(), built.snapshot().key)
    expected = _results(built)
    assert sum(map(bool, expected)) == len(QUERIES) - 1

    def no_build(*args, **kwargs):
        raise AssertionError("built from Chroma although an index was saved")

    monkeypatch.setattr(rag.lexical, "from_collection", no_build)
    tokenised.clear()
    loaded = HybridRetriever(settings, fake_embedder)
    assert _results(loaded) == expected
    assert len(loaded.known()[1]) == 5
    for interviewee in sorted(loaded.known()[1]):
        assert _results(loaded, Scope(interviewees=(interviewee,))) == _results(
            built, Scope(interviewees=(interviewee,))
        )
    assert loaded.known() == built.known()
    assert loaded.lexical().centroid == pytest.approx(built.lexical().centroid, abs=1e-6)
    assert not tokenised  # loading tokenises no chunk


def test_each_run_tokenises_only_what_it_added_and_removed_chunks_leave_the_index(
    settings, fake_embedder, tmp_path, tokenised
):
    from ingest.collection import remove_documents

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    (tmp_path / "d.txt").write_text("新文章\n记者：码头建成了吗？\n局长：锦州港新码头已于十月建成。", encoding="utf-8")
    tokenised.clear()
    report = ingest([tmp_path], settings, embedder=fake_embedder)
    assert len(tokenised) == report.added == 1
    retriever = HybridRetriever(settings, fake_embedder)
    assert [c.text for c, _ in retriever.bm25("锦州港新码头", 1)] == [
        "码头建成了吗？\n局长：锦州港新码头已于十月建成。"
    ]
    folders = list((settings.home / "lexical" / settings.collection_name).iterdir())
    assert sorted(f.name for f in folders if f.is_dir()) == [
        (settings.home / f"{settings.collection_name}.stamp").read_text()
    ]

    remove_documents(settings, [str(tmp_path / "d.txt")], embedder=fake_embedder)
    assert len(retriever.lexical().ids) == 38
    assert not any("新码头" in c.text for c, _ in retriever.bm25("锦州港新码头", 5))


def test_an_index_saved_by_no_run_is_built_from_chroma_and_saved_by_the_next(
    settings, fake_embedder, tmp_path, monkeypatch
):
    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    shutil.rmtree(settings.home / "lexical")  # as an index made before indexes were saved
    retriever = HybridRetriever(settings, fake_embedder)
    assert retriever.bm25("小规模学校撤并", 3)  # built from Chroma
    again = ingest([tmp_path], settings, embedder=fake_embedder)
    assert not again.changed
    monkeypatch.setattr(rag.lexical, "from_collection", None)  # would fail if called
    assert HybridRetriever(settings, fake_embedder).bm25("小规模学校撤并", 3)


def test_adding_or_editing_a_file_reads_nothing_back_from_the_whole_collection(
    settings, fake_embedder, tmp_path, monkeypatch
):
    """What a run reads of Chroma is the files it indexes: its cost does not grow with the archive."""
    from chromadb.api.models.Collection import Collection

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    sweeps = []
    real_get = Collection.get

    def get(self, ids=None, where=None, *args, **kwargs):
        if ids is None and where is None:
            sweeps.append(kwargs.get("include"))
        return real_get(self, ids, where, *args, **kwargs)

    monkeypatch.setattr(Collection, "get", get)
    (tmp_path / "d.txt").write_text("新文章\n局长：锦州港新码头已于十月建成。", encoding="utf-8")
    assert ingest([tmp_path], settings, embedder=fake_embedder).added == 1
    text = (tmp_path / "d.txt").read_text(encoding="utf-8")
    (tmp_path / "d.txt").write_text(text + "\n局长：新航线明年开通。", encoding="utf-8")
    assert ingest([tmp_path], settings, embedder=fake_embedder).changed
    assert sweeps == []
    monkeypatch.setattr(Collection, "get", real_get)
    retriever = HybridRetriever(settings, fake_embedder)
    assert retriever.lexical().ids and "新航线" in retriever.bm25("新航线", 1)[0][0].text
    built = rag.lexical.from_collection(retriever._collection())
    assert sorted(built.ids) == sorted(retriever.lexical().ids)
    assert sorted(zip(built.ids, built.sources, built.interviewees)) == sorted(
        zip(retriever.lexical().ids, retriever.lexical().sources, retriever.lexical().interviewees)
    )


def test_a_chunk_removed_by_another_process_since_loading_is_left_out(settings, fake_embedder, tmp_path):
    """Between loading the BM25 side and reading its hits back, another ingest may delete a chunk."""
    from rag.store import chroma_client

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    retriever = HybridRetriever(settings, fake_embedder)
    hits = retriever.bm25("小规模学校撤并", 3)
    assert hits
    lex = retriever.lexical()
    chroma_client(settings).get_collection(settings.collection_name).delete(ids=[hits[0][0].id])
    retriever._stamp = lambda: lex.key  # as if this process had not yet noticed the change
    left = retriever.bm25("小规模学校撤并", 3)
    assert hits[0][0].id not in {c.id for c, _ in left} and [c.id for c, _ in left] == [c.id for c, _ in hits[1:]]


@pytest.mark.parametrize("block", [20_000, 7])  # 7: postings and weights cross many blocks
def test_the_weights_are_those_bm25s_computes_from_token_lists(monkeypatch, block):
    import bm25s

    monkeypatch.setattr(rag.lexical.Postings, "BLOCK", block)

    from rag.text import tokenize

    texts = [p for p in CORPUS.read_text(encoding="utf-8").split("\n") if p.strip()] + ["", "。"]
    tokens = [tokenize(t) for t in texts]
    postings, vocabulary = rag.lexical.Postings(), rag.lexical.Vocabulary()
    for i, toks in enumerate(tokens):
        postings.add(str(i), "s", "", *vocabulary.counted(toks))
    assert len(postings._pending) < block and len(postings._blocks) == len(texts) // block
    ours = rag.lexical.build(postings, vocabulary, None)
    theirs = bm25s.BM25()
    theirs.index(tokens, show_progress=False)
    for query in QUERIES[:-1]:  # the last has no token of the collection
        q = [t for t in tokenize(query) if t in ours.idf]
        assert q and ours.bm25.get_scores(q) == pytest.approx(theirs.get_scores(q), rel=1e-5, abs=1e-6)
    df = {t: sum(t in set(toks) for toks in tokens) for t in ours.idf}
    assert ours.idf == pytest.approx({t: math.log(1 + (len(texts) - d + 0.5) / (d + 0.5)) for t, d in df.items()})
    assert set(ours.idf) == {t for toks in tokens for t in toks}


@pytest.mark.parametrize("block", [20_000, 7])  # 7: many blocks, tokens spread over them
def test_the_index_read_twice_from_the_table_is_the_one_built_in_memory(tmp_path, monkeypatch, block):
    from rag.text import tokenize

    monkeypatch.setattr(ingest_lexical, "BLOCK", block)
    texts = [p for p in CORPUS.read_text(encoding="utf-8").split("\n") if p.strip()] + ["", "。"]
    rows = [(f"c{i:03d}", f"s{i % 3}", f"p{i % 2}", t) for i, t in enumerate(texts)]
    with ingest_lexical.ChunkTable(tmp_path, "t") as table:
        table.apply({s: [(i, t, p) for i, s2, p, t in rows if s2 == s] for s in ("s0", "s1", "s2")})
        ours = ingest_lexical.from_table(table.db, table.vocabulary)
        postings = rag.lexical.Postings()
        for chunk_id, source, person, cols, counts in table.db.execute("SELECT * FROM terms ORDER BY rowid"):
            postings.add(chunk_id, source, person, np.frombuffer(cols, np.int32), np.frombuffer(counts, np.int32))
        built = rag.lexical.build(postings, table.vocabulary, None)
    assert ours.ids == built.ids and ours.sources == built.sources and ours.interviewees == built.interviewees
    assert ours.idf == built.idf and len(ours.ids) == len(texts)
    for name in ("data", "indices", "indptr"):
        mine, theirs = ours.bm25.scores[name], built.bm25.scores[name]
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs)
    assert ours.bm25.vocab_dict == built.bm25.vocab_dict
    q = [t for t in tokenize("审批时效提升了多少") if t in ours.idf]
    assert q and ours.bm25.get_scores(q).tolist() == built.bm25.get_scores(q).tolist()


def test_a_table_of_token_strings_from_an_earlier_version_is_converted_without_tokenising(
    settings, fake_embedder, tmp_path, tokenised
):
    import sqlite3

    from rag.store import chroma_client
    from rag.text import tokenize

    shutil.copy(CORPUS, tmp_path / "c.txt")
    ingest([tmp_path], settings, embedder=fake_embedder)
    expected = _results(HybridRetriever(settings, fake_embedder))
    collection = chroma_client(settings).get_collection(settings.collection_name)
    data = collection.get(include=["documents", "metadatas"])
    root = settings.home / "lexical" / settings.collection_name
    shutil.rmtree(root)
    root.mkdir(parents=True)
    with sqlite3.connect(root / "chunks.sqlite") as db:  # the table as earlier versions wrote it
        db.execute("CREATE TABLE chunks (id TEXT PRIMARY KEY, source TEXT, interviewee TEXT, tokens TEXT)")
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?)",
            [
                (i, m["source"], m["interviewee"], ingest_lexical.SEPARATOR.join(tokenize(d)))
                for i, d, m in zip(data["ids"], data["documents"], data["metadatas"])
            ],
        )
    tokenised.clear()
    stamp = (settings.home / f"{settings.collection_name}.stamp").read_text()
    ingest_lexical.write(settings.home, collection, stamp, {})
    assert not tokenised
    with sqlite3.connect(root / "chunks.sqlite") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"terms", "vocab"}
    assert _results(HybridRetriever(settings, fake_embedder)) == expected


def test_the_best_scores_are_found_among_the_non_zero_ones_best_first_ties_by_id():
    from rag.retrieval import top_scores

    scores = np.zeros(100_000, dtype=np.float32)
    scores[[7, 70, 700, 7000, 70_000]] = [0.5, 2.0, 0.5, 1.0, 3.0]
    ids = [f"c{i:06d}" for i in range(len(scores))]
    assert top_scores(scores, 4, ids) == [("c070000", 3.0), ("c000070", 2.0), ("c007000", 1.0), ("c000007", 0.5)]
    assert [i for i, _ in top_scores(scores, 10, ids)] == ["c070000", "c000070", "c007000", "c000007", "c000700"]
    assert top_scores(np.zeros(5), 3, ids[:5]) == [] and top_scores(scores, 0, ids) == []


def test_a_scope_is_asked_once_per_source_and_interviewee_and_masks_as_per_chunk():
    from rag.lexical import LexicalIndex

    sources = [f"s{i % 3}.txt" for i in range(50)]
    people = ["甲" if i % 4 else "" for i in range(50)]
    index = LexicalIndex([f"c{i}" for i in range(50)], None, {}, sources, people, None)
    asked = []

    class Counting(Scope):
        def allows(self, source, interviewee):
            asked.append((source, interviewee))
            return super().allows(source, interviewee)

    for scope in (
        Counting(sources=("s1.txt",)),
        Counting(interviewees=("甲",)),
        Counting(sources=("s0.txt", "s2.txt"), interviewees=("甲",), hidden=frozenset({"s2.txt"})),
        Counting(hidden=frozenset({"s1.txt"})),
    ):
        asked.clear()
        expected = [float(scope.allows(s, p)) for s, p in zip(sources, people, strict=True)]
        asked.clear()
        assert index.mask(scope).tolist() == expected
        assert len(asked) == 6  # three sources, each with and without the interviewee
