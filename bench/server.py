"""Start a server process on a free loopback port and wait until it answers: shared by the
benchmarks, the load script and the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server exited, or did not answer in time; the message ends with what it printed last."""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(
    proc: subprocess.Popen,
    url: str | None = None,
    port: int | None = None,
    timeout: float = 120,
    log: Path | None = None,
) -> None:
    """Wait until ``url`` answers (or ``port`` accepts); raise ``ServerFailed`` if the process dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if url:
                urllib.request.urlopen(url, timeout=2)
            else:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                said = log.read_text(errors="replace")[-2000:] if log and log.exists() else f"exit {proc.returncode}"
                raise ServerFailed(f"the server exited: {said}") from None
            time.sleep(0.3)
    proc.kill()
    raise ServerFailed(f"the server did not start within {timeout:.0f} s")


def start_page(timeout: float = 600, env: dict | None = None, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``python -m ui`` (the chat page) on a free loopback port; it indexes the bundled collection if needed."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 -- the child holds it
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui", "--port", str(port)],
        env={**os.environ, **(env or {}), "HF_HUB_OFFLINE": "1"},
        stdout=out,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_until_up(proc, url=url, timeout=timeout, log=log)
    return proc, url


def start_api(timeout: float = 600, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``rag serve`` (the API alone) on a free loopback port; it indexes the bundled collection if needed."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "serve", "--port", str(port)],
        env={**os.environ, **(env or {}), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_until_up(proc, url=url + "healthz", timeout=timeout)
    return proc, url
