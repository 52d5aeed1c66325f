"""One pass per question: the index read once, the question embedded once, stored ids not re-hashed."""

from __future__ import annotations

import contextvars
import dataclasses
import shutil
import threading

from ingest.pipeline import ingest
from rag.answering import AnswerStream
from rag.assistant import Assistant
from rag.retrieval import HybridRetriever
from rag.types import Answer, Chunk
from tests.conftest import CORPUS, split_corpus


def _counting(monkeypatch, owner, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_question_reads_the_index_once_and_embeds_itself_once(settings, fake_embedder, monkeypatch):
    ingest([CORPUS], settings, embedder=fake_embedder)
    assistant = Assistant(settings, embedder=fake_embedder)
    assistant.warm_up()
    stamps = _counting(monkeypatch, HybridRetriever, "_marker")
    counts = _counting(monkeypatch, HybridRetriever, "_counted")
    queries = _counting(monkeypatch, fake_embedder, "embed_query")
    for question in ("住建局在审批上是怎么做的？", "哪些受访者谈到了营商环境？", "市住建局取消了哪些纸质申报材料？"):
        stamps.clear(), counts.clear(), queries.clear()
        answer = assistant.ask(question)
        assert answer.found
        assert len(stamps) == 1 and len(counts) == 1
        # the question and, for a broad one, the topic it is about: each embedded once
        assert 1 <= len(queries) <= 2, (question, len(queries))


def test_the_next_question_sees_what_was_ingested_since(settings, fake_embedder, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    split_corpus(folder)
    held = folder / "article3.txt"
    shutil.move(held, tmp_path / "held.txt")
    ingest([folder], settings, embedder=fake_embedder)
    assistant = Assistant(settings, embedder=fake_embedder)
    before = assistant.retriever.count()
    assert assistant.ask("市住建局取消了哪些纸质申报材料？").found is not None
    shutil.move(tmp_path / "held.txt", held)
    ingest([folder], settings, embedder=fake_embedder)
    assert assistant.retriever.count() > before  # nothing pinned outside an answer
    people = assistant.retriever.known()[1]
    assert len(people) == 5


def test_a_stream_keeps_its_snapshot_whichever_thread_reads_it(settings, fake_embedder):
    ingest([CORPUS], settings, embedder=fake_embedder)
    assistant = Assistant(settings, embedder=fake_embedder)
    stream = assistant.ask_stream("住建局在审批上是怎么做的？")
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(stream))
    reader.start()
    reader.join()
    assert seen and stream.answer().found
    pinned = stream._context.run(assistant.retriever.snapshot)
    assert pinned.terms and pinned.vectors  # what the answer computed stayed with its snapshot
    assert assistant.retriever.snapshot() is not pinned  # and outside it, the index is read afresh


def test_stored_chunks_take_their_stored_id_which_is_the_hash(settings, fake_embedder):
    ingest([CORPUS], settings, embedder=fake_embedder)
    retriever = HybridRetriever(settings, fake_embedder)
    hits = retriever.retrieve("纸质申报材料", k=5)
    assert hits
    for hit in hits:
        fresh = Chunk(**{f.name: getattr(hit.chunk, f.name) for f in dataclasses.fields(Chunk)})
        assert "id" in vars(hit.chunk) and "id" not in vars(fresh)
        assert fresh.id == hit.chunk.id


def test_an_answer_is_the_last_event_of_its_pieces(settings, fake_embedder):
    ingest([CORPUS], settings, embedder=fake_embedder)
    assistant = Assistant(settings, embedder=fake_embedder)
    pieces = assistant._pieces(assistant_question("市住建局取消了哪些纸质申报材料？"), None)
    events = contextvars.copy_context().run(list, pieces)  # its pin stays in that context
    assert isinstance(events[-1], Answer) and all(isinstance(e, str) for e in events[:-1])
    broken = AnswerStream(iter(["text without an answer"]))
    try:
        broken.answer()
    except RuntimeError as e:
        assert "without the answer" in str(e)
    else:
        raise AssertionError("a stream that ends without its answer must say so")


def assistant_question(text: str):
    from rag.question import Question

    return Question.parse(text, None)


def test_fusion_is_a_pure_function_of_the_two_rankings():
    from rag.retrieval import RRF_K, fuse

    def chunk(n: int) -> Chunk:
        return Chunk(f"第{n}段。", "/a.txt", "h", 1, "t", "", n, n, 10 * n, 10 * n + 4, "text")

    a, b, c = chunk(1), chunk(2), chunk(3)
    dense, lexical = [(a, 0.9), (b, 0.8)], [(c, 5.0), (b, 3.0)]
    hits = fuse(dense, lexical, k=3)
    assert [h.chunk for h in hits] == [b, a, c]  # b on both sides; a before c: a tie goes to the dense side
    assert hits[0].score == 1 / (RRF_K + 2) + 1 / (RRF_K + 2)
    assert (hits[0].dense_rank, hits[0].lexical_rank, hits[0].similarity) == (2, 2, 0.8)
    assert fuse(dense, lexical, k=3) == hits  # same input, same output
    only_lexical = fuse(dense, lexical, k=1, weights=(0.0, 1.0))
    assert [h.chunk for h in only_lexical] == [c]
    boosted = fuse(dense, lexical, k=3, coverage=lambda ch: 1.0 if ch is c else 0.0)
    assert boosted[0].chunk == c


def test_one_registry_names_the_answerers_and_only_the_chosen_one_is_built(settings, fake_embedder, monkeypatch):
    import rag.scorer
    from rag.assistant import QUOTING
    from rag.config import ANSWERERS
    from rag.rules import RulesAnswerer
    from ui.cli import build_parser

    assert tuple(QUOTING) == ANSWERERS
    parsed = build_parser().parse_args(["eval", "q.jsonl"])
    assert tuple(parsed.answerer) == ANSWERERS

    def not_built(*args, **kwargs):
        raise AssertionError("the learned answerer was built although rules were chosen")

    monkeypatch.setattr(rag.scorer.LearnedAnswerer, "__init__", not_built)
    assistant = Assistant(dataclasses.replace(settings, answerer="rules"), embedder=fake_embedder)
    assert isinstance(assistant.extractive, RulesAnswerer)


def test_settings_are_defined_once_read_from_rag_variables_and_documented(monkeypatch):
    import pathlib
    import re

    import pytest

    from rag.config import Settings
    from rag.errors import ConfigError

    fields = {f"RAG_{f.name.upper()}": f for f in dataclasses.fields(Settings)}
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = {name for name in re.findall(r"`(RAG_[A-Z_]+)`", readme)}
    assert set(fields) <= table, set(fields) - table  # every setting documented
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_API_KEYS", "abcdefgh, ijklmnop ,")
    monkeypatch.setenv("RAG_CHROMA_HOST", "")  # empty: the default
    read = Settings.from_env()
    assert (read.top_k, read.api_keys, read.chroma_host) == (7, ("abcdefgh", "ijklmnop"), None)
    assert read.chunk_size == fields["RAG_CHUNK_SIZE"].default  # the default written once, in the class
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.top_k = 3
    monkeypatch.setenv("RAG_UI_PORT", "seventy")
    with pytest.raises(ConfigError, match="RAG_UI_PORT must be a whole number"):
        Settings.from_env()
