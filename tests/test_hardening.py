"""Hardening, third round: each case failed before its fix (ports, passwords, zip parts, names, bodies, modes)."""

from __future__ import annotations

import socket

from tests.conftest import free_port


def _time_wait(port: int) -> None:
    """Leave ``port`` with a connection in TIME_WAIT on the server's side, its listener gone (as after a kill)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: its side waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()


def test_a_port_in_time_wait_is_free_and_a_listening_one_is_not():
    from ui.launch import _port_free, _start_checks

    port = free_port()
    _time_wait(port)
    assert _port_free("127.0.0.1", port)
    assert _start_checks("127.0.0.1", port, None) is None
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert "in use" in _start_checks("127.0.0.1", port, None)


def test_a_short_login_password_is_refused():
    from ui.launch import _start_checks

    assert "at least 8 characters" in _start_checks("0.0.0.0", 0, "admin:x")
    assert "at least 8 characters" in _start_checks("0.0.0.0", 0, "admin:1234567")
    assert _start_checks("0.0.0.0", 0, "admin:12345678") is None


def test_every_part_of_a_docx_counts_toward_the_unpacked_limit(tmp_path):
    """The main document renamed (not *.xml) by [Content_Types].xml is counted as well."""
    import zipfile

    import pytest

    from ingest.formats import docx_text
    from rag.errors import ParseError

    path = tmp_path / "bomb.docx"
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Override PartName="/word/body.dat" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/></Types>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("word/body.dat", "<w:p/>" * (3 * 2**20))  # 18 MB unpacked, a few KB packed
    assert path.stat().st_size < 200_000
    with pytest.raises(ParseError, match="unpacks to 18 MB, over the 16 MB limit"):
        docx_text(path, max_unpacked=16 * 2**20)


def test_rag_home_and_the_store_are_readable_by_their_owner_only(tmp_path, caplog):
    """A new home is 0700 and the store's files 0600; an older, open home is tightened, with a log line."""
    import os
    import stat

    from ingest.storage import record_manager
    from rag.config import Settings
    from rag.store import chroma_client

    def mode(path) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    fresh = Settings(home=tmp_path / "fresh")
    chroma_client(fresh)
    record_manager(fresh)
    assert mode(fresh.home) == 0o700
    files = [p for p in fresh.home.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"chroma.sqlite3", "records.sqlite"}
    assert {oct(mode(p)) for p in files} == {"0o600"}

    old = Settings(home=tmp_path / "old")
    old.home.mkdir()
    (old.home / "records.sqlite").write_text("")
    os.chmod(old.home / "records.sqlite", 0o644)
    os.chmod(old.home, 0o755)
    with caplog.at_level("WARNING"):
        record_manager(old)
    assert mode(old.home) == 0o700 and mode(old.home / "records.sqlite") == 0o600
    assert "open to other users" in caplog.text


