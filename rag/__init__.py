"""Question answering with verifiable citations over collections of Chinese interview material.

from rag import ask, retrieve
answer = ask("市住建局审批时效提升了多少？")
answer.text, answer.found, answer.citations
"""

from __future__ import annotations

import threading

from rag.types import Answer, Citation, Hit

__all__ = ["Answer", "Citation", "Hit", "ask", "retrieve", "as_retriever", "default_assistant", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("interview-rag")
except Exception:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_assistant: list = [None, None]  # (key, assistant): the one for the settings of the last call
_lock = threading.Lock()


def default_assistant():
    """The assistant for the current ``RAG_*`` settings, created on first use and then reused.

    One is kept: when the settings answering reads change, the next is made (with the same
    loaded model when the embedding settings are the same) and the last let go.
    """
    from rag.assistant import Assistant
    from rag.config import Settings

    settings = Settings.from_env()
    key = answering_key(settings)
    with _lock:
        known, current = _assistant
        if known != key:
            same_model = current is not None and _model_of(current.settings) == _model_of(settings)
            _assistant[:] = [key, Assistant(settings, current.embedder if same_model else None)]
        return _assistant[1]


def answering_key(settings) -> tuple:
    """What answering reads, as a key: the page's and the API's own settings (its login, its keys,
    its port and queue) left out, the LLM's key only as a hash -- no secret is kept in it."""
    import dataclasses
    import hashlib

    answering = dataclasses.replace(
        settings, ui_auth=None, api_keys=(), llm_api_key=None, ui_port=0, ui_concurrency=1, ui_queue_size=1
    )
    return repr(answering), hashlib.sha256((settings.llm_api_key or "").encode()).hexdigest()


def _model_of(settings) -> tuple:
    return settings.embed_model, settings.embed_backend, settings.device, settings.model_cache


def ask(question: str, history=None, top_k: int | None = None, sources=None, interviewees=None) -> Answer:
    """Answer ``question`` from the index under ``RAG_HOME``; ``history`` holds earlier (question, answer) pairs.

    ``sources`` (file names or paths) and ``interviewees`` (whole or part of a name) keep the
    answer inside those documents and those people's interviews.
    """
    return default_assistant().ask(question, history=history, top_k=top_k, sources=sources, interviewees=interviewees)


def retrieve(question: str, k: int = 5, sources=None, interviewees=None) -> list[Hit]:
    """The ``k`` best chunks for ``question``, each with text, source, title, start, end and score."""
    return default_assistant().retrieve(question, k=k, sources=sources, interviewees=interviewees)


def as_retriever(k: int = 5):
    """The hybrid retriever as a LangChain ``BaseRetriever`` (``.invoke(question)`` -> Documents)."""
    from rag.retrieval import InterviewRetriever

    return InterviewRetriever(hybrid=default_assistant().retriever, k=k)
