"""Question answering with verifiable citations over collections of Chinese interview material.

from rag import ask, retrieve
answer = ask("市住建局审批时效提升了多少？")
answer.text, answer.found, answer.citations
"""

from __future__ import annotations

import threading

from rag.types import Answer, Citation, Hit

__all__ = ["Answer", "Citation", "Hit", "ask", "retrieve", "default_assistant"]

_assistants: dict = {}
_lock = threading.Lock()


def default_assistant():
    """The assistant for the current ``RAG_*`` settings, created on first use and then reused."""
    from rag.assistant import Assistant
    from rag.config import Settings

    settings = Settings.from_env()
    key = repr(settings)
    with _lock:
        if key not in _assistants:
            _assistants[key] = Assistant(settings)
        return _assistants[key]


def ask(question: str, history=None, top_k: int | None = None) -> Answer:
    """Answer ``question`` from the index under ``RAG_HOME``; ``history`` holds earlier (question, answer) pairs."""
    return default_assistant().ask(question, history=history, top_k=top_k)


def retrieve(question: str, k: int = 5) -> list[Hit]:
    """The ``k`` best chunks for ``question``, each with text, source, title, start, end and score."""
    return default_assistant().retrieve(question, k=k)
