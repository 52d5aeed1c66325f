"""A running ``rag serve`` / ``rag ui`` of a RAG_HOME, so that ``rag ask`` can answer through it.

The server writes ``RAG_HOME/server.json`` (its address and process id) when it starts and removes
it when it stops; ``rag ask`` finds it there and posts the question to ``/v1/answers``: the model
is loaded already, and the command imports nothing heavier than the standard library's HTTP client.
A record whose process is gone, or a server that does not answer, is passed over: ``rag ask``
then answers by itself.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

RECORD = "server.json"


def announce(home: Path, host: str, port: int) -> Path | None:
    """Record this process as the server of ``home``; the record's path (for ``forget``), or None
    when ``home`` cannot be written (a read-only home serves all the same)."""
    near = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    path = home / RECORD
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps({"url": f"http://{near}:{port}", "pid": os.getpid()}), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        return None
    return path


def forget(path: Path | None) -> None:
    """Remove the record if it is still this process's."""
    if path is None:
        return
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def server_of(home: Path) -> str | None:
    """The address of the server of ``home`` whose process is alive, or None."""
    try:
        record = json.loads((home / RECORD).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
        return str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Refused(Exception):
    """The server answered with an error (an unknown interviewee...): its message."""


def ask_server(url: str, payload: dict, key: str | None = None, timeout: float = 120) -> dict | None:
    """The server's answer to ``payload`` (``/v1/answers``), None when it cannot be reached."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"{url}/v1/answers", data=json.dumps(payload).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read().decode("utf-8"))["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return None
        if e.code in (401, 403):
            return None  # not ours to use: answer locally
        raise Refused(message) from e
    except (urllib.error.URLError, OSError, ValueError):
        return None
