"""The thin UI layer with a fake assistant: rendering, the chat handler, loopback-only defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rag.config import Settings, is_loopback
from rag.errors import RagError
from rag.types import Answer, Article, Chunk, Citation, Hit, Paragraph, ParsedDocument
from tests.conftest import FakeAssistant
from ui.app import ChatPage
from ui.launch import main
from ui.render import answer_html, sources_html

TEXT = "访谈标题\n“营商环境是生产力。”局长xxx说。\n##paidbegin##我们取消了纸质材料。审批时限压缩到x个工作日。"


def _doc() -> ParsedDocument:
    p1 = Paragraph(1, 5, 24)
    p2 = Paragraph(2, TEXT.index("我们"), len(TEXT))
    return ParsedDocument("/data/a.txt", TEXT, (Article(1, "访谈标题", "局长xxx", 0, len(TEXT), (p1, p2)),))


class FakeDocuments:
    def load(self, doc_hash):
        return _doc()


def _answer() -> Answer:
    start = TEXT.index("我们取消")
    quote = "我们取消了纸质材料。"
    citation = Citation(1, "/data/a.txt", "访谈标题", quote, start, start + len(quote), 1.0, "局长xxx", 1, 2, "h", "c")
    return Answer("纸质材料？", f"{quote}[1]", True, [citation])


def test_markers_link_to_their_source_cards():
    html = answer_html(_answer())
    assert 'href="#cite-1"' in html and "我们取消了纸质材料" in html
    assert 'title="《访谈标题》第2段' in html


def test_source_card_highlights_the_quote_and_hides_paywall_markers():
    panel = sources_html(_answer(), FakeDocuments())
    assert 'id="cite-1"' in panel
    assert "<mark>我们取消了纸质材料。</mark>" in panel
    assert '<mark id="art-1">我们取消了纸质材料。</mark>' in panel  # show in article
    assert "##paid" not in panel
    assert "局长xxx" in panel and "第2段" in panel


def test_quotes_of_one_paragraph_share_one_card():
    from dataclasses import replace

    first = _answer().citations[0]
    start = TEXT.index("我们")
    second = replace(first, n=2, quote=TEXT[start : start + 2], start=start, end=start + 2)
    panel = sources_html(Answer("q", "…[1]…[2]", True, [first, second]), FakeDocuments())
    assert panel.count('class="src-card"') == 1 and "<h4>[1][2] 《访谈标题》" in panel
    assert 'id="cite-1"' in panel and 'id="cite-2"' in panel and 'id="art-2"' in panel
    assert panel.count("<mark>") == 2  # the paragraph shown once, both quotes marked


def test_not_found_panel_shows_closest_passages_marked_as_such():
    chunk = Chunk("审批时限压缩到x个工作日。", "/data/a.txt", "h", 1, "访谈标题", "", 2, 2, 0, 10, "text")
    answer = Answer("大学？", "资料中没有找到这个问题的答案。", False, [], [Hit(chunk, 0.01)])
    panel = sources_html(answer, FakeDocuments())
    assert "没有找到答案" in panel and "并非答案" in panel and "审批时限" in panel


def test_not_found_panel_shows_the_closest_sentences_marked_in_their_paragraph():
    closest = _answer().citations
    answer = Answer("纸质材料？", "资料中没有找到这个问题的答案。", False, [], [], closest=closest)
    panel = sources_html(answer, FakeDocuments())
    assert "没有找到答案" in panel and "最接近的句子（并非答案）" in panel and "最接近的段落" not in panel
    assert 'class="src-card src-near"' in panel and "<h4>(1) 《访谈标题》 · 局长xxx</h4>" in panel
    assert "<mark>我们取消了纸质材料。</mark>" in panel and "[1]" not in panel


def test_answers_are_escaped():
    answer = Answer("q", "<script>alert(1)</script>[1]", True, _answer().citations)
    assert "<script>" not in answer_html(answer)


def test_chat_streams_then_renders_and_keeps_history():
    assistant = FakeAssistant()
    assistant.documents = FakeDocuments()
    assistant.queue += [_answer(), _answer()]
    respond = ChatPage(assistant, collection=object()).respond
    steps = list(respond("纸质材料？", [], []))
    assert len(steps) == 2  # a partial answer, then the final one
    chat, turns, panel, box, copy, said = steps[-1]
    assert 'href="#cite-1"' in chat[-1]["content"] and turns == [("纸质材料？", "我们取消了纸质材料。[1]")]
    assert "<mark>" in panel and box == ""
    assert copy == "我们取消了纸质材料。[1]\n\n参考文献 References:\n[1] 《访谈标题》，局长xxx，第2段。"
    assert said == [f"问 Q：纸质材料？\n答 A：{copy}"]
    *_, said = list(respond("那审批呢？", chat, turns, ["局长xxx"], said))[-1]
    assert assistant.asked[-1][1] == [("纸质材料？", "我们取消了纸质材料。[1]")]
    assert assistant.asked[-1][3] == ["局长xxx"]
    assert len(said) == 2 and said[1].startswith("问 Q：那审批呢？") and "<" not in "".join(said)


def test_an_empty_question_adds_no_bubble():
    assistant = FakeAssistant()
    respond = ChatPage(assistant, collection=object()).respond
    before = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    for empty in ("", "   ", None):
        (chat, turns, _, box, _, said), *more = list(respond(empty, before, [("q", "a")]))
        assert chat == before and turns == [("q", "a")] and box == "" and said == [] and not more
    assert assistant.asked == []  # the assistant was never asked


def test_errors_appear_in_the_page():
    assistant = FakeAssistant()
    assistant.queue += [RagError("the index is empty; run: rag ingest"), ConnectionError("LLM server down")]
    respond = ChatPage(assistant, collection=object()).respond
    chat, _, panel, *_ = list(respond("问题", [], []))[-1]
    assert "rag ingest" in chat[-1]["content"] and "rag ingest" in panel
    chat, *_ = list(respond("问题", [], []))[-1]
    assert "ConnectionError" in chat[-1]["content"]


def test_loopback_only_without_a_password(monkeypatch, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    monkeypatch.delenv("RAG_UI_AUTH", raising=False)
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "RAG_UI_AUTH" in capsys.readouterr().err
    for empty in ("admin:", ":secret", "admin"):
        monkeypatch.setenv("RAG_UI_AUTH", empty)
        assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
        assert "not empty" in capsys.readouterr().err


def test_failed_logins_wait_longer_one_at_a_time(monkeypatch):
    import asyncio

    import ui.launch as launch

    waits = []

    async def recorded(seconds):
        waits.append(seconds)

    monkeypatch.setattr(launch.asyncio, "sleep", recorded)
    check = launch.login_check("admin:s3cret")

    async def tries():
        wrong = await asyncio.gather(*(check("admin", f"guess{i}") for i in range(40)))
        return wrong, await check("admin", "s3cret"), await check("admin", "")

    wrong, right, empty = asyncio.run(tries())
    assert not any(wrong) and right and not empty
    assert waits[:3] == pytest.approx([0.1, 0.2, 0.3]) and max(waits) == launch.MAX_LOGIN_DELAY
    assert waits == sorted(waits) and len(waits) == 41  # the right password never waited


@pytest.mark.parametrize("name", ["../../etc/passwd.txt", "..\\..\\evil.md", ".hidden.txt", "a/b/c.docx"])
def test_upload_names_never_become_paths(settings, tmp_path, name):
    from ingest.collection import store_upload

    temp = tmp_path / "upload.bin"
    temp.write_text("标题\n内容。", encoding="utf-8")
    stored = store_upload(settings, temp, name)
    assert stored.resolve().is_relative_to((settings.home / "uploads").resolve())
    assert ".." not in stored.name and "/" not in stored.name
    assert stored.stat().st_mode & 0o777 == 0o600 and stored.parent.stat().st_mode & 0o777 == 0o700


def test_shown_paths_are_relative_and_discarding_stays_in_uploads(settings, tmp_path):
    from ingest.collection import discard_upload, shown_path, store_upload

    temp = tmp_path / "upload.bin"
    temp.write_text("标题\n内容。", encoding="utf-8")
    stored = store_upload(settings, temp, "a.txt")
    assert shown_path(str(stored), settings) == stored.relative_to(settings.home).as_posix()
    assert shown_path("/srv/archive/2024/b.txt", settings, tmp_path / "x") == "b.txt"
    assert shown_path("/srv/archive/2024/b.txt", settings, Path("/srv/archive")) == "2024/b.txt"
    discard_upload(settings, temp)  # outside RAG_HOME/uploads: left alone
    assert temp.exists()
    discard_upload(settings, stored)
    assert not stored.exists() and not stored.parent.exists()


def test_uploads_of_wrong_type_or_size_are_refused(settings, tmp_path):
    import ingest.collection as pipeline
    from rag.errors import ParseError

    temp = tmp_path / "x"
    temp.write_bytes(b"x" * 100)
    with pytest.raises(ParseError, match="unsupported"):
        pipeline.store_upload(settings, temp, "virus.exe")
    temp.write_bytes(b"x" * (2**20 + 1))
    settings = dataclasses.replace(settings, max_file_mb=1)
    with pytest.raises(ParseError, match=r"over the limit of 1,048,576 bytes \(1 MB\)"):
        pipeline.store_upload(settings, temp, "big.txt")
    assert not (settings.home / "uploads").exists()


def test_a_port_in_use_is_one_line_not_a_traceback(capsys):
    import socket

    from ui.launch import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "Traceback" not in err


def _answer_quoting(quote: str) -> Answer:
    citation = Citation(1, "/data/a.txt", "访谈`标题", quote, 0, len(quote), 1.0, "局长xxx", 1, 2, "h", "c")
    return Answer("q", f"{quote}[1]", True, [citation])


def test_nothing_in_a_quote_is_live_markup():
    """Links, images, a literal [1], a lone backtick and a right-to-left override stay text."""
    quote = "详见 http://evil.example/x 和 ![](http://evil.example/i.png) 及 [点此](javascript:alert(1)) [1] 这个`符号\u202e反转。"
    html = answer_html(_answer_quoting(quote))
    assert html.count("<a ") == 1 and html.count('href="#cite-1"') == 1  # only the real marker links
    assert "<img" not in html and "<code" not in html and "\u202e" not in html and "&lt;U+202E&gt;" in html
    assert html.startswith("详见 http://evil.example/x 和 ![](http://evil.example/i.png)")


def test_terminal_output_shows_escape_sequences_as_codes():
    from ui.cli import format_answer

    quote = "审批时限压缩到5个工作日。\x1b]0;pwned\x07\x1b[2J\u202e完"
    text = format_answer(_answer_quoting(quote))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J<U+202E>完" in text


def test_terminal_output_of_a_refusal_marks_the_closest_sentences_as_not_an_answer():
    from ui.cli import format_answer

    answer = Answer("q", "资料中没有找到这个问题的答案。", False, closest=_answer().citations)
    lines = format_answer(answer).splitlines()
    assert lines[:2] == ["资料中没有找到这个问题的答案。", "最接近的句子（并非答案）Closest sentences, not an answer:"]
    assert lines[2].startswith("(1) 《访谈标题》 · 局长xxx · a.txt 第2段") and lines[3] == "    “我们取消了纸质材料。”"


def test_version_and_python_dash_m_rag():
    import subprocess
    import sys

    import rag

    out = subprocess.run([sys.executable, "-m", "rag", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"rag {rag.__version__}" and rag.__version__[0].isdigit()


def _commonmark(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


def test_markdown_shows_every_sentence_of_the_collection_as_written_without_stray_backslashes():
    import html as html_module

    from ingest.chunk import chunk_document
    from ingest.parse import parse_file
    from rag.references import escape_markdown
    from tests.conftest import CORPUS

    chunks = chunk_document(parse_file(CORPUS))
    sentences = {c.text[s - c.start : e - c.start] for c in chunks for s, e in c.sentences()}
    assert len(sentences) > 100
    for sentence in sentences:
        escaped = escape_markdown(sentence)
        assert _commonmark(escaped) == f"<p>{html_module.escape(sentence, quote=False)}</p>\n", sentence
        if not any(ch in sentence for ch in "\\`*_[]<>~|!&#"):
            assert escaped == sentence  # "互联网+政务服务" stays as it is: nothing to strip for a plain client


@pytest.mark.parametrize(
    "text",
    [
        "详见 [点此](javascript:alert(1)) 和 ![](http://evil.example/i.png) <b>粗</b> &amp; `代码`",
        "# 标题\n1. 第一\n- 列表\n> 引用\n    缩进代码\n---",
        "*强调* __加粗__ ~~删除~~ a | b\n--- | ---\nc | d",
        "<http://evil.example> 及 <script>alert(1)</script>",
    ],
)
def test_markdown_escaping_leaves_no_live_markup(text):
    from rag.references import escape_markdown

    rendered = _commonmark(escape_markdown(text))
    for tag in (
        "<a",
        "<img",
        "<code",
        "<em",
        "<strong",
        "<h1",
        "<ol",
        "<ul",
        "<blockquote",
        "<pre",
        "<table",
        "<del",
        "<hr",
        "<b>",
        "<script",
    ):
        assert tag not in rendered, (tag, rendered)


def test_the_running_server_record(tmp_path):
    from ui.running import announce, ask_server, forget, server_of

    assert server_of(tmp_path) is None
    record = announce(tmp_path, "0.0.0.0", 9)
    assert server_of(tmp_path) == "http://127.0.0.1:9"  # this process is alive
    assert ask_server("http://127.0.0.1:9", {"question": "q"}, timeout=2) is None  # nobody listens: answer locally
    (tmp_path / "server.json").write_text('{"url": "http://127.0.0.1:9", "pid": 999999999}')
    assert server_of(tmp_path) is None  # its process is gone
    forget(record)  # not ours any more: left alone
    assert (tmp_path / "server.json").exists()
    assert announce(tmp_path / "missing" / "home", "127.0.0.1", 9) is None  # an unwritable home still serves
    forget(None)


def test_settings_state_what_answers(tmp_path):
    from dataclasses import replace

    from rag.assistant import Assistant
    from ui.app import _settings_text

    settings = Settings(home=tmp_path)
    assert "learned sentence scorer" in Assistant(settings).mode
    assert "word-overlap rules" in Assistant(replace(settings, answerer="rules")).mode
    llm = replace(settings, llm_base_url="http://127.0.0.1:9/v1", llm_model="qwen2.5")
    assert "LLM `qwen2.5` @ `http://127.0.0.1:9/v1`" in Assistant(llm).mode
    text = _settings_text(settings, Assistant(settings).mode)
    assert f"`{settings.collection_name}`" in text and "`onnx`" in text and str(tmp_path) not in text


def test_the_upload_report_and_the_removal_question_name_each_file(tmp_path):
    from ingest.pipeline import BUNDLED_SOURCE, FileOutcome, IngestReport
    from ui.collection import Collection

    class Shelf(Collection):
        def documents(self):
            return [
                {"source": BUNDLED_SOURCE, "path": BUNDLED_SOURCE, "title": "汇编", "chunks": 38},
                {"source": "/h/uploads/x/a.txt", "path": "uploads/x/a.txt", "title": "甲", "chunks": 3},
            ]

        def add_files(self, uploads, on_progress=None):
            files = [
                FileOutcome("/h/uploads/x/a.txt", "indexed", added=3),
                FileOutcome("/h/uploads/y/b.txt", "unchanged"),
                FileOutcome("/h/uploads/z/c.docx", "failed", "c.docx: not a valid .docx file"),
            ]
            return IngestReport(files, seconds=1.0), ["d.exe: unsupported type", "c.docx: not a valid .docx file"]

    shelf = Shelf(Settings(home=tmp_path))
    report = shelf.add([]).splitlines()
    assert report[0] == "已索引 2 个文件，新增 3 个片段（1.0 秒）。"
    assert report[1:] == [
        "- ✅ a.txt：新增 3 个片段",
        "- ＝ b.txt：与已索引的版本相同，未变",
        "- ⚠️ 未索引 not indexed — c.docx: not a valid .docx file",
        "- ⚠️ d.exe: unsupported type",
    ]
    asked = shelf.removal_preview(["uploads/x/a.txt"])
    assert "《甲》（uploads/x/a.txt，3 个片段）" in asked and "共 3 个片段" in asked and "内置" not in asked
    assert "内置示例" in shelf.removal_preview([BUNDLED_SOURCE]) and shelf.removal_preview(["nope"]) == ""
