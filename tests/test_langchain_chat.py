"""rag.langchain.InterviewChat: citations on the AIMessage, streamed and not; LangChain's own
standard tests for chat models (unit tests with a fake assistant, integration tests with the real
model, Chroma and the bundled collection)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from rag.langchain import InterviewChat
from tests.conftest import QUOTE, FakeAssistant


def _drafting() -> FakeAssistant:
    """Drafts before the answer, the first with a sentence the check removes (as an LLM's may)."""
    assistant = FakeAssistant(interviewees=("于晓峰",))
    assistant.drafts = ["未经核实的句子。", QUOTE, f"{QUOTE}[1]"]
    return assistant


def test_the_message_carries_the_citations_streamed_and_not():
    assistant = _drafting()
    chat = InterviewChat(assistant=assistant, interviewees=["于晓峰"])
    message = chat.invoke([SystemMessage("be brief"), HumanMessage("纸质材料？")])
    assert message.content == f"{QUOTE}[1]" and message.response_metadata["found"]
    assert message.response_metadata["citations"][0]["quote"] == QUOTE
    assert message.usage_metadata["output_tokens"] > 0
    chunks = list(chat.stream("纸质材料？"))
    whole = sum(chunks[1:], chunks[0])
    assert whole.content == message.content and whole.response_metadata["citations"] == [
        message.response_metadata["citations"][0]
    ]
    assert assistant.asked[-1][3] == ["于晓峰"]


def test_the_messages_before_are_the_history():
    assistant = _drafting()
    InterviewChat(assistant=assistant).invoke(
        [
            HumanMessage("纸质材料？"),
            AIMessage("我们取消了纸质材料。[1]\n\n参考文献 References:\n[1] x"),
            HumanMessage("还有呢？"),
        ]
    )
    assert assistant.asked[-1][:2] == ("还有呢？", [("纸质材料？", "我们取消了纸质材料。[1]")])
    with pytest.raises(ValueError, match="human message"):
        InterviewChat(assistant=assistant).invoke([SystemMessage("only a system message")])


class _Extractive:
    """What the model is: no tools, no structured output, no JSON mode (it quotes the collection)."""

    @property
    def chat_model_class(self):
        return InterviewChat

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False


class TestInterviewChatUnit(_Extractive, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return {"assistant": _drafting()}


_REAL: dict = {}


@pytest.fixture(scope="module")
def real_assistant(tmp_path_factory, model_cache, e5):
    from ingest.pipeline import ingest
    from rag.assistant import Assistant
    from rag.config import Settings
    from tests.conftest import CORPUS

    settings = Settings(home=tmp_path_factory.mktemp("langchain-chat"), model_cache=model_cache)
    ingest([CORPUS], settings, embedder=e5)
    _REAL["assistant"] = Assistant(settings, embedder=e5)
    return _REAL["assistant"]


@pytest.mark.slow
def test_the_real_answer_and_its_citations_streamed_and_not(real_assistant):
    question = "乡村教育要实现怎样的转变？"
    expected = real_assistant.ask(question, interviewees=["于晓峰"])
    chat = InterviewChat(assistant=real_assistant, interviewees=["于晓峰"])
    message = chat.invoke(question)
    assert message.content == expected.text and expected.found
    assert [c["quote"] for c in message.response_metadata["citations"]] == [c.quote for c in expected.citations]
    chunks = list(chat.stream(question))
    whole = sum(chunks[1:], chunks[0])
    assert whole.content == message.content
    assert whole.response_metadata["citations"] == message.response_metadata["citations"]
    refused = chat.invoke("火星基地的建设进度如何？")
    assert not refused.response_metadata["found"] and refused.response_metadata["citations"] == []


@pytest.mark.slow
@pytest.mark.usefixtures("real_assistant")
class TestInterviewChatIntegration(_Extractive, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"assistant": _REAL["assistant"]}


@pytest.mark.slow
def test_the_readme_example_runs_as_printed(real_assistant, monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "InterviewChat" in b)
    monkeypatch.setenv("RAG_HOME", str(real_assistant.settings.home))
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    expected = real_assistant.ask("乡村教育要实现怎样的转变？", interviewees=["于晓峰"])
    assert "\n".join(printed[:-1]) == expected.text and printed[-1] == expected.citations[0].quote
