"""The few errors the product raises; the CLI and the UI turn each into a one-line message."""


class RagError(Exception):
    """Base class of every error a person may be shown."""


class ConfigError(RagError):
    """A setting has a value the product cannot use."""


class ModelError(RagError):
    """The embedding model cannot be found, converted or loaded."""


class StoreUnavailable(RagError):
    """The Chroma server named by RAG_CHROMA_HOST cannot be reached."""


class ParseError(RagError):
    """A file cannot be read as text (wrong format, corrupt, empty, binary)."""


class IndexBusyError(RagError):
    """Another ingestion holds the index lock."""


class IndexMissingError(RagError):
    """No collection has been ingested yet under the configured home."""


class StorageFullError(RagError):
    """The disk holding the index has no room left for a write."""


class UnknownFilterError(RagError):
    """A question was limited to a document or an interviewee the collection does not hold."""


class LLMUnavailable(RagError):
    """The LLM gave no checked answer: its server failed, or nothing it wrote could be verified."""

    def __init__(self, message: str, *, unverifiable: bool = False) -> None:
        super().__init__(message)
        self.unverifiable = unverifiable
