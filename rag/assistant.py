"""The assistant: question -> checked question -> retrieval -> answer with citations."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

from rag.answer import ACROSS_QUESTION, ExtractiveAnswerer
from rag.config import Settings
from rag.embeddings import load_embedder
from rag.errors import IndexMissingError
from rag.retrieval import HybridRetriever
from rag.store import DocumentStore
from rag.text import has_cjk, has_words
from rag.types import Answer, Hit

MAX_QUESTION_CHARS = 500
_ANAPHORA = re.compile(
    r"他|她|它|其|该|此|这|那|上述|前者|后者|\b(?:he|she|it|they|his|her|its|their|this|that|these|those)\b", re.I
)

History = Sequence[tuple[str, str]]


def _reply(question: str, zh: str, en: str) -> str:
    return zh if has_cjk(question) or not re.search(r"[A-Za-z]", question) else en


def check_question(question) -> tuple[str, str, Answer | None]:
    """(cleaned question, notice, refusal): the refusal is set when there is nothing to ask."""
    text = "" if question is None else str(question)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\n\t")
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return text, "", Answer(question=text, text="请输入一个问题。Please type a question.", found=False)
    if not has_words(text):
        reply = _reply(
            text,
            "这不像一个问题：请用文字提问，例如“市住建局取消了哪些纸质材料？”",
            "That does not look like a question: please ask in words.",
        )
        return text, "", Answer(question=text, text=reply, found=False)
    notice = ""
    if len(text) > MAX_QUESTION_CHARS:
        text = text[:MAX_QUESTION_CHARS]
        notice = _reply(
            text,
            f"问题过长，只使用了前 {MAX_QUESTION_CHARS} 个字。",
            f"The question was too long; only its first {MAX_QUESTION_CHARS} characters were used.",
        )
    return text, notice, None


class Assistant:
    """Answers questions about the collection under ``settings.home``."""

    def __init__(self, settings: Settings | None = None, embedder=None, llm=None) -> None:
        self.settings = settings or Settings.from_env()
        self.embedder = embedder or load_embedder(self.settings)
        self.retriever = HybridRetriever(self.settings, self.embedder)
        self.extractive = ExtractiveAnswerer(self.retriever)
        self.documents = DocumentStore(self.settings)
        self._llm = llm

    @property
    def llm(self):
        """The LLM answerer when ``RAG_LLM_BASE_URL`` is set (or one was given), else None."""
        if self._llm is None and self.settings.llm_base_url:
            from rag.llm import LLMAnswerer

            self._llm = LLMAnswerer.from_settings(self.settings, self.extractive)
        return self._llm

    @property
    def mode(self) -> str:
        return (
            f"LLM ({self.settings.llm_model or 'default'} @ {self.settings.llm_base_url})"
            if self.settings.llm_base_url
            else "extractive"
        )

    def warm_up(self) -> None:
        """Load the model and build the BM25 side now rather than on the first question."""
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()
        self.retriever.lexical()

    def is_empty(self) -> bool:
        return self.retriever.store._collection.count() == 0

    def _search_query(self, question: str, history: History | None) -> tuple[str, dict]:
        """The query to retrieve with, and the articles a follow-up should stay near."""
        if not history:
            return question, {}
        last_question, last_answer = history[-1]
        follow_up = bool(_ANAPHORA.search(question)) or len(question) <= 8
        if not follow_up:
            return question, {}
        boost = {}
        for rank, (chunk, _) in enumerate(self.retriever.bm25(f"{last_question} {last_answer}", 3)):
            boost.setdefault((chunk.source, chunk.article), 1.0 / (60 + rank + 1))
        return f"{last_question} {question}", boost

    def retrieve(self, question: str, k: int | None = None, history: History | None = None) -> list[Hit]:
        """Ranked chunks for ``question`` (a follow-up is read with ``history``)."""
        text, _, refusal = check_question(question)
        if refusal:
            return []
        if self.is_empty():
            raise IndexMissingError(f"the index under {self.settings.home} is empty; run: rag ingest")
        query, boost = self._search_query(text, history)
        return self.retriever.retrieve(query, k=k or self.settings.top_k, boost=boost)

    def ask_stream(
        self, question: str, history: History | None = None, top_k: int | None = None
    ) -> Iterator[str | Answer]:
        """Yield the answer's text as it grows, then the finished ``Answer``."""
        text, notice, refusal = check_question(question)
        if refusal:
            yield refusal.text
            yield refusal
            return
        k = top_k or self.settings.top_k
        if ACROSS_QUESTION.search(text):
            k = max(k, 10)  # a question across interviews needs chunks from several of them
        hits = self.retrieve(text, k=k, history=history)
        if self.llm is not None:
            try:
                answer = yield from self.llm.stream(text, hits, history)
            except Exception as e:
                import openai

                if not isinstance(e, (openai.OpenAIError, ConnectionError, TimeoutError)):
                    raise
                answer = self.extractive.answer(text, hits)
                answer.notice = _reply(
                    text,
                    f"LLM 服务不可用（{e.__class__.__name__}），改为直接引用原文。",
                    f"The LLM server is unavailable ({e.__class__.__name__}); quoting the sources instead.",
                )
                yield answer.text
        else:
            answer = self.extractive.answer(text, hits)
            if not answer.found and history:
                context, _ = self._search_query(text, history)  # only a refused follow-up pays for this
                if context != text:
                    answer = self.extractive.answer_follow_up(text, context, history[-1][1], hits)
            yield answer.text
        answer.question = text
        answer.notice = " ".join(n for n in (notice, answer.notice) if n)
        self._fix_paragraphs(answer)
        yield answer

    def ask(self, question: str, history: History | None = None, top_k: int | None = None) -> Answer:
        """The answer to ``question`` with its citations."""
        answer = None
        for item in self.ask_stream(question, history=history, top_k=top_k):
            answer = item
        return answer

    def _fix_paragraphs(self, answer: Answer) -> None:
        """Set each citation's paragraph number from the stored document's paragraphs."""
        from dataclasses import replace

        fixed = []
        for c in answer.citations:
            try:
                doc = self.documents.load(c.doc_hash)
            except IndexMissingError:
                fixed.append(c)
                continue
            article = doc.articles[c.article - 1] if 0 < c.article <= len(doc.articles) else None
            number = next(
                (p.number for p in (article.paragraphs if article else ()) if p.start <= c.start < p.end), c.paragraph
            )
            fixed.append(replace(c, paragraph=number))
        answer.citations = fixed
