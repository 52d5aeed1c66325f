"""Reading a .docx or .pdf under a budget: in a worker process, within a time limit, cancellable.

python-docx and pypdf can spend minutes and gigabytes on one crafted file (XML that unpacks
to a hundred megabytes, a stream that inflates without end), and a Python thread cannot be
stopped from outside.  So these two formats are read in a worker process that is killed
when a file takes longer than ``RAG_PARSE_SECONDS`` or when the user cancels; plain text is
read in-process (its cost is bounded by the file size).

The worker is ``python -m ingest.budget`` speaking pickles over its stdin and stdout, written
here by hand: multiprocessing-based pools (pebble, ProcessPoolExecutor) either fork -- unsafe
in the answering process, whose threads (Gradio, torch) hold locks a child would inherit --
or spawn, which imports the caller's main module again in the child, so a user's script
calling ``ingest()`` without an ``if __name__ == "__main__"`` guard would run itself twice.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from ingest.formats import Collected
from ingest.messages import receive, send
from ingest.parse import parse_file
from ingest.scans import IMAGE_SUFFIXES, PageProgress
from rag.config import Settings
from rag.errors import ParseError
from rag.types import ParsedDocument

log = logging.getLogger(__name__)

WORKER_SUFFIXES = (".docx", ".pdf", ".html", ".htm", *IMAGE_SUFFIXES)
_POLL_SECONDS = 0.2
_PAGE = "page"  # a worker's message between request and reply: (_PAGE, pages done, pages in all)


def _parse_in_worker(
    path: str, max_bytes: int, max_unpacked: int, on_page: PageProgress | None = None
) -> tuple[ParsedDocument | str, list[str]]:
    """Run in the worker: the document or the one-line reason it cannot be read, and the lines it logged."""
    kept = Collected(logging.INFO)
    logging.getLogger("ingest").addHandler(kept)
    logging.getLogger("ingest").setLevel(logging.INFO)
    try:
        return parse_file(Path(path), max_bytes=max_bytes, max_unpacked=max_unpacked, on_page=on_page), kept.messages
    except ParseError as e:
        return str(e), kept.messages
    except Exception as e:  # any failure of one file is that file's reason, never the run's end
        return f"{Path(path).name}: cannot read this file ({e.__class__.__name__})", kept.messages
    finally:
        logging.getLogger("ingest").removeHandler(kept)


class _Worker:
    """One worker process and a thread that hands its replies over."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest.budget"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # what the readers say is returned and logged, never printed
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while (reply := receive(self.process.stdout)) is not None:
            self.replies.put(reply)
        self.replies.put(None)  # the worker ended

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def read_document(
    path: Path, settings: Settings, cancel: threading.Event | None = None, on_page: PageProgress | None = None
) -> ParsedDocument:
    """Parse one file within the settings' budget; raises ParseError with a one-line reason.

    ``cancel`` (set from another thread) stops a file that is still being read in the worker;
    ``on_page`` hears of each page of a scan read by OCR, and each page has the whole budget.
    """
    max_bytes, max_unpacked = settings.max_file_mb * 2**20, settings.max_unpacked_mb * 2**20
    if Path(path).suffix.lower() not in WORKER_SUFFIXES:
        return parse_file(path, max_bytes=max_bytes, max_unpacked=max_unpacked)
    with _worker_lock:
        result, logged = _ask_worker(str(path), (max_bytes, max_unpacked), settings.parse_seconds, cancel, on_page)
    for line in logged:  # what the reader logged in the worker, into this process's log
        log.info("%s", line)
    if isinstance(result, str):
        raise ParseError(result)
    return result


def _ask_worker(
    path: str, limits: tuple[int, int], seconds: int, cancel: threading.Event | None, on_page: PageProgress | None
):
    """The worker's reply for ``path``; a worker that overruns or is cancelled is killed (a new one next time)."""
    global _worker
    name = Path(path).name
    if _worker is None or _worker.process.poll() is not None:
        _worker = _Worker()
    try:
        send(_worker.process.stdin, (path, *limits))
    except OSError as e:
        _worker = None
        raise ParseError(f"{name}: the reader could not be started ({e.__class__.__name__})") from e
    deadline = time.monotonic() + seconds
    while True:
        try:
            reply = _worker.replies.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            reply = False
        if reply is None:  # the worker died (out of memory, killed from outside)
            _worker = None
            raise ParseError(f"{name}: the reader stopped while reading this file")
        if isinstance(reply, tuple) and len(reply) == 3 and reply[0] == _PAGE:
            deadline = time.monotonic() + seconds  # a scan's budget is per page
            if on_page:
                on_page(reply[1], reply[2])
            continue
        if reply is not False:
            return reply
        if cancel is not None and cancel.is_set():
            _worker.kill()
            _worker = None
            raise ParseError(f"{name}: cancelled while it was being read")
        if time.monotonic() > deadline:
            _worker.kill()
            _worker = None
            log.info("%s: reading stopped after %d s", name, seconds)
            raise ParseError(
                f"{name}: reading it took longer than {seconds} s (RAG_PARSE_SECONDS); "
                "refused as a possible decompression bomb"
            )


def _serve() -> None:
    """The worker's loop: (path, max_bytes, max_unpacked) in, (document or reason, logged lines) out."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library that prints must not corrupt the replies
    while (request := receive(stdin)) is not None:
        send(stdout, _parse_in_worker(*request, on_page=lambda done, total: send(stdout, (_PAGE, done, total))))


if __name__ == "__main__":
    _serve()
