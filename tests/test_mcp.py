"""The MCP server: the SDK's own client in-process, over streamable HTTP (/mcp, behind the API's keys)
and over stdio (``rag mcp``, the real model and index); its answers are ``ask()``'s."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from mcp import Client

from rag.config import Settings
from tests.conftest import QUOTE, FakeAssistant, FakeCollection
from ui.api import create_api
from ui.mcp_server import build_server


class Documents(FakeCollection):
    def documents(self):
        return [{"file": "a.txt", "title": "汇编", "articles": ["访谈标题"], "interviewees": ["局长xxx"]}]


async def _ask(client: Client, **arguments) -> dict:
    result = await client.call_tool("ask", {"question": "纸质材料？", **arguments})
    assert not result.is_error, result
    return result.structured_content


async def test_the_tools_in_process(tmp_path):
    assistant = FakeAssistant(Settings(home=tmp_path))
    async with Client(build_server(assistant, Documents())) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"ask", "retrieve", "documents"}
        answer = await _ask(client, interviewees=["局长xxx"])
        assert answer["found"] and answer["citations"][0]["quote"] == QUOTE
        assert assistant.asked[-1][3] == ["局长xxx"]
        listed = (await client.call_tool("documents", {})).structured_content
        assert listed["documents"][0]["articles"] == [{"title": "访谈标题", "interviewee": "局长xxx"}]
        refused = await client.call_tool("ask", {"question": "q", "interviewees": ["nobody"]})
        assert refused.is_error and "nobody" in refused.content[0].text


def _serve(app) -> tuple[str, object]:
    import uvicorn

    from bench.server import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


async def test_streamable_http_at_mcp_behind_the_keys(tmp_path):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    assistant = FakeAssistant(Settings(home=tmp_path))
    url, server = _serve(create_api(assistant, Documents(), loopback=False, keys=("k-12345678",)))
    try:
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer k-12345678"}) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
                answer = await _ask(client)
                assert answer["citations"][0]["quote"] == QUOTE
        refused = httpx2.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    finally:
        server.should_exit = True


@pytest.mark.slow
async def test_rag_mcp_over_stdio_answers_as_ask_does(tmp_path, model_cache, bundled_index, e5):
    from mcp import StdioServerParameters

    from rag.assistant import Assistant
    from tests.conftest import copy_index

    settings = Settings(home=copy_index(bundled_index, tmp_path / "home"), model_cache=model_cache)
    question = "乡村教育要实现怎样的转变？"
    expected = Assistant(settings, embedder=e5).ask(question, interviewees=["于晓峰"])
    env = {**os.environ, "RAG_HOME": str(settings.home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "ui.cli", "mcp"], env=env)
    async with Client(params, read_timeout_seconds=240) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"ask", "retrieve", "documents"}
        result = await client.call_tool("ask", {"question": question, "interviewees": ["于晓峰"]})
    answer = result.structured_content
    assert answer["text"] == expected.text and answer["found"]
    assert [c["quote"] for c in answer["citations"]] == [c.quote for c in expected.citations]