def _serve(app):
    """``app`` on a real uvicorn in a thread (a body can then be sent in chunks); its port."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


def _chunked(port: int, path: str, key: str | None, chunks: int, size: int = 64 * 1024) -> tuple[int, int]:
    """POST a chunked body (no Content-Length) chunk by chunk until the server answers: (status, chunks sent)."""
    import select

    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    sock.sendall((head + (f"Authorization: Bearer {key}\r\n" if key else "") + "\r\n").encode())
    sent = 0
    try:
        while sent < chunks and not select.select([sock], [], [], 0.02)[0]:  # until answered
            sock.sendall(f"{size:x}\r\n".encode() + b" " * size + b"\r\n")
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = sock.recv(4096).decode("latin-1")
    sock.close()
    return int(data.split()[1]), sent


def test_the_key_is_checked_before_the_body_and_a_chunked_body_is_counted(tmp_path):
    """No key: 401 before the body (a few chunks of 64 MB sent, not all); with the key, a chunked
    body past the cap is refused with 413 once past it, not read to its end."""
    from rag.config import Settings
    from tests.conftest import FakeAssistant, FakeCollection
    from ui.api import MAX_JSON_BYTES, create_api

    app = create_api(FakeAssistant(Settings(home=tmp_path)), FakeCollection(), loopback=False, keys=("k-12345678",))
    server, port = _serve(app)
    try:
        status, sent = _chunked(port, "/v1/answers", None, chunks=1024)
        assert status == 401 and sent < 64, sent
        status, sent = _chunked(port, "/v1/answers", "k-12345678", chunks=1024)
        assert status == 413 and sent * 64 * 1024 < MAX_JSON_BYTES + 40 * 64 * 1024, sent
        status, _ = _chunked(port, "/mcp", None, chunks=1024)
        assert status == 401
    finally:
        server.should_exit = True


def test_request_errors_are_400s_that_leave_nothing_behind(tmp_path, fake_embedder):
    """A name with NUL, a name of 80 four-byte characters beside a good file, content parts whose text
    is not a string, an unknown /v1 route: 4xx with one line, the good file indexed, no empty folder."""
    from fastapi.testclient import TestClient

    from rag.config import Settings
    from tests.conftest import FakeAssistant
    from ui.api import create_api
    from ui.collection import Collection

    settings = Settings(home=tmp_path / "home")
    http = TestClient(create_api(FakeAssistant(settings), Collection(settings, fake_embedder), loopback=True))
    good = "局长谈教育\n记者：何时开学？\n局长：九月一日开学。".encode()
    long_name = "𠀀" * 80 + ".txt"
    sent = [("files", ("a.tx\x00t", b"x", "text/plain")), ("files", (long_name, good, "text/plain"))]
    sent.append(("files", ("good.txt", good + "另一句。".encode(), "text/plain")))
    reply = http.post("/v1/documents", files=sent)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "good.txt" in body["indexed"] and len(body["indexed"]) == 2 and len(body["refused"]) == 1
    assert "unsupported file type" in body["refused"][0]
    folders = [p for p in (settings.home / "uploads").iterdir()]
    assert all(any(f.iterdir()) for f in folders) and len(folders) == 2
    for text in (3, None, ["a"]):
        parts = [{"type": "text", "text": text}]
        reply = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}]})
        assert reply.status_code == 400 and "text content part" in reply.json()["error"]["message"]
    reply = http.get("/v1/nothing-here")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "unknown_url"


def test_small_messages_say_what_is_so():
    """One byte over the limit reads as over; a filter on a collection with no interviewees says so."""
    import pytest

    from ingest.parse import over_limit
    from rag.assistant import _matching
    from rag.errors import UnknownFilterError

    said = over_limit(20 * 2**20 + 1, 20 * 2**20)
    assert said == "20,971,521 bytes (20.0 MB) is over the limit of 20,971,520 bytes (20 MB)"
    with pytest.raises(UnknownFilterError, match="it holds no interviewee yet$"):
        _matching(["于晓峰"], set(), lambda name, value: name in value, "interviewee")


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler sees it (what is on disk stays as it is)."""


def _kill_at_write(monkeypatch, writes_before: int) -> None:
    """The process "dies" at Chroma write number ``writes_before`` + 1 (batches of 20 chunks)."""
    from langchain_chroma import Chroma

    import ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "max_batch", lambda client: 20)
    real, calls = Chroma.add_documents, []

    def add_documents(self, documents, **kwargs):
        calls.append(len(documents))
        if len(calls) > writes_before:
            raise _Killed
        return real(self, documents, **kwargs)

    monkeypatch.setattr(Chroma, "add_documents", add_documents)


