"""Shared fixtures: a fresh RAG_HOME per test, the converted model shared by the session, fakes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from bench.server import free_port  # noqa: F401 -- re-exported for the tests
from rag.answering import AnswerStream
from rag.config import Settings
from rag.types import Answer, Citation

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "ingest" / "data" / "leader_interviews.txt"
SEED_DEV = Path(__file__).parent / "data" / "seed_dev.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """For pytest-xdist's ``--dist loadgroup``: a test using a fixture made once per module runs in
    the worker that made it (one group per module), the page tests in the one running their
    ``rag ui`` (``server``); every other test goes to whichever worker is free."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        scopes = {name: defs[-1].scope for name, defs in (info.name2fixturedefs.items() if info else ()) if defs}
        if "server" in scopes:
            item.add_marker(pytest.mark.xdist_group("page-server"))
        elif "module" in scopes.values():
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def load_seed_questions() -> list[dict]:
    return [json.loads(line) for line in SEED_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory, worker_id) -> Path:
    """Where the bundled model is converted once for the whole test session, shared by the
    session's pytest-xdist workers (the folder beside their own temporary folders).

    ``RAG_TEST_MODEL_CACHE`` reuses a folder across sessions (a developer's speed-up).
    """
    reuse = os.environ.get("RAG_TEST_MODEL_CACHE")
    if reuse:
        return Path(reuse)
    if worker_id == "master":  # not run by xdist
        return tmp_path_factory.mktemp("models")
    shared = tmp_path_factory.getbasetemp().parent / "models"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def e5(model_cache):
    """The bundled embedding model, loaded once for the whole session (the first worker to come
    converts it, the others wait and load what it wrote)."""
    from filelock import FileLock

    from rag.embeddings import load_embedder

    with FileLock(model_cache / "convert.lock"):
        embedder = load_embedder(Settings(home=model_cache.parent / "unused", model_cache=model_cache))
        embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def e5_once(e5):
    """The bundled model remembering what it embedded (``Remembering``), for the tests that
    ingest the same files into many homes."""
    return Remembering(e5)


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, model_cache, e5) -> Path:
    """A RAG_HOME holding the bundled collection, indexed once for the session with the real
    model.  Read it, or copy it (``bundled_home``, ``copy_index``) before writing to it."""
    from ingest.pipeline import ingest

    home = tmp_path_factory.mktemp("bundled") / "home"
    ingest(None, Settings(home=home, model_cache=model_cache), embedder=e5)
    return home


def copy_index(index: Path, target: Path) -> Path:
    """``index`` (a RAG_HOME) copied to ``target``: a home of its own to write to."""
    shutil.copytree(index, target, dirs_exist_ok=True)
    return target


@pytest.fixture
def bundled_home(bundled_index, rag_home) -> Path:
    """This test's RAG_HOME, holding the bundled collection indexed (a copy of the session's)."""
    return copy_index(bundled_index, rag_home)


def split_corpus(folder: Path) -> None:
    """The bundled collection's five articles as five files (a run can then stop between files)."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    starts = [2, 8, 26, 33, 40]
    for i, (a, b) in enumerate(zip(starts, [*starts[1:], len(lines)])):
        (folder / f"article{i + 1}.txt").write_text("\n".join(lines[a:b]), encoding="utf-8")


@pytest.fixture(autouse=True)
def rag_home(tmp_path, monkeypatch, model_cache) -> Path:
    """Every test gets an empty RAG_HOME; no test touches the user's index."""
    home = tmp_path / "rag-home"
    for key in list(os.environ):
        if key.startswith("RAG_") and key != "RAG_TEST_MODEL_CACHE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.setenv("RAG_MODEL_CACHE", str(model_cache))
    return home


@pytest.fixture
def settings(rag_home) -> Settings:
    return Settings.from_env()


class HashEmbedder(Embeddings):
    """Deterministic vectors from a hash of the text's character bigrams (similar texts, similar vectors)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls: list[int] = []
        self.on_batch = None

    def _vector(self, text: str) -> list[float]:
        v = np.zeros(self.dim, dtype=np.float32)
        grams = [text[i : i + 2] for i in range(max(1, len(text) - 1))]
        for gram in grams:
            h = int.from_bytes(hashlib.sha256(gram.encode()).digest()[:4], "little")
            v[h % self.dim] += 1.0
        n = np.linalg.norm(v)
        return (v / n if n else v).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        if self.on_batch:
            self.on_batch(len(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class Remembering(Embeddings):
    """A real model, each text embedded by it once for the whole test: for tests that ingest the
    same files into many homes.  Each home's own vector cache is still read and written as
    usual; only the model's work is not repeated."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.vectors: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    def __getattr__(self, name: str):  # batch_size, warm_up, … as the model has them
        return getattr(self.inner, name)


