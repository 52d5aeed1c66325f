"""The real chat page in headless Chromium: ask, read the sources, get refused, upload, two sessions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    port = free_port()
    home = tmp_path_factory.mktemp("ui-home")
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ui", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    wait_for_server(proc, url=url, timeout=240, log=home / "server.log")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


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
    page.screenshot(path=str(ARTIFACTS / "answer.png"), full_page=True)

    _ask(page, "开发区管委会主任毕业于哪所大学？")
    page.wait_for_selector("#sources .src-none", timeout=60000)
    assert "没有找到" in page.locator("#chat .message").last.inner_text()
    page.screenshot(path=str(ARTIFACTS / "refusal.png"), full_page=True)
    page.close()


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
