"""The vector cache: every chunk and sentence vector made, kept by its text's hash in one SQLite
file per kind and model -- float32 blobs (1.5 KB a vector for the bundled model), written a
batch per transaction.

LangChain's ``LocalFileStore`` kept one JSON file per vector (8.4 KB each; a million files at a
million chunks).  langchain-community's ``SQLStore`` would do, but that package is not otherwise
needed and its store takes no "best effort" mode (the answerer's sentence cache must not stop
answers on a full disk); this is the few lines it takes with the standard library's sqlite3.
A transaction cut short (a kill, a full disk) leaves the file as it was before it: the next
run embeds that batch again.  A cache of the older layout (a folder of JSON files) is moved in
once, then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from langchain_core.stores import ByteStore

log = logging.getLogger(__name__)

BATCH = 500  # keys per SELECT or DELETE: within SQLite's limit on parameters


class SqliteByteStore(ByteStore):
    """Bytes by key in one SQLite table (a ``ByteStore``, as LangChain's stores are)."""

    def __init__(self, path: Path, best_effort: bool = False) -> None:
        self.path = Path(path)
        self.best_effort = best_effort
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, shared by the threads answering

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # the WAL and shared-memory files take the same mode
            # Pages of 16 KB hold nine vectors each: 1.74 KB a vector, key and index included (in
            # 4 KB pages 2.2 KB; without a rowid, each 1.5 KB blob would spill to a page of its own:
            # 4.7 KB).  Set before the table exists: a file made already keeps its size.
            db.execute("PRAGMA page_size = 16384")
            db.execute("PRAGMA journal_mode=WAL")  # readers in other processes go on while one writes
            db.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last batches, never tear one
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db = db
        return self._db

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        try:
            with self._lock:
                db = self._connection()
                for i in range(0, len(keys), BATCH):
                    part = list(keys[i : i + BATCH])
                    marks = ",".join("?" * len(part))
                    found.update(db.execute(f"SELECT key, value FROM vectors WHERE key IN ({marks})", part))
        except (sqlite3.Error, OSError) as e:  # a cache that cannot even be made (a full disk)
            if not self.best_effort:
                raise
            log.warning("vector cache not read (%s); the vectors are made instead", e)
        return [found.get(k) for k in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        try:
            with self._lock:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", list(key_value_pairs))
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as e:
            if not self.best_effort:
                raise
            log.warning("vector cache not written (%s); answering goes on", e)

    def mdelete(self, keys: Sequence[str]) -> None:
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in keys])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        with self._lock:
            keys = [k for (k,) in self._connection().execute("SELECT key FROM vectors ORDER BY key")]
        yield from (k for k in keys if prefix is None or k.startswith(prefix))

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT count(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def packed(vector: Sequence[float]) -> bytes:
    """A vector as float32 bytes (the embedders' own precision: read back, it is the same vector)."""
    return np.asarray(vector, dtype=np.float32).tobytes()


def unpacked(value: bytes) -> list[float]:
    return np.frombuffer(value, dtype=np.float32).tolist()


def key_encoder(namespace: str):
    """The key of a text: the model's name and the text's SHA-256 (as LangChain's cache names it,
    so the older layout's entries keep their keys)."""

    def encode(text: str) -> str:
        return f"{namespace}{hashlib.sha256(text.encode('utf-8')).hexdigest()}"

    return encode


def move_in(old: Path, store: SqliteByteStore) -> int:
    """The older layout's folder of JSON files moved into ``store`` (an entry that does not parse,
    torn by a crash, is left out and embedded again when needed), then removed; how many moved."""
    moved, batch = 0, []
    for path in sorted(p for p in old.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
        try:
            batch.append((path.relative_to(old).as_posix(), packed(json.loads(path.read_bytes()))))
        except (OSError, ValueError, TypeError):
            continue
        if len(batch) >= 1000:
            store.mset(batch)
            moved, batch = moved + len(batch), []
    store.mset(batch)
    shutil.rmtree(old, ignore_errors=True)
    return moved + len(batch)