def test_a_document_cut_short_is_never_seen_half_and_the_next_run_completes_it(tmp_path, fake_embedder, monkeypatch):
    """An upload stopped after its first batch (or before any): not listed, not answered from, not
    in any filter; the next run (``rag ingest``, or ``rag ui`` starting) puts it in whole."""
    import pytest

    from ingest.collection import ensure_index, list_documents
    from ingest.pipeline import ingest
    from rag.config import Settings
    from rag.home import pending_sources
    from rag.retrieval import HybridRetriever
    from ui.collection import Collection

    settings = Settings(home=tmp_path / "home")
    ingest(None, settings, embedder=fake_embedder)
    big = tmp_path / "long.txt"
    lines = [f"第{i}段：量子实验室第{i}号装置于{i}月投入使用，编号QX{i:04d}。" for i in range(300)]
    big.write_text("量子实验室访谈\n" + "\n".join(lines), encoding="utf-8")
    for writes_before in (1, 0):  # stopped after the first batch; stopped before any
        with monkeypatch.context() as patch:
            _kill_at_write(patch, writes_before)
            with pytest.raises(_Killed):
                Collection(settings, fake_embedder).add_files([(big, "long.txt")])
        (stored,) = pending_sources(settings.home)
        assert "uploads" in stored
        assert [d["title"] for d in list_documents(settings)] == ["领导干部访谈材料汇编（5篇）"]
        retriever = HybridRetriever(settings, fake_embedder)
        assert all(h.chunk.source != stored for h in retriever.retrieve("量子实验室 QX0001 装置", k=10))
        assert stored not in retriever.known()[0]
        report = ensure_index(settings, fake_embedder)  # what rag ui does when it starts
        assert [(f.path, f.status) for f in report.files] == [(stored, "indexed")] and report.added > 0
        assert pending_sources(settings.home) == frozenset()
        listed = {d["title"]: d["chunks"] for d in list_documents(settings)}
        assert listed["量子实验室访谈"] == report.added
        hits = HybridRetriever(settings, fake_embedder).retrieve("量子实验室 QX0001 装置", k=10)
        assert any(h.chunk.source == stored for h in hits)
        Collection(settings, fake_embedder).remove([stored])


def test_an_upload_whose_copy_was_cut_short_is_let_go(tmp_path, fake_embedder):
    from ingest.collection import list_documents
    from ingest.pipeline import ingest
    from rag.config import Settings
    from rag.home import begin_pending, pending_sources

    settings = Settings(home=tmp_path / "home")
    folder = settings.home / "uploads" / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / ".gone.txt.999.partial").write_bytes(b"half")
    begin_pending(settings.home, str((folder / "gone.txt").resolve()))
    report = ingest([], settings, embedder=fake_embedder)
    assert report.files == [] and pending_sources(settings.home) == frozenset()
    assert not folder.exists() and list_documents(settings) == []


def test_the_assistant_cache_keeps_no_secret_and_one_model(monkeypatch, tmp_path):
    import rag
    from rag.config import Settings

    base = Settings(home=tmp_path, ui_auth="admin:secret-password", api_keys=("k-12345678",), llm_api_key="sk-abc")
    key = rag.answering_key(base)
    assert not any(secret in str(key) for secret in ("secret-password", "k-12345678", "sk-abc"))
    assert key == rag.answering_key(Settings(home=tmp_path, llm_api_key="sk-abc"))  # the page's login is not answering
    assert key != rag.answering_key(Settings(home=tmp_path, llm_api_key="sk-other"))
    monkeypatch.setenv("RAG_HOME", str(tmp_path))
    monkeypatch.setenv("RAG_UI_AUTH", "admin:secret-password")
    first = rag.default_assistant()
    monkeypatch.setenv("RAG_UI_AUTH", "admin:another-password")
    assert rag.default_assistant() is first
    monkeypatch.setenv("RAG_TOP_K", "7")
    second = rag.default_assistant()
    assert second is not first and second.embedder is first.embedder  # one model, not a second


def test_server_side_faults_are_503_and_a_blank_model_name_one_line(tmp_path):
    import subprocess
    import sys

    import pytest
    from fastapi.testclient import TestClient

    from rag.config import Settings
    from rag.errors import ConfigError, ModelError, StoreUnavailable
    from tests.conftest import FakeAssistant, FakeCollection
    from ui.api import create_api

    class Failing(FakeAssistant):
        def ask(self, *args, **kwargs):
            raise self.error

    assistant = Failing(Settings(home=tmp_path))
    http = TestClient(create_api(assistant, FakeCollection(), loopback=True))
    for error in (ModelError("cannot load embedding model"), StoreUnavailable("cannot reach the Chroma server")):
        assistant.error = error
        reply = http.post("/v1/answers", json={"question": "q"})
        assert reply.status_code == 503 and reply.json()["error"]["message"] == str(error)
    with pytest.raises(ConfigError, match="RAG_EMBED_MODEL is empty"):
        Settings(embed_model="  ")
    env = {"RAG_EMBED_MODEL": "  ", "RAG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "ui.cli", "ask", "问题"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "RAG_EMBED_MODEL is empty" in done.stderr and "Traceback" not in done.stderr
