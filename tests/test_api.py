"""The API's contract with a fake assistant: JSON errors, limits, 429, keys, the OpenAI shapes."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.references import REFERENCES_HEADING, with_references, without_references
from tests.conftest import QUOTE, FakeAssistant, FakeCollection, quoted
from ui.api import MODEL_ID, conversation, create_api


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


def _error(response) -> dict:
    """The error object of a response, checked to have OpenAI's shape."""
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_errors_are_json_with_one_message(client):
    http, _ = client
    empty = http.post("/v1/answers", json={"question": ""})
    assert empty.status_code == 400 and "question" in _error(empty)["message"]
    assert _error(empty) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "question",
        "code": None,
    }
    long = http.post("/v1/answers", json={"question": "问" * 2001})
    assert long.status_code == 400 and "2000" in _error(long)["message"]
    unknown = http.post("/v1/answers", json={"question": "q", "interviewees": ["nobody"]})
    assert unknown.status_code == 400 and "nobody" in _error(unknown)["message"]
    extra = http.post("/v1/answers", json={"question": "q", "bogus": 1})
    assert extra.status_code == 400 and "bogus" in _error(extra)["message"]
    huge = http.post("/v1/answers", content=b"{" + b" " * 300_000 + b"}", headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and _error(huge)["type"] == "invalid_request_error"
    no_user = http.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
    assert no_user.status_code == 400 and _error(no_user)["param"] == "messages"
    model = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "q"}]})
    assert (
        model.status_code == 404 and _error(model)["code"] == "model_not_found" and "gpt-4o" in _error(model)["message"]
    )
    missing = http.get("/v1/documents/nope")
    assert missing.status_code in (404, 405) and _error(missing)
    assert "Traceback" not in empty.text + unknown.text + huge.text


def test_keys_beyond_loopback(tmp_path):
    assistant = FakeAssistant(Settings(home=tmp_path))
    keyless = TestClient(create_api(assistant, FakeCollection(), loopback=False))
    assert keyless.post("/v1/answers", json={"question": "q"}).status_code == 403
    keyed = TestClient(create_api(assistant, FakeCollection(), loopback=False, keys=("k-12345678",)))
    refused = keyed.post("/v1/answers", json={"question": "q"})
    assert refused.status_code == 401 and "RAG_API_KEYS" in _error(refused)["message"]
    assert _error(refused)["type"] == "authentication_error"
    wrong = {"Authorization": "Bearer nope-nope"}
    assert keyed.post("/v1/answers", json={"question": "q"}, headers=wrong).status_code == 401
    right = {"Authorization": "Bearer k-12345678"}
    assert keyed.post("/v1/answers", json={"question": "q"}, headers=right).status_code == 200
    assert keyed.get("/healthz").status_code == 200


def test_a_full_queue_is_429(tmp_path):
    """One answer at a time and one waiting (a real uvicorn, one event loop); the rest are refused at
    once, and the openai SDK raises its RateLimitError with the server's message."""
    import httpx
    import openai
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
            errors.append((r.json()["error"]["message"], r.json()["error"]["type"], r.headers.get("retry-after")))

    sdk: list[object] = []

    def ask_with_sdk():
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        try:
            sdk.append(client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "q"}]))
        except openai.RateLimitError as e:
            sdk.append(e)

    threads = [threading.Thread(target=ask) for _ in range(8)] + [
        threading.Thread(target=ask_with_sdk) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.should_exit = True
    assert codes.count(429) >= 1 and set(codes) <= {200, 429}, codes
    assert errors[0][0].startswith("busy") and errors[0][1:] == ("rate_limit_error", "2")
    refused = [e for e in sdk if isinstance(e, openai.RateLimitError)]
    assert len(sdk) == 4 and len(refused) >= 2  # two places at most, twelve callers at once
    assert refused[0].status_code == 429 and "busy: 2 questions" in refused[0].message
    assert refused[0].body["type"] == "rate_limit_error"
    assert refused[0].response.headers["retry-after"] == "2"


def test_chat_completions_shapes(client):
    http, assistant = client
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "纸质材料？"},
        {"role": "assistant", "content": with_references(quoted("纸质材料？"), markdown=True)},
        {"role": "user", "content": [{"type": "text", "text": "还有呢？"}]},
    ]
    data = http.post(
        "/v1/chat/completions", json={"model": "interview-rag", "messages": messages, "temperature": 0}
    ).json()
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant" and REFERENCES_HEADING in message["content"]
    assert data["citations"][0]["quote"] == QUOTE and data["closest"] == []  # at the reply's top level
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert assistant.asked[-1][:2] == ("还有呢？", [("纸质材料？", f"{QUOTE}[1]")])  # references cut, escapes undone

    with http.stream("POST", "/v1/chat/completions", json={"messages": messages[:2], "stream": True}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == message["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"] == data["citations"]
    assert chunks[-1]["closest"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    refused = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "没有的事？"}]}).json()
    assert refused["citations"] == [] and refused["closest"][0]["quote"] == QUOTE


