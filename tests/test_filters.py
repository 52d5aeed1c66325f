"""A question limited to some interviews or files never cites outside them (the real model, real Chroma)."""

from __future__ import annotations

import pytest

from ingest.parse import parse_file
from ingest.pipeline import ingest
from rag.assistant import Assistant
from rag.errors import UnknownFilterError
from tests.conftest import CORPUS, load_seed_questions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(tmp_path_factory, model_cache, e5):
    from rag.config import Settings

    home = tmp_path_factory.mktemp("filters")
    extra = home / "科技局访谈.txt"
    extra.write_text("科技局长谈创新\n记者：审批时效提升了多少？\n局长：科技项目审批时效提升了三成。", encoding="utf-8")
    settings = Settings(home=home, model_cache=model_cache)
    ingest([CORPUS, extra], settings, embedder=e5)
    return Assistant(settings, embedder=e5)


def _article_of(evidence: str):
    doc = parse_file(CORPUS)
    return next((a for a in doc.articles if evidence in doc.text[a.start : a.end]), None)


def test_every_seed_question_stays_in_the_interview_it_is_limited_to(assistant):
    """Each seed question whose evidence lies in one article: within that interview, and within another."""
    articles = parse_file(CORPUS).articles
    checked = 0
    for q in load_seed_questions():
        article = _article_of(q["evidence"][0]) if q.get("evidence") else None
        if article is None or not article.interviewee:
            continue
        other = next(a for a in articles if a.interviewee != article.interviewee)
        for person in (article.interviewee, other.interviewee):
            answer = assistant.ask(q["question"], interviewees=[person])
            assert all(c.interviewee == person for c in answer.citations), (q["id"], person, answer.citations)
            hits = assistant.retrieve(q["question"], interviewees=[person])
            assert hits and all(h.chunk.interviewee == person for h in hits), (q["id"], person)
        checked += 1
    assert checked >= 25, checked


def test_a_source_filter_keeps_out_the_other_files(assistant):
    question = "审批时效提升了多少？"
    anywhere = {c.source.rsplit("/", 1)[-1] for c in assistant.ask(question, top_k=10).citations}
    only_bundled = assistant.ask(question, sources=["leader_interviews.txt"])
    only_extra = assistant.ask(question, sources=["科技局访谈.txt"])
    assert only_bundled.found and all(c.source.endswith("leader_interviews.txt") for c in only_bundled.citations)
    assert only_extra.found and all(c.source.endswith("科技局访谈.txt") for c in only_extra.citations)
    assert "三成" in only_extra.text and "三成" not in only_bundled.text
    assert anywhere  # unfiltered, either may be quoted


def test_a_part_of_a_name_is_enough_and_an_unknown_name_says_what_there_is(assistant):
    answer = assistant.ask("乡村教育要实现怎样的转变？", interviewees=["于晓峰"])
    assert answer.found and all(c.interviewee.endswith("于晓峰") for c in answer.citations)
    with pytest.raises(UnknownFilterError, match="于晓峰"):
        assistant.ask("乡村教育要实现怎样的转变？", interviewees=["王某某"])


def test_as_retriever_serves_langchain(assistant, monkeypatch):
    import rag

    monkeypatch.setenv("RAG_HOME", str(assistant.settings.home))
    monkeypatch.setenv("RAG_MODEL_CACHE", str(assistant.settings.model_cache))
    documents = rag.as_retriever(k=3).invoke("乡村教育要实现怎样的转变？")
    assert len(documents) == 3 and any("就优就好" in d.page_content for d in documents)
    assert {"source", "title", "start", "end", "score"} <= set(documents[0].metadata)


def test_rag_ask_and_chat_take_the_filters(assistant, monkeypatch, capsys):
    import io
    import json

    from ui.cli import main

    monkeypatch.setenv("RAG_HOME", str(assistant.settings.home))
    code = main(["ask", "--interviewee", "于晓峰", "在乡村教育方面有哪些举措？", "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0 and answer["found"] and answer["citations"]
    assert all("于晓峰" in c["interviewee"] for c in answer["citations"])

    assert main(["ask", "--source", "科技局访谈.txt", "审批时效提升了多少？", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert {c["source"].rsplit("/", 1)[-1] for c in answer["citations"]} == {"科技局访谈.txt"}
    assert "三成" in answer["text"]

    assert main(["ask", "--interviewee", "张三丰", "有哪些举措？"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "张三丰" in err

    monkeypatch.setattr("sys.stdin", io.StringIO("审批时效提升了多少？\n"))
    assert main(["chat", "--source", "科技局访谈.txt"]) == 0
    assert "三成" in capsys.readouterr().out
