"""The API's contract with a fake assistant: JSON errors, limits, 429, keys, the OpenAI shapes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.errors import UnknownFilterError
from rag.references import REFERENCES_HEADING, with_references, without_references
from rag.types import Answer, Citation
from ui.api import conversation, create_api

QUOTE = "我们取消了纸质材料。"


def _answer(question: str) -> Answer:
    c = Citation(1, "/data/a.txt", "访谈标题", QUOTE, 10, 10 + len(QUOTE), 0.9, "局长xxx", 1, 2, "h", "c")
    return Answer(question, f"{QUOTE}[1]", True, [c])


class FakeRetriever:
    def count(self):
        return 1

    def known(self):
        return {"/data/a.txt"}, {"局长xxx"}


class FakeAssistant:
    def __init__(self, settings, delay: float = 0.0) -> None:
        self.settings = settings
        self.retriever = FakeRetriever()
        self.delay = delay
        self.asked = []

    def ask(self, question, history=None, top_k=None, sources=None, interviewees=None):
        if interviewees and interviewees != ["局长xxx"]:
            raise UnknownFilterError(f"no interviewee in the collection matches {interviewees[0]!r}")
        self.asked.append((question, history, sources, interviewees))
        time.sleep(self.delay)
        if question.startswith("没有"):
            return Answer(question, "资料中没有找到这个问题的答案。", False, closest=_answer(question).citations)
        return _answer(question)


class FakeCollection:
    def documents(self):
        return []


@pytest.fixture
def client(tmp_path):
    assistant = FakeAssistant(Settings(home=tmp_path))
    return TestClient(create_api(assistant, FakeCollection(), loopback=True)), assistant


def test_answers_as_json_and_markdown(client):
    http, _ = client
    data = http.post("/v1/answers", json={"question": "纸质材料？", "format": "markdown"}).json()
    assert data["found"] and data["text"] == f"{QUOTE}[1]"
    assert data["citations"][0]["quote"] == QUOTE and data["citations"][0]["source"] == "a.txt"
    assert data["markdown"].endswith("[1] 《访谈标题》，局长xxx，第2段。")


def test_a_refusal_carries_the_closest_sentences_apart_from_citations(client):
    http, _ = client
    data = http.post("/v1/answers", json={"question": "没有的事？"}).json()
    assert not data["found"] and data["citations"] == [] and data["text"].startswith("资料中没有找到")
    assert data["closest"][0]["quote"] == QUOTE and data["closest"][0]["source"] == "a.txt"
    answered = http.post("/v1/answers", json={"question": "纸质材料？"}).json()
    assert answered["closest"] == []


def test_errors_are_json_with_one_message(client):
    http, _ = client
    empty = http.post("/v1/answers", json={"question": ""})
    assert empty.status_code == 422 and "question" in empty.json()["error"]
    long = http.post("/v1/answers", json={"question": "问" * 2001})
    assert long.status_code == 422 and "2000" in long.json()["error"]
    unknown = http.post("/v1/answers", json={"question": "q", "interviewees": ["nobody"]})
    assert unknown.status_code == 400 and "nobody" in unknown.json()["error"]
    extra = http.post("/v1/answers", json={"question": "q", "bogus": 1})
    assert extra.status_code == 422 and "bogus" in extra.json()["error"]
    huge = http.post("/v1/answers", content=b"{" + b" " * 300_000 + b"}", headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "error" in huge.json()
    assert http.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}).status_code == 400
    assert "Traceback" not in empty.text + unknown.text + huge.text


def test_keys_beyond_loopback(tmp_path):
    assistant = FakeAssistant(Settings(home=tmp_path))
    keyless = TestClient(create_api(assistant, FakeCollection(), loopback=False))
    assert keyless.post("/v1/answers", json={"question": "q"}).status_code == 403
    keyed = TestClient(create_api(assistant, FakeCollection(), loopback=False, keys=("k-12345678",)))
    refused = keyed.post("/v1/answers", json={"question": "q"})
    assert refused.status_code == 401 and "RAG_API_KEYS" in refused.json()["error"]
    wrong = {"Authorization": "Bearer nope-nope"}
    assert keyed.post("/v1/answers", json={"question": "q"}, headers=wrong).status_code == 401
    right = {"Authorization": "Bearer k-12345678"}
    assert keyed.post("/v1/answers", json={"question": "q"}, headers=right).status_code == 200
    assert keyed.get("/healthz").status_code == 200


def test_a_full_queue_is_429(tmp_path):
    """One answer at a time and one waiting (a real uvicorn, one event loop); the rest are refused at once."""
    import httpx
    import uvicorn

    from bench.server import free_port

    settings = Settings(home=tmp_path, ui_concurrency=1, ui_queue_size=1)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_api(FakeAssistant(settings, delay=0.5), FakeCollection(), loopback=True),
            port=port,
            log_level="warning",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    codes, errors = [], []

    def ask():
        r = httpx.post(f"http://127.0.0.1:{port}/v1/answers", json={"question": "q"}, timeout=30)
        codes.append(r.status_code)
        if r.status_code == 429:
            errors.append(r.json()["error"])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.should_exit = True
    assert codes.count(200) >= 2 and codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    assert errors[0].startswith("busy")


def test_chat_completions_shapes(client):
    http, assistant = client
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "纸质材料？"},
        {"role": "assistant", "content": with_references(_answer("纸质材料？"), markdown=True)},
        {"role": "user", "content": [{"type": "text", "text": "还有呢？"}]},
    ]
    data = http.post("/v1/chat/completions", json={"model": "x", "messages": messages, "temperature": 0}).json()
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant" and REFERENCES_HEADING in message["content"]
    assert message["citations"][0]["quote"] == QUOTE
    assert assistant.asked[-1][:2] == ("还有呢？", [("纸质材料？", f"{QUOTE}[1]")])  # references cut, escapes undone

    with http.stream("POST", "/v1/chat/completions", json={"messages": messages[:2], "stream": True}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == message["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"] == message["citations"]


def test_conversation_reads_the_last_user_message_and_pairs_before_it():
    from ui.api import ChatMessage

    msgs = [ChatMessage(role=r, content=c) for r, c in [("user", "a"), ("assistant", "A"), ("user", "b")]]
    assert conversation(msgs) == ("b", [("a", "A")])
    assert without_references("x\\+y[1]\n\n参考文献 References:\n[1] …") == "x+y[1]"