def test_conversation_reads_the_last_user_message_and_pairs_before_it():
    from ui.api import ChatMessage

    msgs = [ChatMessage(role=r, content=c) for r, c in [("user", "a"), ("assistant", "A"), ("user", "b")]]
    assert conversation(msgs) == ("b", [("a", "A")])
    assert without_references("x\\+y[1]\n\n参考文献 References:\n[1] …") == "x+y[1]"


def test_the_openai_sdk_raises_its_matching_errors(tmp_path):
    """The SDK's own exception classes, with the server's messages (through its httpx client)."""
    import openai

    assistant = FakeAssistant(Settings(home=tmp_path))
    app = create_api(assistant, FakeCollection(), loopback=False, keys=("k-12345678",))

    def sdk(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=TestClient(app), max_retries=0)

    with pytest.raises(openai.AuthenticationError, match="RAG_API_KEYS"):
        sdk("wrong-key").models.list()
    client = sdk("k-12345678")
    assert [m.id for m in client.models.list()] == ["interview-rag"]
    with pytest.raises(openai.NotFoundError, match="does not exist") as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="user message"):
        client.chat.completions.create(model="interview-rag", messages=[{"role": "system", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="nobody"):
        client.chat.completions.create(
            model="interview-rag", messages=[{"role": "user", "content": "q"}], extra_body={"interviewees": ["nobody"]}
        )
    reply = client.chat.completions.create(model="interview-rag", messages=[{"role": "user", "content": "纸质材料？"}])
    assert reply.model_extra["citations"][0]["quote"] == QUOTE and reply.usage.total_tokens > 0
    keyless = openai.OpenAI(
        base_url="http://testserver/v1",
        api_key="x",
        http_client=TestClient(create_api(assistant, FakeCollection(), loopback=False)),
        max_retries=0,
    )
    with pytest.raises(openai.PermissionDeniedError, match="RAG_API_KEYS"):
        keyless.models.list()


def test_the_schemas_are_published_and_one_serializer_shapes_every_answer(client, capsys, monkeypatch):
    from openai.types.chat import ChatCompletion

    from rag.schema import AnswerOut

    http, assistant = client
    schema = http.get("/openapi.json").json()
    paths, models = schema["paths"], schema["components"]["schemas"]

    def response_of(path: str, method: str = "post") -> str:
        return paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]

    assert response_of("/v1/answers") == "AnswerOut" and "quote" in models["Citation"]["properties"]
    assert response_of("/v1/retrieve") == "PassagesOut" and response_of("/v1/models", "get") == "ModelList"
    assert response_of("/v1/chat/completions") == "ChatCompletion"
    assert response_of("/v1/documents", "get") == "DocumentsOut" and response_of("/v1/documents") == "UploadOut"
    assert response_of("/v1/documents/{document_id}", "delete") == "RemovedOut"
    assert set(models["DocumentOut"]["properties"]) >= {"id", "source", "articles", "chunks", "ingested_at"}
    sent = http.post("/v1/answers", json={"question": "纸质材料？"}).json()
    assert "markdown" not in sent  # only when asked for
    expected = AnswerOut.of(quoted("纸质材料？")).payload()
    # the API names a source as a person is shown it (relative to the collection's folder)
    assert sent == {**expected, "citations": [{**c, "source": "a.txt"} for c in expected["citations"]]}
    # the OpenAI SDK's own type reads the reply, extra fields kept
    reply = ChatCompletion.model_validate(
        http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "纸质材料？"}]}).json()
    )
    assert reply.choices[0].message.content and reply.citations[0]["quote"] == QUOTE
    # the CLI prints the same shape (rag ask --json, the answer made here by a fake assistant)
    import ui.cli

    monkeypatch.setattr("rag.assistant.Assistant", lambda *a, **k: assistant)
    monkeypatch.setattr(
        "rag.embeddings.load_embedder", lambda settings: type("E", (), {"load_in_background": lambda self: None})()
    )
    assert ui.cli.main(["ask", "--local", "--json", "纸质材料？"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
