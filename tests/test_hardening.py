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

    from rag.config import Settings
    from rag.store import chroma_client, record_manager

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
