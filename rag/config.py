"""Settings, read once from ``RAG_*`` environment variables, with defaults that work offline."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from pathlib import Path

from rag.errors import ConfigError

DEFAULT_EMBED_MODEL = "multilingual-e5-small"
DEFAULT_HOME = Path.home() / ".interview-rag"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"RAG_{name}")
    return value if value not in (None, "") else default


def _parsed(name: str, kind: str, raw: str):
    """``raw`` as a field of type ``kind`` (as written in the class) wants it."""
    if kind == "int":
        try:
            return int(raw)
        except ValueError as e:
            raise ConfigError(f"RAG_{name} must be a whole number, not {raw!r}") from e
    if kind.startswith("tuple"):
        return tuple(k.strip() for k in raw.split(",") if k.strip())
    return raw


# The answerers that quote a factoid's sentences, as RAG_ANSWERER names them (built in
# ``rag.assistant.QUOTING``): the learned sentence scorer, and the word-overlap rules.
ANSWERERS = ("learned", "rules")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that can be configured, each default written here once; ``Settings.from_env()``
    reads the environment, ``dataclasses.replace`` makes a changed copy."""

    home: Path = DEFAULT_HOME
    model_cache: Path | None = None
    embed_model: str = DEFAULT_EMBED_MODEL
    collection: str = "interviews"
    chroma_host: str | None = None
    chroma_port: int = 8000
    chunk_size: int = 300
    chunk_overlap: int = 1
    top_k: int = 5
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    embed_batch_size: int = 16
    device: str = "auto"  # where the embedding model runs: auto (a GPU when there is one), cpu, cuda, cuda:1, mps
    embed_backend: str = "onnx"  # what runs it: onnx (ONNX Runtime), torch, or onnx-int8; see rag/onnx_backend.py
    ui_concurrency: int = 4
    ui_queue_size: int = 64
    max_file_mb: int = 20
    max_unpacked_mb: int = 64  # the XML a .docx may unpack to
    parse_seconds: int = 120  # the time one .docx or .pdf may take to read
    ui_port: int = 7860
    answerer: str = "learned"  # the extractive answerer: "learned" (the scorer) or "rules"
    ui_auth: str | None = None  # "user:password"
    api_keys: tuple[str, ...] = ()  # bearer tokens the API accepts (RAG_API_KEYS, comma-separated)

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser()
        object.__setattr__(self, "home", home)  # frozen: __post_init__ is the one place that normalises
        object.__setattr__(
            self, "model_cache", Path(self.model_cache).expanduser() if self.model_cache else home / "models"
        )
        if not self.embed_model.strip():
            raise ConfigError("RAG_EMBED_MODEL is empty: unset it for the bundled model, or name a model or folder.")
        if self.chunk_size < 50:
            raise ConfigError("RAG_CHUNK_SIZE must be at least 50 characters.")
        if self.chunk_size > 1000:
            raise ConfigError(
                "RAG_CHUNK_SIZE must be at most 1000 characters: longer chunks exceed the model's 512 tokens."
            )
        if not 0 <= self.chunk_overlap <= 3:
            raise ConfigError("RAG_CHUNK_OVERLAP counts sentences and must be between 0 and 3.")
        if self.top_k < 1:
            raise ConfigError("RAG_TOP_K must be at least 1.")
        if self.ui_concurrency < 1 or self.ui_queue_size < 1:
            raise ConfigError("RAG_UI_CONCURRENCY and RAG_UI_QUEUE_SIZE must be at least 1.")
        if self.max_file_mb < 1:
            raise ConfigError("RAG_MAX_FILE_MB must be at least 1 (megabytes).")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ConfigError(f"RAG_DEVICE must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}.")
        if self.embed_backend not in ("torch", "onnx", "onnx-int8"):
            raise ConfigError(f"RAG_EMBED_BACKEND must be torch, onnx or onnx-int8, not {self.embed_backend!r}.")
        if self.max_unpacked_mb < 1 or self.parse_seconds < 1:
            raise ConfigError("RAG_MAX_UNPACKED_MB and RAG_PARSE_SECONDS must be at least 1.")
        if any(len(k) < 8 for k in self.api_keys):
            raise ConfigError("each key in RAG_API_KEYS must be at least 8 characters long.")
        if self.answerer not in ANSWERERS:
            raise ConfigError(f"RAG_ANSWERER must be one of {', '.join(ANSWERERS)}, not {self.answerer!r}.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{1,40}", self.collection):
            raise ConfigError("RAG_COLLECTION may hold letters, digits, '_' and '-' only (2 to 41 characters).")

    @classmethod
    def from_env(cls) -> Settings:
        """The settings from the environment: each field from ``RAG_<FIELD>`` (``top_k`` from
        RAG_TOP_K, ``api_keys`` from RAG_API_KEYS, comma-separated); unset or empty, its default."""
        values = {}
        for field in dataclasses.fields(cls):
            raw = _env(field.name.upper())
            if raw is not None:
                values[field.name] = _parsed(field.name.upper(), str(field.type), raw)
        return cls(**values)

    @property
    def model_slug(self) -> str:
        """A short name of the embedding model, safe inside a collection name; ``-int8`` when its
        vectors come from the int8 backend (they differ a little, so they never share a collection)."""
        slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(self.embed_model).name).strip("-").lower()[:20] or "model"
        return f"{slug}-int8" if self.embed_backend == "onnx-int8" else slug

    @property
    def collection_name(self) -> str:
        """The Chroma collection: one per embedding model, so vectors of two models never mix."""
        return f"{self.collection}-{self.model_slug}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
