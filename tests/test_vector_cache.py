"""The packed vector cache: a bounded number of files, exact vectors, batches whole or not at all."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from rag.store import cached_embedder
from rag.vector_cache import SqliteByteStore, packed, unpacked
from tests.conftest import HashEmbedder, cached_vectors

BATCH = 200


def test_the_cache_is_a_few_files_whatever_the_number_of_vectors(settings):
    fake_embedder = HashEmbedder(dim=384)  # the bundled model's size
    cached = cached_embedder(settings, fake_embedder)
    texts = [f"第{i}段：开发区的企业有{i}家。" for i in range(5000)]
    first = cached.embed_documents(texts)
    assert fake_embedder.calls == [5000]
    again = cached_embedder(settings, fake_embedder).embed_documents(texts)  # a new process's worth
    assert again == first and fake_embedder.calls == [5000]  # read back, the same vectors, none made again
    files = [p for p in (settings.home / "cache").rglob("*") if p.is_file()]
    assert len(files) <= 3, files  # the database and SQLite's journal files
    assert cached_vectors(settings.home) == 5000
    size = sum(p.stat().st_size for p in files)
    assert size / 5000 < 2048  # float32 (1,536 bytes) and its key; as JSON, one file each, 8.4 KB


def test_vectors_come_back_exactly():
    rng = np.random.default_rng(0)
    vector = rng.standard_normal(384).astype(np.float32).tolist()
    assert unpacked(packed(vector)) == vector


def test_a_batch_cut_short_leaves_the_batches_before_it(tmp_path):
    store = SqliteByteStore(tmp_path / "v.sqlite")
    store.mset([(f"a{i}", b"x") for i in range(10)])

    class Cut(list):
        def __iter__(self):
            yield ("b0", b"y")
            raise KeyboardInterrupt  # as a kill would stop it, mid-batch

    with pytest.raises(KeyboardInterrupt):
        store.mset(Cut())
    assert len(store) == 10 and store.mget(["a0", "b0"]) == [b"x", None]
    store.mset([("b0", b"y")])  # and the store takes writes again
    assert store.mget(["b0"]) == [b"y"]


WRITER = f"""
import sys
from rag.vector_cache import SqliteByteStore
store = SqliteByteStore(sys.argv[1])
n = 0
print("ready", flush=True)
while True:
    store.mset([(f"k{{n + i}}", bytes(1536)) for i in range({BATCH})])
    n += {BATCH}
"""


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_a_killed_writer_loses_at_most_the_batch_it_was_writing(tmp_path, delay):
    path = tmp_path / "v.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SqliteByteStore(path)
    held = len(store)
    assert held > 0 and held % BATCH == 0  # whole batches only
    assert store.mget([f"k{held - 1}", f"k{held}"]) == [bytes(1536), None]
    store.mset([("after", b"z")])  # the next run writes on
    assert len(store) == held + 1


def test_a_best_effort_cache_that_cannot_write_only_logs(tmp_path, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = SqliteByteStore(folder / "v.sqlite", best_effort=True)
    store.mset([("a", b"x")])
    store._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk
    store.mset([("b", b"y")])
    assert "not written" in caplog.text and store.mget(["a", "b"]) == [b"x", None]
    strict = SqliteByteStore(folder / "v.sqlite")
    strict.mset([("c", b"z")])
    strict._db.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.Error):
        strict.mset([("d", b"w")])


def test_a_best_effort_cache_that_cannot_be_opened_reads_as_empty(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    store = SqliteByteStore(blocker / "v.sqlite", best_effort=True)  # cannot be made
    assert store.mget(["a", "b"]) == [None, None] and "not read" in caplog.text
    store.mset([("a", b"x")])  # nor written: logged, not raised
    with pytest.raises((sqlite3.Error, OSError)):
        SqliteByteStore(blocker / "v.sqlite").mget(["a"])
