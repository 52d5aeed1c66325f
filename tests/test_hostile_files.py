"""Files that used to abort a run or hold it for minutes: each is one line of reason, the run goes on."""

from __future__ import annotations

import io
import random
import threading
import time
from pathlib import Path

import pytest

from bench.hostile import docx_bytes as _docx
from bench.hostile import inflating_pdf as _inflating_pdf
from bench.hostile import mutate as _mutate
from bench.hostile import pdf_bytes as _pdf
from bench.hostile import slow_docx as _slow_docx
from ingest.files import FileOutcome
from ingest.parse import decode_text, parse_file
from ingest.pipeline import ingest, read_files
from rag.config import Settings
from rag.errors import ParseError
from tests.conftest import HashEmbedder as FakeEmbeddings

GOOD = "科技局长谈创新\n记者：量子实验室什么时候建成？\n局长：量子计算实验室将于x月底前建成投用。\n"


def test_aes_encrypted_pdf_with_an_empty_password_is_read(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf())))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    path = tmp_path / "aes.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    assert b"/AESV3" in path.read_bytes() or b"/V 5" in path.read_bytes()
    assert "five working days" in parse_file(path).text


def test_a_pdf_with_a_real_password_gets_one_line(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf())))
    writer.encrypt(user_password="secret", algorithm="AES-128")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    with pytest.raises(ParseError, match="password"):
        parse_file(path)


def test_a_pdf_stream_inflating_past_the_limit_is_one_line(tmp_path):
    path = tmp_path / "inflate.pdf"
    path.write_bytes(_inflating_pdf(80))  # pypdf stops at 75 MB with LimitReachedError
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ParseError, match=r"inflate\.pdf: cannot read this PDF \(LimitReachedError"):
        parse_file(path)


def test_utf16_with_and_without_bom_is_read():
    text = "记者：审批时间缩短了多少？\nxxx：审批时限压缩到5个工作日以内。\n"
    for data in (
        text.encode("utf-16"),  # with BOM
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        b"\xff\xfe\x00\x00" + text.encode("utf-32-le"),
    ):
        assert decode_text(data, "u16.txt") == text
    with pytest.raises(ParseError, match="binary"):
        decode_text(bytes(range(256)) * 20, "blob.txt")


FUZZED_PER_FORMAT = 120


def test_fuzzed_pdfs_and_docx_never_abort_a_run(tmp_path, capfd):
    """A seeded mutator makes broken files; the run reports each and indexes the good file beside them."""
    rng = random.Random(20261129)
    seeds = {".pdf": _pdf("审批时限压缩到5个工作日以内。 Approval within five days."), ".docx": _docx(GOOD.split("\n"))}
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for suffix, data in seeds.items():
        for i in range(FUZZED_PER_FORMAT):
            (folder / f"f{i:03d}{suffix}").write_bytes(_mutate(data, rng))
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    settings = Settings(home=tmp_path / "home", parse_seconds=30)
    report = ingest([folder], settings, embedder=FakeEmbeddings())
    assert len(report.files) == 2 * FUZZED_PER_FORMAT + 1
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["good.txt"].status == "indexed"
    for outcome in report.failed:
        assert outcome.reason and "\n" not in outcome.reason and Path(outcome.path).name in outcome.reason
    err = capfd.readouterr().err
    assert "Traceback" not in err and "pypdf" not in err.lower() and "warning" not in err.lower()


def test_a_docx_over_the_unpacked_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.docx"
    _slow_docx(path, 12)
    assert path.stat().st_size < 2_000_000
    settings = Settings(home=tmp_path / "home", max_unpacked_mb=8)
    began = time.perf_counter()
    ((_, failed),) = read_files([path], settings)
    assert "RAG_MAX_UNPACKED_MB" in failed.reason
    assert time.perf_counter() - began < 30  # refused from the zip's directory, not parsed


def test_a_docx_over_the_time_budget_is_stopped_and_the_lock_stays_free(tmp_path):
    """The slow file is stopped at RAG_PARSE_SECONDS; meanwhile another ingestion writes at once."""
    slow = tmp_path / "slow.docx"
    _slow_docx(slow, 40)
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    settings = Settings(home=tmp_path / "home", parse_seconds=3)
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=ingest([slow], settings, embedder=FakeEmbeddings())))
    worker.start()
    time.sleep(1.0)
    other = ingest([good], settings, embedder=FakeEmbeddings())  # no IndexBusyError: parsing holds no lock
    assert other.count("indexed") == 1
    worker.join(timeout=120)
    (failed,) = result["r"].failed
    assert "RAG_PARSE_SECONDS" in failed.reason


def test_reading_a_docx_can_be_cancelled(tmp_path):
    slow = tmp_path / "slow.docx"
    _slow_docx(slow, 40)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    settings = Settings(home=tmp_path / "home", parse_seconds=300)
    began = time.perf_counter()
    report = ingest([slow], settings, embedder=FakeEmbeddings(), cancel=cancel)
    assert "cancelled" in report.failed[0].reason
    assert time.perf_counter() - began < 60  # stopped, not read to the end


def test_an_unforeseen_failure_in_one_file_is_its_reason(tmp_path, monkeypatch):
    import ingest.pipeline as pipeline

    def broken(doc, size, overlap):
        raise RuntimeError("boom")

    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    monkeypatch.setattr(pipeline, "chunk_document", broken)
    ((_, failed),) = read_files([tmp_path / "a.txt"], Settings(home=tmp_path / "home"))
    assert isinstance(failed, FileOutcome) and failed.reason == "a.txt: cannot read this file (RuntimeError)"


@pytest.mark.slow
def test_the_cli_is_quiet_about_pypdf_safe_in_a_terminal_and_on_a_closed_pipe(tmp_path, model_cache):
    import os
    import re
    import subprocess
    import sys

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "escapes.txt").write_text(
        "审批访谈\n局长：审批时限压缩到5个工作日以内\x1b]0;pwned\x07\x1b[2J。我们取消了纸质申报材料。\n",
        encoding="utf-8",
    )
    warned = re.sub(rb"startxref\n\d+", b"startxref\n999999", _pdf("Approval within five working days."))
    (folder / "warned.pdf").write_bytes(warned)  # readable, but pypdf complains about it
    home = tmp_path / "home"
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache)}
    cli = [sys.executable, "-m", "ui.cli"]
    ingested = subprocess.run([*cli, "ingest", str(folder)], env=env, capture_output=True, text=True, timeout=300)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert "2 read" in ingested.stdout
    assert "startxref" not in ingested.stderr + ingested.stdout and "pypdf" not in ingested.stderr.lower()
    assert "startxref" in (home / "rag.log").read_text(encoding="utf-8")  # the log has it

    question = "审批时限压缩到几个工作日？"
    asked = subprocess.run([*cli, "ask", question], env=env, capture_output=True, text=True, timeout=300)
    assert "5个工作日" in asked.stdout
    assert "\x1b" not in asked.stdout and "\x07" not in asked.stdout and "\\x1b]0;" in asked.stdout

    closed = subprocess.Popen([*cli, "ask", question], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    closed.stdout.close()  # the reader is gone before anything is written (as with `| head -1`)
    err = closed.stderr.read().decode()
    closed.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
