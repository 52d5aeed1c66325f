"""Load on the real page and on ask(): answers under load equal the solo ones; overload is refused, not fatal."""

from __future__ import annotations

import pytest

from bench.load import DirectAsk, PageClients, conversations, measure, run_level, start_page
from rag.config import Settings

pytestmark = pytest.mark.slow

# Conversations per level of concurrency: every client busy at once, a few rounds (python -m
# bench.load runs more, and 64 clients).
UI_PER_LEVEL = 16
ASK_PER_LEVEL = 32


@pytest.fixture
def indexed(settings, bundled_home) -> Settings:
    return settings


def _quiet(level) -> None:
    pass


def test_answers_under_load_equal_the_solo_answers(indexed):
    work = conversations()
    assert any(len(c) > 1 for c in work)  # follow-ups: a mixed-up session would change their answers
    proc, url = start_page(env={"RAG_UI_CONCURRENCY": "4", "RAG_UI_QUEUE_SIZE": "64"})
    try:
        page = PageClients(url)
        levels = measure("ui", page.converse, work, [4, 16], UI_PER_LEVEL, 120, _quiet)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    levels += measure("ask", DirectAsk().converse, work, [16], ASK_PER_LEVEL, 120, _quiet)
    for level in levels:
        assert (level.errors, level.mismatches, level.refused, level.not_run) == (0, 0, 0, 0), level
        assert level.conversations == max(UI_PER_LEVEL if level.path == "ui" else ASK_PER_LEVEL, level.clients)


def test_an_overload_is_refused_with_a_message_and_the_page_keeps_serving(indexed):
    work = conversations()
    proc, url = start_page(env={"RAG_UI_CONCURRENCY": "1", "RAG_UI_QUEUE_SIZE": "2"})
    try:
        page = PageClients(url)
        _, solo = run_level("ui", 1, work[:4], page.converse, None, 120)
        burst = [work[i % 4] for i in range(48)]
        level, _ = run_level("ui", 24, burst, page.converse, solo, 120)
        assert level.refused > 0, "a queue of 2 took 24 clients at once"
        assert level.conversations > 0 and level.errors == 0 and level.mismatches == 0, level
        assert level.conversations + level.refused == len(burst)
        assert proc.poll() is None, "the page died under overload"
        after, results = run_level("ui", 1, work[:4], page.converse, solo, 120)
        assert (after.conversations, after.mismatches) == (4, 0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_load_script_drives_only_a_page_on_loopback():
    from bench.load import main

    with pytest.raises(SystemExit, match="only drives a page on loopback"):
        main(["--paths", "ui", "--url", "http://192.168.1.5:7860/"])


def test_percentiles_of_a_level():
    from bench.load import Level

    level = Level("ask", 1, latencies_ms=[float(i) for i in range(1, 101)])
    assert (level.percentile(50), level.percentile(95), level.percentile(99)) == (50.5, 95.05, 99.01)


def test_answers_keep_coming_while_a_file_is_uploaded_and_indexed(indexed, tmp_path):
    import threading
    import time

    from gradio_client import Client, handle_file

    work = conversations()
    upload = tmp_path / "新访谈.txt"
    sentences = [f"第{i}项措施：全市新建{i}所社区图书馆，服务半径缩短到{i}公里。" for i in range(1, 121)]
    sentences.insert(60, "市图书馆新馆将于十月开放，藏书两百万册。")
    upload.write_text("图书馆建设访谈\n" + "\n".join(sentences), encoding="utf-8")
    proc, url = start_page()
    try:
        page = PageClients(url)
        result: dict = {}

        def add_file() -> None:
            client = Client(url, verbose=False)
            result["began"] = time.perf_counter()
            result["message"] = client.predict([handle_file(str(upload))], api_name="/upload")[0]
            result["ended"] = time.perf_counter()

        uploader = threading.Thread(target=add_file)
        uploader.start()
        began = time.perf_counter()
        level, _ = run_level("ui", 4, work * 2, page.converse, None, 120)
        uploader.join(timeout=300)
        overlap = min(result["ended"], began + level.seconds) - max(result["began"], began)
        assert overlap > 1.0, "the questions did not run while the file was being indexed"
        assert (level.errors, level.refused, level.conversations) == (0, 0, 2 * len(work)), level
        assert result["message"].startswith("已索引 1 个文件"), result
        chat, *_ = Client(url, verbose=False).predict("市图书馆新馆藏书多少册？", [], api_name="/ask")
        assert "藏书两百万册" in str(chat[-1]["content"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
