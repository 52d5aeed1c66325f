"""Tokenising a run's new chunks for BM25, in a process beside the one that writes them.

jieba is pure Python and holds the GIL: in the writing process it took a quarter of a run's time
(and a thread of its own overlapped nothing -- measured).  A large run hands each file's new
chunks to ``python -m ingest.tokens`` and writes the next file while they are tokenised there;
a small one (the bundled collection, a few uploads) tokenises here, where a worker's start
(about a second, jieba's dictionary loaded again) would cost more than it saves.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Callable

from ingest.messages import receive, send
from rag.text import tokenize

log = logging.getLogger(__name__)

APART_BYTES = 2 << 20  # a run reading this much or more tokenises in a worker (about 3,600 chunks)


def tokenize_all(texts: list[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


class Tokenizer:
    """Texts in, their tokens out later: ``submit`` returns a function that waits for them.

    One request at a time is outstanding (the caller takes each result before the next
    ``submit``).  A worker that fails or dies is not fatal: the texts are tokenised here.
    """

    def __init__(self, apart: bool) -> None:
        self.apart = apart
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()

    def submit(self, texts: list[str]) -> Callable[[], list[list[str]]]:
        if not texts or not self.apart or not self._start():
            return lambda: tokenize_all(texts)
        try:
            send(self._process.stdin, texts)
        except OSError:
            self._stop("could not be written to")
            return lambda: tokenize_all(texts)

        def result() -> list[list[str]]:
            reply = self._replies.get()
            if reply is None or len(reply) != len(texts):
                self._stop("ended without a reply")
                return tokenize_all(texts)
            return reply

        return result

    def _start(self) -> bool:
        if self._process is None:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "ingest.tokens"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as e:
                log.warning("tokenising in this process: no worker could be started (%s)", e)
                self.apart = False
                return False
            # Replies are read as they come, so the worker never waits on a full pipe while
            # this process is busy writing the next file.
            threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        return True

    def _read(self, stdout) -> None:
        try:
            while (reply := receive(stdout)) is not None:
                self._replies.put(reply)
        except (OSError, ValueError, EOFError):  # the pipe closed under a partial message
            pass
        self._replies.put(None)

    def _stop(self, why: str) -> None:
        log.warning("the tokenising worker %s; tokenising in this process", why)
        self.close()
        self.apart = False

    def close(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            try:
                process.stdin.close()
            except OSError:
                pass
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve() -> None:
    """The worker's loop: a list of texts in, their token lists out."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library that prints must not corrupt the replies
    while (texts := receive(stdin)) is not None:
        send(stdout, tokenize_all(texts))


if __name__ == "__main__":
    _serve()
