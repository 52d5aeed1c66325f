"""The API against a real server process, with clients nobody here wrote: the openai SDK, LangChain, httpx."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from rag.assistant import Assistant
from rag.config import Settings
from tests.conftest import copy_index, free_port, wait_for_server

pytestmark = pytest.mark.slow


def _serve(home, model_cache, host="127.0.0.1", keys="", extra=()):
    port = free_port()
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    env["RAG_API_KEYS"] = keys
    log = open(home / f"serve-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--host", host, "--port", str(port), *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, port


@pytest.fixture(scope="module")
def home(tmp_path_factory, bundled_index):
    return copy_index(bundled_index, tmp_path_factory.mktemp("api-home"))


@pytest.fixture(scope="module")
def server(home, model_cache):
    proc, port = _serve(home, model_cache)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url=url + "/healthz", timeout=240, log=home / f"serve-{port}.log")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def local(home, model_cache, e5):
    """The same collection answered in this process: what the API must agree with."""
    return Assistant(Settings(home=home, model_cache=model_cache), embedder=e5)


def _same(api_citations: list[dict], answer) -> bool:
    keys = ("n", "quote", "start", "end", "title", "interviewee", "paragraph", "article")
    return [{k: c[k] for k in keys} for c in api_citations] == [
        {k: getattr(c, k) for k in keys} for c in answer.citations
    ]


def test_openai_sdk_non_stream_and_stream_with_a_follow_up(server, local):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-loopback")
    assert [m.id for m in client.models.list()] == ["interview-rag"]
    question = "乡村教育要实现怎样的转变？"
    reply = client.chat.completions.create(model="interview-rag", messages=[{"role": "user", "content": question}])
    message = reply.choices[0].message
    expected = local.ask(question)
    assert message.content.split("\n\n参考文献")[0].replace("\\", "") == expected.text
    assert _same(reply.model_extra["citations"], expected)
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0

    follow = "这方面还建了什么？"
    history = [(question, expected.text)]
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": message.content},
        {"role": "user", "content": follow},
    ]
    pieces, last = [], None
    for chunk in client.chat.completions.create(model="interview-rag", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        last = chunk
    expected = local.ask(follow, history=history)
    streamed = "".join(pieces)
    assert streamed.split("\n\n参考文献")[0].count("[") == expected.text.count("[")
    assert _same(last.model_extra["citations"], expected)


def test_openai_sdk_raises_its_own_errors_with_our_messages(server):
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused-on-loopback", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="model_not_found|does not exist") as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q"}])
    assert e.value.code == "model_not_found" and "gpt-4o" in e.value.message
    with pytest.raises(openai.BadRequestError, match="user message") as e:
        client.chat.completions.create(model="interview-rag", messages=[{"role": "system", "content": "x"}])
    assert e.value.param == "messages"
    with pytest.raises(openai.BadRequestError, match="2000"):
        client.chat.completions.create(model="interview-rag", messages=[{"role": "user", "content": "问" * 2001}])
    with pytest.raises(openai.BadRequestError, match="某某某"):
        client.chat.completions.create(
            model="interview-rag", messages=[{"role": "user", "content": "q"}], extra_body={"interviewees": ["某某某"]}
        )


def test_rag_ask_answers_through_the_running_server_of_its_home(server, home, model_cache, local):
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    question = "市住建局取消了哪些纸质申报材料？"
    cli = [sys.executable, "-m", "ui.cli", "ask", question]
    through = subprocess.run([*cli, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert through.returncode == 0 and server in through.stderr, through.stderr
    expected = local.ask(question)
    assert json.loads(through.stdout)["text"] == expected.text
    printed = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert expected.citations[0].quote in printed.stdout and "[1] 《" in printed.stdout
    unknown = subprocess.run([*cli, "--interviewee", "某某某"], env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "某某某" in unknown.stderr and "Traceback" not in unknown.stderr
    alone = subprocess.run([*cli, "--json", "--local"], env=env, capture_output=True, text=True, timeout=300)
    assert "answered by the server" not in alone.stderr and json.loads(alone.stdout)["text"] == expected.text


async def test_mcp_over_streamable_http_of_rag_serve(server, local):
    from mcp import Client

    question = "市住建局取消了哪些纸质申报材料？"
    async with Client(f"{server}/mcp") as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"ask", "retrieve", "documents"}
        answer = (await client.call_tool("ask", {"question": question})).structured_content
        listed = (await client.call_tool("documents", {})).structured_content["documents"]
    expected = local.ask(question)
    assert answer["text"] == expected.text and _same(answer["citations"], expected)
    assert listed[0]["file"] == "leader_interviews.txt" and len(listed[0]["articles"]) == 5


def test_langchain_chat_openai_invoke_and_stream(server, local):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=f"{server}/v1", api_key="unused-on-loopback", model="interview-rag")
    question = "师德方面建立了什么清单？"
    expected = local.ask(question)
    assert expected.found and "负面清单" in chat.invoke(question).content
    assert "负面清单" in "".join(piece.content for piece in chat.stream(question))


def test_answers_and_retrieve_with_httpx(server, local):
    question = "市住建局取消了哪些纸质申报材料？"
    data = httpx.post(f"{server}/v1/answers", json={"question": question, "format": "markdown"}, timeout=60).json()
    expected = local.ask(question)
    assert data["found"] and data["text"] == expected.text and _same(data["citations"], expected)
    assert "参考文献 References" in data["markdown"]
    chunks = httpx.post(f"{server}/v1/retrieve", json={"question": question, "k": 3}, timeout=60).json()["chunks"]
    assert len(chunks) == 3 and all(c["text"] and c["title"] and c["end"] > c["start"] for c in chunks)
    assert [c["start"] for c in chunks] == [h.start for h in local.retrieve(question, k=3)]
    filtered = httpx.post(
        f"{server}/v1/answers", json={"question": question, "interviewees": ["于晓峰"]}, timeout=60
    ).json()
    assert all(c["interviewee"].endswith("于晓峰") for c in filtered["citations"])
    unknown = httpx.post(f"{server}/v1/answers", json={"question": question, "interviewees": ["某某某"]}, timeout=60)
    assert unknown.status_code == 400 and "某某某" in unknown.json()["error"]["message"]


def test_upload_list_and_delete_change_the_answers(server, tmp_path):
    question = "量子计算实验室什么时候建成投用？"
    doc = tmp_path / "科技局访谈.txt"
    doc.write_text(
        "科技局长谈创新\n记者：量子实验室什么时候建成？\n局长：量子计算实验室将于x月底前建成投用。", encoding="utf-8"
    )
    before = httpx.post(f"{server}/v1/answers", json={"question": question}, timeout=60).json()
    assert not before["found"]
    with open(doc, "rb") as f:
        added = httpx.post(f"{server}/v1/documents", files=[("files", (doc.name, f, "text/plain"))], timeout=300)
    assert added.status_code == 200 and added.json()["indexed"] == [doc.name], added.text
    listed = httpx.get(f"{server}/v1/documents", timeout=60).json()["documents"]
    ours = next(d for d in listed if d["title"] == "科技局长谈创新")
    assert ours["articles"][0]["title"] == "科技局长谈创新" and not ours["source"].startswith("/")
    after = httpx.post(f"{server}/v1/answers", json={"question": question}, timeout=60).json()
    assert after["found"] and "x月底前" in after["text"]
    assert httpx.delete(f"{server}/v1/documents/{ours['id']}", timeout=60).status_code == 200
    assert httpx.delete(f"{server}/v1/documents/{ours['id']}", timeout=60).status_code == 404
    gone = httpx.post(f"{server}/v1/answers", json={"question": question}, timeout=60).json()
    assert not gone["found"]


def test_beyond_loopback_keys_are_required(home, model_cache):
    proc, port = _serve(home, model_cache, host="0.0.0.0")
    assert proc.wait(timeout=60) == 2  # refused before the model is even loaded
    assert "without keys; set RAG_API_KEYS" in (home / f"serve-{port}.log").read_text()

    proc, port = _serve(home, model_cache, host="0.0.0.0", keys="k-first-123,k-second-456")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(proc, url=url + "/healthz", timeout=240)
        body = {"question": "乡村教育要实现怎样的转变？"}
        assert httpx.post(f"{url}/v1/answers", json=body, timeout=60).status_code == 401
        wrong = {"Authorization": "Bearer k-guessed-000"}
        assert httpx.post(f"{url}/v1/answers", json=body, headers=wrong, timeout=60).status_code == 401
        right = {"Authorization": "Bearer k-second-456"}
        answered = httpx.post(f"{url}/v1/answers", json=body, headers=right, timeout=60)
        assert answered.status_code == 200 and answered.json()["found"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _readme_block(language: str, containing: str) -> str:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"```{language}\n(.*?)```", readme, re.S)
    return next(b for b in blocks if containing in b)


def test_the_readme_examples_work_as_printed_against_rag_ui(home, model_cache):
    """`rag ui` serves the API under /v1 beside the page; the README's curl and openai examples run."""
    port = free_port()
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    log = home / f"ui-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui", "--port", str(port)], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT
    )
    try:
        wait_for_server(proc, url=f"http://127.0.0.1:{port}/", timeout=240, log=log)
        curl = _readme_block("bash", "curl").replace("7860", str(port))
        out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
        data = json.loads(out.stdout)
        assert data["found"] and "纸质申报材料" in data["text"] and data["citations"][0]["quote"] in data["text"]
        python = _readme_block("python", "from openai import OpenAI").replace("7860", str(port))
        out = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "参考文献 References" in out.stdout and "就优就好" in out.stdout
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()  # the page itself, same process
        mcp = _readme_block("bash", "tools/list").replace("7860", str(port))  # MCP at /mcp of rag ui too
        out = subprocess.run(["bash", "-c", mcp], capture_output=True, text=True, timeout=60)
        tools = {t["name"] for t in json.loads(out.stdout)["result"]["tools"]}
        assert tools == {"ask", "retrieve", "documents"}, out.stdout + out.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
