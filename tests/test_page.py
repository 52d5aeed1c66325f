"""The chat page as a person meets it, in headless Chromium: both widths, copying, removal, empty questions."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

# The controls a person uses on the chat tab: none may cover another.
CONTROLS = [
    "#scope",
    "#chat",
    "#question textarea",
    "#ask",
    "#copy-answer",
    "#copy-conversation",
    "#clear",
    "#sources",
    "#copy-with-references",
    "[role=tab]",
]


def _open(browser, server, width: int, height: int, **context):
    page = browser.new_context(viewport={"width": width, "height": height}, **context).new_page()
    page.goto(server)
    page.wait_for_selector("#question textarea", timeout=60000)
    return page


def _ask(page, question: str) -> None:
    before = page.locator("#chat .message").count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#chat .message').length >= n + 2", arg=before, timeout=60000
    )
    page.wait_for_function(
        "() => (document.querySelector('#copy-with-references textarea')?.value || '').length > 0", timeout=60000
    )
    page.wait_for_timeout(300)


def _upload(page, files: list, said: str) -> None:
    """Upload ``files`` on the Collection tab and wait for the report to say ``said``."""
    page.get_by_role("tab", name="资料库 Collection").click()
    page.locator("#upload input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_timeout(1500)
    page.locator("#add").click()
    page.wait_for_function(
        "said => (document.querySelector('#collection-status')?.innerText || '').includes(said)",
        arg=said,
        timeout=120000,
    )


def _ask_removal(page, typed: str, name: str) -> str:
    """Choose the file ``name`` (found by typing ``typed``), press Remove: the question asked."""
    page.locator("#chosen input").fill(typed)
    page.locator("ul[role=listbox] li").filter(has_text=name).first.click()
    page.keyboard.press("Escape")
    page.locator("#remove").click()
    page.wait_for_selector("#confirm-removal", state="visible", timeout=30000)
    return page.locator("#removal-question").inner_text()


def _overlaps(page) -> list[tuple[str, str]]:
    boxes = []
    for selector in CONTROLS:
        for i in range(page.locator(selector).count()):
            box = page.locator(selector).nth(i).bounding_box()
            if box and box["width"] and box["height"]:
                boxes.append((f"{selector}#{i}", box))
    found = []
    for n, (a, p) in enumerate(boxes):
        for b, q in boxes[n + 1 :]:
            w = min(p["x"] + p["width"], q["x"] + q["width"]) - max(p["x"], q["x"])
            h = min(p["y"] + p["height"], q["y"] + q["height"]) - max(p["y"], q["y"])
            if w > 1 and h > 1:
                found.append((a, b))
    # content spilling out of its box covers what follows, though the boxes do not meet
    spilled = page.evaluate(
        """selectors => selectors.flatMap(s => Array.from(document.querySelectorAll(s)))
            .filter(e => getComputedStyle(e).overflowY === "visible" && e.scrollHeight > e.clientHeight + 2)
            .map(e => e.id || e.tagName)""",
        CONTROLS,
    )
    return found + [(name, "its own overflow") for name in spilled]


@pytest.mark.parametrize("width,height,name", [(1280, 800, "desktop"), (390, 844, "phone")])
def test_the_page_reads_well_at_both_widths(server, browser, width, height, name):
    """After a who-said answer: a list under each interviewee; on a phone the sources follow within
    1.2 screens; no control covers another; no horizontal scroll."""
    page = _open(browser, server, width, height)
    _ask(page, "哪几位受访者谈到了营商环境？")
    page.wait_for_selector("#sources .src-card", timeout=60000)
    assert page.locator("#chat .ans-head").count() >= 2 and page.locator("#chat .ans-items li").count() >= 2
    first_card = page.evaluate("document.querySelector('#sources .src-card').getBoundingClientRect().top + scrollY")
    if name == "phone":
        assert first_card <= 1.2 * height, first_card
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert _overlaps(page) == []
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)
    page.context.close()


def test_copies_give_text_with_references(server, browser):
    """The answer, the answer box's own icon and the whole conversation: text with "[n] 《…》", never markup;
    the chat offers no copy or share icon of its own (they copied HTML)."""
    page = _open(browser, server, 1280, 800, permissions=["clipboard-read", "clipboard-write"])
    assert page.locator("#chat button[aria-label*='opy'], #chat button[aria-label*='hare']").count() == 0
    _ask(page, "市住建局取消了哪些纸质申报材料？")
    _ask(page, "哪几位受访者谈到了营商环境？")
    clipboard = "navigator.clipboard.readText()"
    page.locator("#copy-answer").click()
    page.wait_for_timeout(300)
    answer = page.evaluate(clipboard)
    assert answer == page.locator("#copy-with-references textarea").input_value()
    assert "营商环境" in answer and "参考文献 References:\n[1] 《" in answer and "<" not in answer
    page.evaluate("navigator.clipboard.writeText('')")
    page.locator("#copy-with-references button").first.click()
    page.wait_for_timeout(300)
    assert page.evaluate(clipboard) == answer
    page.locator("#copy-conversation").click()
    page.wait_for_timeout(300)
    conversation = page.evaluate(clipboard)
    assert conversation.index("问 Q：市住建局取消了哪些纸质申报材料？") < conversation.index("问 Q：哪几位受访者")
    assert conversation.count("参考文献 References:") == 2 and "<" not in conversation
    page.context.close()


def test_an_empty_question_adds_nothing_and_an_example_asks(server, browser):
    page = _open(browser, server, 1280, 800)
    page.locator("#question textarea").press("Enter")
    page.wait_for_selector(".toast-body", timeout=10000)
    assert "请输入一个问题" in page.locator(".toast-body").first.inner_text()
    assert page.locator("#chat .message").count() == 0
    page.get_by_text("市住建局取消了哪些纸质申报材料？").first.click()  # an example in the empty chat
    page.wait_for_selector("#sources .src-card mark", timeout=60000)
    assert "纸质申报材料" in page.locator("#chat .message").last.inner_text()
    page.context.close()


def test_removal_asks_first_and_the_bundled_collection_is_marked(server, browser, tmp_path):
    doc = tmp_path / "待删除访谈.txt"
    doc.write_text("待删除的访谈\n记者：图书馆何时开放？\n馆长：新馆将于十月一日开放。", encoding="utf-8")
    page = _open(browser, server, 1280, 800)
    page.get_by_role("tab", name="资料库 Collection").click()
    page.wait_for_function("() => document.querySelector('#documents')?.innerText.includes('内置示例')", timeout=30000)
    _upload(page, [doc], "✅ 待删除访谈.txt")
    asked = _ask_removal(page, "待删除", "待删除访谈.txt")
    assert "待删除访谈.txt" in asked and "个片段" in asked
    page.locator("#cancel-remove").click()
    page.wait_for_selector("#confirm-removal", state="hidden", timeout=30000)
    assert "待删除的访谈" in page.locator("#documents").inner_text()  # cancelled: still there
    page.locator("#remove").click()
    page.wait_for_selector("#confirm-removal", state="visible", timeout=30000)
    page.locator("#confirm-remove").click()
    page.wait_for_function(
        "() => (document.querySelector('#collection-status')?.innerText || '').includes('已删除 1 个文件')",
        timeout=60000,
    )
    assert "待删除的访谈" not in page.locator("#documents").inner_text()
    assert "内置示例" in page.locator("#documents").inner_text()
    page.context.close()


def test_file_names_and_titles_stay_text_in_toasts_reports_and_questions(server, browser, tmp_path):
    """A file refused for its type, a file and a title that are <img> tags pointing at a listener: the
    page shows them as text and the listener is never asked for anything."""
    import http.server
    import threading

    from tests.conftest import free_port

    fetched: list[str] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 -- the http.server name
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()

    port = free_port()
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", port), Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    exe = tmp_path / f'<img src="http:\\\\127.0.0.1:{port}\\exfil">.exe'
    exe.write_bytes(b"MZ")
    txt = tmp_path / f"<img src=http:\\\\127.0.0.1:{port}\\name>.txt"
    txt.write_text(f"<img src=http://127.0.0.1:{port}/title>\n记者：何时？\n局长：明天上午开放。", encoding="utf-8")
    page = _open(browser, server, 1280, 800)
    _upload(page, [exe, txt], "unsupported file type .exe")
    assert f"《<img src=http://127.0.0.1:{port}/title>》" in _ask_removal(page, "name", "name.txt")
    page.locator("#confirm-remove").click()
    page.wait_for_timeout(1000)
    listener.shutdown()
    assert fetched == []
    page.context.close()
