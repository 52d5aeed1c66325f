"""The seed dev questions on the real bundled collection, with the real model and real Chroma."""

from __future__ import annotations

import pytest

from rag.assistant import Assistant
from rag.config import Settings
from rag.store import DocumentStore
from tests.conftest import copy_index, load_seed_questions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def assistant(tmp_path_factory, model_cache, bundled_index, e5):
    settings = Settings(home=copy_index(bundled_index, tmp_path_factory.mktemp("seed-home")), model_cache=model_cache)
    assistant = Assistant(settings, embedder=e5)
    assistant.warm_up()
    return assistant


@pytest.fixture(scope="module")
def results(assistant):
    out = []
    for q in load_seed_questions():
        history = [tuple(turn) for turn in q.get("history", [])]
        hits = assistant.retrieve(q["question"], k=5, history=history)
        answer = assistant.ask(q["question"], history=history)
        out.append((q, hits, answer))
    return out


def _answered(q, answer) -> bool:
    return answer.found and all(p in answer.text for p in q["answers"])


def test_retrieval_finds_the_evidence_in_the_top_five(results):
    answerable = [(q, hits) for q, hits, _ in results if q["evidence"]]
    found = [q["id"] for q, hits in answerable if any(e in h.text for h in hits for e in q["evidence"])]
    print(f"hit@5: {len(found)}/{len(answerable)}")
    assert len(found) >= len(answerable) - 3  # two paraphrases and a follow-up miss today


def test_answers_contain_the_key_phrases(results):
    answerable = [(q, a) for q, _, a in results if q["answers"]]
    right = [q["id"] for q, a in answerable if _answered(q, a)]
    print(f"answers: {len(right)}/{len(answerable)}")
    # The aim is 39 of 41; these floors are today's figures (docs/benchmarks.md), kept
    # so that a change that loses answers is seen.
    assert len(right) >= 27


def test_paraphrases_and_english_questions_are_answered(results):
    for kind, floor in (("paraphrase", 5), ("crosslingual", 2)):  # aims: 8 of 11, 3 of 5
        group = [(q, a) for q, _, a in results if q["type"] == kind]
        right = [q["id"] for q, a in group if _answered(q, a)]
        print(f"{kind}: {len(right)}/{len(group)} answered with their answers")
        assert len(right) >= floor, kind


def test_refusals(results):
    unanswerable = [(q, a) for q, _, a in results if q["type"] == "unanswerable"]
    answered = [q["id"] for q, a in unanswerable if a.found]
    refused = [q["id"] for q, _, a in results if q["type"] != "unanswerable" and not a.found]
    print(f"unanswerable answered: {answered}; answerable refused: {refused}")
    assert answered == []
    assert len(refused) <= 7  # aim: at most 2


def test_another_interviewees_figure_is_never_given_as_the_answer(assistant):
    answer = assistant.ask("锦州开发区的审批时效提升了多少？")
    if answer.found and "50%" in answer.text:
        # the figure is the housing bureau's: the answer must say so
        assert answer.text.startswith("《") and "住建" in answer.text.split("：")[0]


@pytest.mark.parametrize(
    ("question", "quoted"),
    [
        ("农村的小学校以后会怎么处理？", "小规模学校撤并"),
        ("企业犯了小错但能改正、没造成危害，住建部门会怎么处理？", "违法行为告知提醒"),
        ("By how much did the municipal housing and construction bureau improve approval efficiency?", "50%"),
    ],
)
def test_questions_worded_unlike_the_text_are_answered(assistant, question, quoted):
    answer = assistant.ask(question)
    assert answer.found and quoted in answer.text


def test_a_list_is_not_padded_with_sentences_about_something_else(assistant):
    answer = assistant.ask("市教育局在乡村教育方面有哪些举措？")
    assert answer.found and "农村寄宿制学校" in answer.text
    assert all("乡村" in c.quote or "农村" in c.quote for c in answer.citations)


