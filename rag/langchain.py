"""The assistant as a LangChain chat model: an ``AIMessage`` whose ``response_metadata`` carries
the citations, streamed or not.

    from rag.langchain import InterviewChat
    chat = InterviewChat(interviewees=["于晓峰"])
    message = chat.invoke("乡村教育要实现怎样的转变？")
    message.content                                  # the answer, with [n] markers
    message.response_metadata["citations"]           # quote, source, title, interviewee, paragraph, ...
    message.response_metadata["found"]               # False: the collection does not say
    message.response_metadata["closest"]             # on a refusal: the nearest sentences, not an answer

A conversation is the messages: the last human message is the question, the human/AI pairs
before it are the history a follow-up ("还有呢？") is read with.  Streamed, the checked answer comes
line by line and the last chunk carries the same metadata, so the sum of the chunks equals ``invoke``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from rag.references import history_of
from rag.schema import AnswerOut
from rag.text import count_tokens
from rag.types import Answer

MODEL_NAME = "interview-rag"


class InterviewChat(BaseChatModel):
    """Answers from the collection with verbatim citations (``rag.ask``), as a LangChain chat model."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Any = Field(default=None, exclude=True, description="an Assistant; default: rag's for RAG_* settings")
    interviewees: list[str] | None = None
    sources: list[str] | None = None
    top_k: int | None = None

    @property
    def _llm_type(self) -> str:
        return MODEL_NAME

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict:
        params = super()._get_ls_params(stop=stop, **kwargs)
        return {**params, "ls_provider": "interview-rag", "ls_model_name": kwargs.get("model") or MODEL_NAME}

    @property
    def _identifying_params(self) -> dict:
        return {"model_name": MODEL_NAME, "interviewees": self.interviewees, "sources": self.sources}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = self._stream_of(messages).answer()
        message = AIMessage(
            content=answer.text, response_metadata=metadata(answer), usage_metadata=usage(messages, answer.text)
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # The assistant's pieces are drafts, each the text so far (an LLM's reply before it is
        # checked); only the checked answer is sent, line by line, as the API streams it -- so the
        # chunks add up to what ``invoke`` returns, never to a sentence the check removed.
        answer = self._stream_of(messages).answer()
        for line in answer.text.splitlines(keepends=True):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=line))
            if run_manager:
                run_manager.on_llm_new_token(line, chunk=chunk)
            yield chunk
        last = AIMessageChunk(
            content="",
            response_metadata=metadata(answer),
            usage_metadata=usage(messages, answer.text),
            chunk_position="last",
        )
        yield ChatGenerationChunk(message=last)

    def _stream_of(self, messages: list[BaseMessage]):
        from rag import default_assistant

        question, history = conversation(messages)
        assistant = self.assistant or default_assistant()
        return assistant.ask_stream(question, history, self.top_k, self.sources, self.interviewees)


def conversation(messages: list[BaseMessage]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last human message) and the (question, answer) pairs before it."""
    turns = [(m.type, m.text if hasattr(m, "text") else str(m.content)) for m in messages if m.type in ("human", "ai")]
    if not turns or turns[-1][0] != "human":
        raise ValueError("the last message must be a human message with a question")
    return history_of([(kind == "human", text) for kind, text in turns])


def usage(messages: list[BaseMessage], reply: str) -> UsageMetadata:
    """Tokens counted as jieba's words and punctuation marks (``rag.text.count_tokens``): no model
    here has a chat model's tokenizer, and an extractive answer spends none."""
    asked = sum(count_tokens(m.text if hasattr(m, "text") else str(m.content)) for m in messages)
    said = count_tokens(reply)
    return UsageMetadata(input_tokens=asked, output_tokens=said, total_tokens=asked + said)


def metadata(answer: Answer) -> dict:
    """What an ``AIMessage`` carries beside its text: citations, whether found, the closest sentences."""
    return {
        "model_name": MODEL_NAME,
        "found": answer.found,
        "notice": answer.notice,
        "mode": answer.mode,
        **AnswerOut.of(answer).model_dump(mode="json", include={"citations", "closest"}),
    }
