"""What only ingestion does to the store: LangChain's record manager, the write lock, pruning the
vector cache, and a full disk named as such."""

from __future__ import annotations

import contextlib
import errno
import re
import shutil
from pathlib import Path

from rag.config import Settings
from rag.errors import IndexBusyError, RagError, StorageFullError
from rag.home import private_home, tighten


def prune_cache(cached, live_texts: list[str]) -> int:
    """Delete the cached vectors (and any leftover temporary file) of texts not in ``live_texts``."""
    keyed = cached.document_embedding_store
    live = {keyed.key_encoder(text) for text in live_texts}
    stale = [key for key in keyed.store.yield_keys() if key not in live]
    keyed.store.mdelete(stale)
    return len(stale)


def record_manager(settings: Settings):
    """The SQL record manager LangChain's ``index()`` keeps its bookkeeping in."""
    from langchain_classic.indexes import SQLRecordManager

    private_home(settings.home)
    manager = SQLRecordManager(
        namespace=f"chroma/{settings.collection_name}",
        db_url=f"sqlite:///{settings.home / 'records.sqlite'}",
    )
    manager.create_schema()
    with contextlib.suppress(OSError):
        tighten(settings.home, recurse=False)  # records.sqlite, made with the process's umask
    return manager


@contextlib.contextmanager
def ingest_lock(settings: Settings):
    """Hold the index's write lock; a second writer gets IndexBusyError at once.

    ``filelock`` takes an OS lock (``fcntl`` on POSIX, ``msvcrt`` on Windows) that the system
    releases when the holder dies, so a killed run never leaves the index locked.
    """
    from filelock import FileLock, Timeout

    private_home(settings.home)
    lock = FileLock(settings.home / "ingest.lock", timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout as e:
        raise IndexBusyError(
            f"another ingestion is writing to {settings.home}; wait for it to finish and run again"
        ) from e
    try:
        yield
    finally:
        lock.release()


LOW_SPACE_BYTES = 2**20
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_MESSAGE = re.compile(r"disk is full|no space left|quota exceeded", re.I)


def is_storage_full(error: BaseException, home: Path) -> bool:
    """Whether ``error`` comes from a full disk: by errno, by message (SQLite's and Chroma's
    say "database or disk is full"), or, for errors that name neither (Chroma's "Error in
    compaction"), by the space left where the index lives."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _FULL_ERRNOS:
            return True
        if _FULL_MESSAGE.search(str(cause)):
            return True
        cause = cause.__cause__ or cause.__context__
    try:
        return shutil.disk_usage(home).free < LOW_SPACE_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def storage_errors(settings: Settings):
    """Turn a full disk met while writing the index into one ``StorageFullError``."""
    try:
        yield
    except RagError:
        raise
    except Exception as e:
        if is_storage_full(e, settings.home):
            raise StorageFullError(
                f"no space left on the disk holding {settings.home}; free some space and run the "
                "ingestion again (it completes this one: nothing is lost or doubled)"
            ) from e
        raise