def cached_vectors(home: Path, kind: str = "embeddings") -> int:
    """How many vectors the cache of ``kind`` (embeddings, sentences) under ``home`` holds now,
    read without waiting for a writer (0 while there is none yet)."""
    import sqlite3

    count = 0
    for path in (home / "cache").glob(f"{kind}-*.sqlite"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)) as db:
                count += db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        except sqlite3.Error:  # being created
            continue
    return count


def forget_sentence_vectors(home: Path) -> None:
    """The sentence vectors removed, as in an index made before they were kept."""
    for path in (home / "cache").glob("sentences-*.sqlite*"):
        path.unlink()


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


QUOTE = "我们取消了纸质材料。"
NOT_FOUND = "资料中没有找到这个问题的答案。"


def quoted(question: str, start: int = 10) -> Answer:
    """The fake assistant's answer: one quote, cited."""
    c = Citation(1, "/data/a.txt", "访谈标题", QUOTE, start, start + len(QUOTE), 0.9, "局长xxx", 1, 2, "h", "c")
    return Answer(question, f"{QUOTE}[1]", True, [c])


class FakeRetriever:
    def count(self) -> int:
        return 1

    def known(self) -> tuple[set[str], set[str]]:
        return {"/data/a.txt"}, {"局长xxx"}


class FakeAssistant:
    """The assistant's surface without a model or an index (as llm's MockModel): the next answer of
    ``queue`` (an exception there is raised), else the one quote -- or, for a question starting
    "没有", a refusal showing it as the closest sentence.  Streamed as drafts (the text so far:
    ``drafts``, or the answer's first characters), then the answer.  Remembers what it was asked: (question, history, sources, interviewees)."""

    def __init__(self, settings: Settings | None = None, delay: float = 0.0, interviewees=("局长xxx",)) -> None:
        self.settings = settings or Settings(home=Path("/tmp/fake-home"))
        self.retriever = FakeRetriever()
        self.documents = None
        self.mode = "extractive"
        self.delay = delay
        self.interviewees = interviewees
        self.queue: list = []
        self.drafts: list[str] | None = None  # what the stream shows before the answer (default: its start)
        self.asked: list[tuple] = []

    def _next(self, question, history, sources, interviewees) -> Answer:
        from rag.errors import UnknownFilterError

        if interviewees and not set(interviewees) <= set(self.interviewees):
            raise UnknownFilterError(f"no interviewee in the collection matches {interviewees[0]!r}")
        self.asked.append((question, history, sources, interviewees))
        time.sleep(self.delay)
        if self.queue:
            item = self.queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if question.startswith("没有"):
            return Answer(question, NOT_FOUND, False, closest=quoted(question).citations)
        return quoted(question)

    def ask(self, question, history=None, top_k=None, sources=None, interviewees=None) -> Answer:
        return self._next(question, history, sources, interviewees)

    def ask_stream(self, question, history=None, top_k=None, sources=None, interviewees=None) -> AnswerStream:
        answer = self._next(question, history, sources, interviewees)
        return AnswerStream(iter([*(self.drafts or [answer.text[:3]]), answer]))


class FakeCollection:
    def documents(self) -> list[dict]:
        return []


def wait_for_server(
    proc, url: str | None = None, port: int | None = None, timeout: float = 120, log: Path | None = None
):
    """``bench.server.wait_until_up``, failing the test (with the server's log) instead of raising."""
    from bench.server import ServerFailed, wait_until_up

    try:
        wait_until_up(proc, url=url, port=port, timeout=timeout, log=log)
    except ServerFailed as e:
        pytest.fail(str(e))


@pytest.fixture
def chroma_server(tmp_path):
    """A `chroma run` server on a free loopback port, its data under the test's folder; yields the port."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        exe = Path(shutil.which("chroma") or "chroma")
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_server(proc, port=port, timeout=60)
    yield port
    proc.terminate()
    proc.wait(timeout=20)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # screenshots of the browser tests


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_cache, bundled_index):
    """``rag ui`` on the bundled collection, for the browser tests of every module."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    port = free_port()
    home = copy_index(bundled_index, tmp_path_factory.mktemp("ui-home"))  # indexed: it starts at once
    env = {**os.environ, "RAG_HOME": str(home), "RAG_MODEL_CACHE": str(model_cache), "HF_HUB_OFFLINE": "1"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "ui", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    wait_for_server(proc, url=url, timeout=240, log=home / "server.log")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, no network beyond the page's own server.  Per module: Playwright's sync API
    keeps an event loop running in the main thread while it is open, which ``asyncio.run`` refuses."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield b
        b.close()
