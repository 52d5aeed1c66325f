"""The assistant: question -> retrieval -> an answerer, with the one fallback from the LLM to quoting."""

from __future__ import annotations

from rag.answering import Answerer, AnswerStream, Pieces, with_notice
from rag.config import Settings
from rag.embeddings import SentenceSimilarity, load_embedder
from rag.errors import IndexMissingError, LLMUnavailable
from rag.extractive import ExtractiveAnswerer
from rag.question import History, Question
from rag.retrieval import HybridRetriever
from rag.scorer import ScoredAnswerer
from rag.store import DocumentStore, cached_embedder
from rag.types import Answer, Hit

# A question across interviews needs chunks from several of them.
ACROSS_TOP_K = 10


class Assistant:
    """Answers questions about the collection under ``settings.home``."""

    def __init__(self, settings: Settings | None = None, embedder=None, llm: Answerer | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.embedder = embedder or load_embedder(self.settings)
        self.retriever = HybridRetriever(self.settings, self.embedder)
        # Sentence vectors (cross-lingual questions) are kept on disk between questions.
        sentences = cached_embedder(self.settings, self.embedder, sentences=True)
        similarity = SentenceSimilarity(self.embedder, sentences)
        self.rules = ExtractiveAnswerer(self.retriever.term_weights, similarity)
        self.scorer = ScoredAnswerer(self.retriever.term_weights, similarity, self.retriever.background)
        self.extractive = self.scorer if self.settings.answerer == "learned" else self.rules
        self.documents = DocumentStore(self.settings)
        self._llm = llm

    @property
    def llm(self) -> Answerer | None:
        """The LLM answerer when ``RAG_LLM_BASE_URL`` is set (or one was given), else None."""
        if self._llm is None and self.settings.llm_base_url:
            from rag.llm import LLMAnswerer

            self._llm = LLMAnswerer.from_settings(self.settings)
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
        return self.retriever.count() == 0

    def retrieve(self, question: str, k: int | None = None, history: History | None = None) -> list[Hit]:
        """Ranked chunks for ``question`` (a follow-up is read with ``history``)."""
        q = Question.parse(question, history)
        return [] if q.refusal else self._retrieve(q, k or self.settings.top_k)

    def _retrieve(self, question: Question, k: int) -> list[Hit]:
        if self.is_empty():
            raise IndexMissingError(f"the index under {self.settings.home} is empty; run: rag ingest")
        # A follow-up stays near the articles the previous turn was about.
        near = " ".join(question.previous) if question.follow_up else None
        return self.retriever.retrieve(question.search_text, k=k, near=near)

    def ask_stream(self, question: str, history: History | None = None, top_k: int | None = None) -> AnswerStream:
        """The answer on its way: iterate for its text as it grows, ``.answer()`` for the result."""
        return AnswerStream(self._pieces(Question.parse(question, history), top_k))

    def ask(self, question: str, history: History | None = None, top_k: int | None = None) -> Answer:
        """The answer to ``question`` with its citations."""
        return self.ask_stream(question, history=history, top_k=top_k).answer()

    def _pieces(self, question: Question, top_k: int | None) -> Pieces:
        if question.refusal:
            yield question.refusal
            return Answer(question=question.text, text=question.refusal, found=False)
        k = top_k or self.settings.top_k
        hits = self._retrieve(question, max(k, ACROSS_TOP_K) if question.across_interviews else k)
        answer = yield from self._answer_with_fallback(question, hits)
        return with_notice(answer, question.notice)

    def _answer_with_fallback(self, question: Question, hits: list[Hit]) -> Pieces:
        """The LLM's answer when there is one that checks out, else the quoted sentences."""
        notice = ""
        if self.llm is not None:
            try:
                return (yield from self.llm.stream(question, hits))
            except LLMUnavailable as e:
                notice = (
                    question.reply(
                        "模型的回答无法在资料中核实，改为直接引用原文。",
                        "The model's reply could not be verified; quoting the sources instead.",
                    )
                    if e.unverifiable
                    else question.reply(
                        f"LLM 服务不可用（{_cause_name(e)}），改为直接引用原文。",
                        f"The LLM server is unavailable ({_cause_name(e)}); quoting the sources instead.",
                    )
                )
        answer = yield from self.extractive.stream(question, hits)
        return with_notice(answer, notice)


def _cause_name(error: BaseException) -> str:
    return (error.__cause__ or error).__class__.__name__
