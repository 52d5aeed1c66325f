"""One pass per question: the index read once, the question embedded once, stored ids not re-hashed."""

from __future__ import annotations

import contextvars
import dataclasses
import shutil
import threading

from conftest import CORPUS, split_corpus

from ingest.pipeline import ingest
from rag.answering import AnswerStream
from rag.assistant import Assistant
from rag.retrieval import HybridRetriever
from rag.types import Answer, Chunk


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
