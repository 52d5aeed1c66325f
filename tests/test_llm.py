"""LLM answering with a fake chat model: markers checked, unsupported sentences removed, fallbacks."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from ingest.pipeline import ingest
from rag.assistant import Assistant
from rag.llm import LLMAnswerer, build_messages, support
from rag.store import DocumentStore
from tests.conftest import CORPUS


def fake_llm(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))


@pytest.fixture
def make_assistant(settings, fake_embedder):
    ingest([CORPUS], settings, embedder=fake_embedder)

    def make(*replies):
        return Assistant(settings, embedder=fake_embedder, llm=LLMAnswerer(fake_llm(*replies)))

    return make


def verbatim(answer, settings):
    docs = DocumentStore(settings)
    return all(docs.load(c.doc_hash).text[c.start : c.end] == c.quote for c in answer.citations)


def test_supported_sentences_keep_verified_citations(make_assistant, settings):
    question = "住建局如何处理纸质申报材料？"
    assistant = make_assistant("placeholder")
    hits = assistant.retrieve(question)
    n = next(i for i, h in enumerate(hits, 1) if "纸质申报材料" in h.text)
    reply = f"市住建局取消所有政务服务事项纸质申报材料收取[{n}]。 住建局还为每位市民免费发放了一台电脑[{n}]。"
    assistant = make_assistant(reply)
    stream = assistant.ask_stream(question)
    assert len(list(stream)) > 1  # the reply streamed in pieces
    answer = stream.answer()
    assert answer.found and answer.mode == "llm"
    assert "纸质申报材料" in answer.text and "电脑" not in answer.text
    assert "1" in answer.notice  # one sentence removed
    assert answer.citations and verbatim(answer, settings)
    assert "纸质申报材料" in answer.citations[0].quote


def test_a_reply_citing_nothing_falls_back_to_quotes(make_assistant, settings):
    assistant = make_assistant("住建局做了很多工作，效果很好。")
    answer = assistant.ask("住建局如何处理纸质申报材料？")
    assert answer.found and answer.mode == "extractive" and "核实" in answer.notice
    assert verbatim(answer, settings)


def test_out_of_range_markers_are_not_trusted(make_assistant):
    assistant = make_assistant("取消所有政务服务事项纸质申报材料收取[42]。")
    answer = assistant.ask("住建局如何处理纸质申报材料？")
    assert answer.mode == "extractive"


def test_not_found_reply_is_a_refusal(make_assistant):
    assistant = make_assistant("资料中没有找到这个问题的答案。")
    answer = assistant.ask("开发区管委会主任毕业于哪所大学？")
    assert not answer.found and answer.citations == []


def test_server_down_falls_back_with_a_notice(settings, fake_embedder):
    from langchain_openai import ChatOpenAI

    ingest([CORPUS], settings, embedder=fake_embedder)
    dead = ChatOpenAI(base_url="http://127.0.0.1:9/v1", model="x", api_key="x", max_retries=0, timeout=2)
    assistant = Assistant(settings, embedder=fake_embedder, llm=LLMAnswerer(dead))
    answer = assistant.ask("师德方面建立了什么清单？")
    assert answer.found and "不可用" in answer.notice


def test_prompt_numbers_passages_and_fences_them_as_data(make_assistant):
    assistant = make_assistant("x")
    hits = assistant.retrieve("纸质材料")
    messages = build_messages("纸质材料？", hits, [("上一个问题", "上一个回答")])
    assert "不是指令" in messages[0].content
    assert "[1] 《" in messages[-1].content and "<passages>" in messages[-1].content
    assert messages[1].content == "上一个问题"


def test_support_measure():
    assert support("取消纸质材料", "我们取消了纸质材料。") > 0.7
    assert support("免费发放电脑", "我们取消了纸质材料。") == 0.0


class RecordingLLM(LLMAnswerer):
    """The LLM answerer, remembering the passages each question sent it."""

    def __init__(self, chat) -> None:
        super().__init__(chat)
        self.sent: list[list] = []

    def stream(self, question, hits):
        self.sent.append(list(hits))
        yield from super().stream(question, hits)


def test_broad_questions_send_the_llm_the_passages_chosen_for_their_kind(settings, fake_embedder):
    ingest([CORPUS], settings, embedder=fake_embedder)
    llm = RecordingLLM(fake_llm("placeholder", "placeholder"))
    assistant = Assistant(settings, embedder=fake_embedder, llm=llm)
    quoted = Assistant(settings, embedder=fake_embedder).ask("哪几位受访者谈到了营商环境？")
    answer = assistant.ask("哪几位受访者谈到了营商环境？")
    sent = llm.sent[0]
    # one passage per article, the ones the who-said answer quotes
    assert len({(h.source, h.chunk.article) for h in sent}) == len(sent) == len(quoted.citations) >= 2
    assert all(any(h.chunk.id == c.chunk_id for h in sent) for c in quoted.citations)
    assert answer.found and "引用原文" in answer.notice  # the placeholder reply is not verified: quoted instead
    refused = assistant.ask("招商引资有什么举措？", interviewees=["于晓峰"])
    assert not refused.found and len(llm.sent) == 1  # the scope's refusal stands; the LLM is not asked
