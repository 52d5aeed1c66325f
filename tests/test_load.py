"""Load on the real page and on ask(): answers under load equal the solo ones; overload is refused, not fatal."""

from __future__ import annotations

import pytest

from ingest.pipeline import ingest
from rag.config import Settings
from ui.load import DirectAsk, PageClients, conversations, measure, run_level, start_page

pytestmark = pytest.mark.slow


@pytest.fixture
def indexed(settings, e5) -> Settings:
    ingest(None, settings, embedder=e5)
    return settings


def _quiet(level) -> None:
    pass


def test_answers_under_load_equal_the_solo_answers(indexed):
    work = conversations()
    assert any(len(c) > 1 for c in work)  # follow-ups: a mixed-up session would change their answers
    proc, url = start_page(env={"RAG_UI_CONCURRENCY": "4", "RAG_UI_QUEUE_SIZE": "64"})
    try:
        page = PageClients(url)
        levels = measure("ui", page.converse, work, [4, 16], 32, 120, _quiet)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    levels += measure("ask", DirectAsk().converse, work, [16], 64, 120, _quiet)
    for level in levels:
        assert (level.errors, level.mismatches, level.refused, level.not_run) == (0, 0, 0, 0), level
        assert level.conversations == max(32 if level.path == "ui" else 64, level.clients)


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
    from ui.load import main

    with pytest.raises(SystemExit, match="only drives a page on loopback"):
        main(["--paths", "ui", "--url", "http://192.168.1.5:7860/"])


def test_percentiles_of_a_level():
    from ui.load import Level

    level = Level("ask", 1, latencies_ms=[float(i) for i in range(1, 101)])
    assert (level.percentile(50), level.percentile(95), level.percentile(99)) == (50.5, 95.05, 99.01)
