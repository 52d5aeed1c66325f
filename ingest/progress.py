"""How far a run has gone: in bytes of the files it reads, and the texts embedded within a file."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from langchain_core.embeddings import Embeddings


class Progress:
    """Progress of a run, in bytes of the files it reads, sent to a callback (the CLI's bar, the page's).

    Files are read one at a time, so how many texts (chunks and the sentences the answer scorer
    needs vectors of) a run embeds is known only at its end; the files' sizes are known at its
    start.  Each file weighs its size, and within a file progress is the share of its texts
    embedded or found cached.
    """

    def __init__(self, callback: Callable[[int, int, str], None] | None = None) -> None:
        self.callback = callback
        self.total = 0
        self.done = 0
        self.label = ""
        self._base = 0  # the bytes of the files done
        self._file = (1, 1, 0)  # the file being indexed: (its weight, its texts, texts done)

    def start(self, sizes: Iterable[int]) -> None:
        self.total = sum(max(1, size) for size in sizes)
        self._emit()

    def open_file(self, size: int, texts: int, label: str) -> None:
        self._file = (max(1, size), max(1, texts), 0)
        self.label = label
        self._emit()

    def advance(self, n: int, label: str | None = None) -> None:
        weight, texts, done = self._file
        done = min(texts, done + n)
        self._file = (weight, texts, done)
        self.done = min(self.total, self._base + weight * done // texts)
        if label is not None:
            self.label = label
        self._emit()

    def close_file(self, size: int) -> None:
        """A file done (indexed, unchanged or failed): its whole size counted."""
        self._base += max(1, size)
        self._file = (1, 1, 0)
        self.done = min(self.total, self._base)
        self._emit()

    def _emit(self) -> None:
        if self.callback:
            self.callback(self.done, self.total, self.label)


class CountingEmbeddings(Embeddings):
    """An embedder that reports progress after every group of texts it embeds.

    Wrapped inside the vector cache, so only texts that are really embedded are counted.
    """

    def __init__(self, inner: Embeddings, progress: Progress) -> None:
        self.inner = inner
        self.progress = progress
        self.group = 4 * getattr(inner, "batch_size", 16)
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for i in range(0, len(texts), self.group):
            batch = texts[i : i + self.group]
            vectors += self.inner.embed_documents(batch)
            self.embedded += len(batch)
            self.progress.advance(len(batch))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)