def test_a_question_across_interviews_quotes_several(assistant):
    answer = assistant.ask("哪几位受访者谈到了营商环境？")
    titles = {c.title for c in answer.citations}
    assert answer.found and len(titles) >= 2 and all(f"《{t}》" in answer.text for t in titles)


def test_markup_is_not_a_question(assistant):
    answer = assistant.ask("<script>alert(1)</script>")
    assert not answer.found and answer.citations == []


def test_every_citation_is_verbatim(results, assistant):
    documents = DocumentStore(assistant.settings)
    cited = 0
    for _, _, answer in results:
        for c in answer.citations:
            assert documents.load(c.doc_hash).text[c.start : c.end] == c.quote
            assert "##paid" not in c.quote
            cited += 1
    assert cited >= 33


def test_a_refusal_shows_the_closest_sentences_and_for_reworded_questions_often_the_evidence(results, assistant):
    documents = DocumentStore(assistant.settings)
    shown, with_evidence = 0, []
    for q, _, answer in results:
        if answer.found:
            assert answer.closest == []
            continue
        assert len(answer.closest) <= 2 and [c.score for c in answer.closest] == sorted(
            (c.score for c in answer.closest), reverse=True
        )
        for c in answer.closest:
            assert documents.load(c.doc_hash).text[c.start : c.end] == c.quote and c.title and c.paragraph
            shown += 1
        if q["evidence"] and any(e in c.quote or c.quote in e for c in answer.closest for e in q["evidence"]):
            with_evidence.append(q["id"])
    print(
        f"closest sentences shown: {shown}; refused answerable questions with their evidence among them: {with_evidence}"
    )
    assert shown >= 10 and len(with_evidence) >= 4  # today: d26, d31, d35, d37 (first), of 7 refused


def test_public_api(assistant, monkeypatch):
    import rag

    monkeypatch.setenv("RAG_HOME", str(assistant.settings.home))
    monkeypatch.setenv("RAG_MODEL_CACHE", str(assistant.settings.model_cache))
    answer = rag.ask("住建局如何处理纸质申报材料？", history=[("上一个问题", "上一个回答")])
    assert answer.found and answer.citations and "[1]" in answer.text
    hits = rag.retrieve("住建局如何处理纸质申报材料？", k=3)
    assert len(hits) == 3 and all(h.text and h.source and h.title and h.end > h.start for h in hits)


def test_rag_chat_follows_up_in_the_terminal(assistant):
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "RAG_HOME": str(assistant.settings.home),
        "RAG_MODEL_CACHE": str(assistant.settings.model_cache),
    }
    script = "审批时效提升了多少\n他们还推行了哪些并联办理的做法？\n/new\n开发区管委会主任毕业于哪所大学？\n"
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli", "chat"], input=script, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    first, follow_up, new, refused = result.stdout.strip().split("\n\n")
    assert "审批时效提升50%以上" in first and "[1] 《改革创新出实招服务企业促发展》" in first
    assert "并联办理" in follow_up and "审批时效提升50%" not in follow_up.split("\n")[0]
    assert "新的对话" in new
    assert refused.startswith("资料中没有找到这个问题的答案。")


def test_a_follow_up_with_few_words_of_its_own_never_repeats_or_pads(assistant):
    first = assistant.ask("乡村教育要实现怎样的转变？")
    assert first.found
    more = assistant.ask("还有呢？", history=[(first.question, first.text)])
    assert more.question == "还有呢？"
    said = {c.quote for c in first.citations}
    assert all(c.quote not in said for c in more.citations)
    documents = DocumentStore(assistant.settings)
    assert all(documents.load(c.doc_hash).text[c.start : c.end] == c.quote for c in more.citations)
    assert not any("高中外迁" in c.quote for c in more.citations)  # a sentence about something else
    assert not assistant.ask("还有呢？").found  # without the conversation there is nothing to go on


def test_a_follow_up_still_needs_what_it_asks_for(assistant):
    first = assistant.ask("市教育局局长是谁？")
    assert first.found
    assert not assistant.ask("他毕业于哪所大学？", history=[(first.question, first.text)]).found
