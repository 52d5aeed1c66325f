"""The assistant: question -> retrieval -> an answerer, with the one fallback from the LLM to quoting."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from rag.answering import Answerer, AnswerStream, Pieces, relay, with_notice
from rag.articles import ORG_END, actors, named_people
from rag.config import Settings
from rag.embeddings import SentenceSimilarity, load_embedder
from rag.errors import IndexMissingError, LLMUnavailable, UnknownFilterError
from rag.passages import MoreAnswerer, PassageAnswerer, SummaryAnswerer, WhoSaidAnswerer
from rag.question import FACTOID, MORE, OPEN, SUMMARY, WHO, History, Question
from rag.retrieval import HybridRetriever
from rag.rules import RulesAnswerer
from rag.scorer import LearnedAnswerer
from rag.store import DocumentStore, cached_embedder
from rag.terms import term_coverage
from rag.topics import Reader
from rag.types import Answer, Hit, Scope

# The answerers of a factoid, by the name RAG_ANSWERER gives (rag.config.ANSWERERS); only the
# chosen one is built.
QUOTING: dict[str, Callable[[HybridRetriever, SentenceSimilarity], Answerer]] = {
    "learned": lambda retriever, similarity: LearnedAnswerer(retriever.term_weights, similarity, retriever.background),
    "rules": lambda retriever, similarity: RulesAnswerer(retriever.term_weights, similarity),
}

# A question across interviews needs chunks from several of them.
ACROSS_TOP_K = 10
# Chunks read for a broad question: an open one reads its best passages; a who-said question or
# a summary every article of the scope (all of the bundled collection's 38 chunks).
OPEN_TOP_K = 8
ARTICLES_TOP_K = 40


class Assistant:
    """Answers questions about the collection under ``settings.home``."""

    def __init__(
        self, settings: Settings | None = None, embedder=None, llm: Answerer | None = None, kinds: bool = True
    ) -> None:
        """``kinds=False`` reads every question as a factoid: the single policy, kept for comparison."""
        self.settings = settings or Settings.from_env()
        self.kinds = kinds
        self.embedder = embedder or load_embedder(self.settings)
        self.retriever = HybridRetriever(self.settings, self.embedder)
        # Sentence vectors (cross-lingual questions) are kept on disk between questions.
        sentences = cached_embedder(self.settings, self.embedder, sentences=True)
        similarity = SentenceSimilarity(self.embedder, sentences, query=self.retriever.query_vector)
        self.extractive = QUOTING[self.settings.answerer](self.retriever, similarity)
        self.reader = reader = Reader(
            self.retriever.article,
            self.retriever.term_weights,
            similarity,
            self.retriever.background,
            people=lambda: self.retriever.known()[1],
        )
        summary = SummaryAnswerer(reader)
        passages = PassageAnswerer(reader, summary)
        broad = {OPEN: passages, WHO: WhoSaidAnswerer(reader), SUMMARY: summary}
        self.answerers: dict[str, Answerer] = {FACTOID: self.extractive, **broad, MORE: MoreAnswerer(broad)}
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
        """What answers, as the settings page states it."""
        if self.settings.llm_base_url:
            return f"大模型 LLM `{self.settings.llm_model or 'default'}` @ `{self.settings.llm_base_url}` (every quote checked against the source)"
        if self.settings.answerer == "rules":
            return "抽取式 extractive: word-overlap rules (`RAG_ANSWERER=rules`)"
        return "抽取式 extractive: the learned sentence scorer (LightGBM, `RAG_ANSWERER=learned`)"

    def warm_up(self) -> None:
        """Load the model and build the BM25 side now rather than on the first question."""
        if hasattr(self.embedder, "warm_up"):
            self.embedder.warm_up()
        self.retriever.lexical()

    def is_empty(self) -> bool:
        return self.retriever.count() == 0

    def scope(self, sources=None, interviewees=None) -> Scope:
        """The scope named by ``sources`` and ``interviewees``; raises UnknownFilterError for a name not held.

        A source may be named as stored, by its path's ending or its file name; an interviewee
        whole or by part of the name ("于晓峰" for "市教育局党组书记、局长于晓峰").
        """
        if not sources and not interviewees:
            return Scope()
        if self.is_empty():
            raise IndexMissingError(f"the index under {self.settings.home} is empty; run: rag ingest")
        known_sources, known_people = self.retriever.known()

        def by_path(name: str, source: str) -> bool:
            return name == source or source.endswith("/" + name.lstrip("/"))

        def by_name(name: str, person: str) -> bool:
            return name == person or (len(name) >= 2 and name in person)

        return Scope(
            _matching(sources or (), known_sources, by_path, "document"),
            _matching(interviewees or (), known_people, by_name, "interviewee"),
        )

    def retrieve(
        self, question: str, k: int | None = None, history: History | None = None, sources=None, interviewees=None
    ) -> list[Hit]:
        """Ranked chunks for ``question`` (a follow-up is read with ``history``), within the named scope."""
        q = Question.parse(question, history)
        k = k or self.settings.top_k

        def pinned() -> list[Hit]:
            self.retriever.pin()
            scope = self.scope(sources, interviewees)
            return [] if q.refusal else self._retrieve(q, k, scope)[:k]

        return contextvars.copy_context().run(pinned)

    def _retrieve(self, question: Question, k: int, scope: Scope = Scope(), kind: str | None = None) -> list[Hit]:
        """The chunks the answerer of ``kind`` (the question's own by default) reads."""
        if self.is_empty():
            raise IndexMissingError(f"the index under {self.settings.home} is empty; run: rag ingest")
        kind = kind or self.kind_of(question)
        if kind == MORE and question.asked_before is not None:
            return self._retrieve(question.asked_before, k, scope)  # the same passages as the question it follows
        # A follow-up stays near the articles the previous turn was about.
        near = " ".join(question.previous) if question.follow_up else None
        if kind == FACTOID:
            return self.retriever.retrieve(question.search_text, k=k, near=near, scope=scope)
        k = max(k, ARTICLES_TOP_K if kind in (WHO, SUMMARY) else OPEN_TOP_K)
        about = self.reader.about(question)
        scope, articles = self._actors_scope(about, scope)
        hits = self.retriever.retrieve(about, k=k * (3 if articles else 1), near=near, scope=scope)
        if articles:
            hits = [h for h in hits if (h.source, h.chunk.article) in articles] or hits
        hits = hits[:k]
        if kind == WHO:
            hits += self._other_articles(question, hits, scope)
        return hits

    def _other_articles(self, question: Question, hits: list[Hit], scope: Scope) -> list[Hit]:
        """For a who-said question: the chunk most on the topic of each article that holds one of
        its two weightiest words but had no chunk among ``hits`` -- so every article is decided,
        not only those retrieval ranked high.  Chosen among the article's chunks that hold the
        word, which BM25 returns: reading each whole article through Chroma's metadata filter
        cost 0.2 s an article at a million chunks (28 s for a question that named 168)."""
        weights = self.reader.topic(question, hits)
        heaviest = sorted(weights, key=lambda t: -weights[t][0])[:2]
        seen = {(h.source, h.chunk.article) for h in hits}
        more: list[Hit] = []
        for term in heaviest:
            holding: dict[tuple[str, int], list] = {}
            for chunk in self.retriever.holding(term, scope):
                holding.setdefault((chunk.source, chunk.article), []).append(chunk)
            for place in sorted(holding.keys() - seen):
                seen.add(place)
                chunks = sorted(holding[place], key=lambda c: c.start)  # ties: the first in the article
                best = max(chunks, key=lambda c: term_coverage(weights, c.indexed_text.lower()))
                more.append(Hit(best, 0.0))
        return more

    def _actors_scope(self, text: str, scope: Scope) -> tuple[Scope, set[tuple[str, int]]]:
        """The scope narrowed to the articles of the organisations and people the question names
        ("住建局怎么……": the housing bureau's interview); unchanged when it names none the collection holds."""
        named = named_people(text, self.retriever.known()[1])
        if named:
            people = {p for names in named.values() for p in names}
            inside = tuple(p for p in people if not scope.interviewees or p in scope.interviewees)
            return (Scope(scope.sources, inside), set()) if inside else (scope, set())
        # an organisation named in full ("发改委" for "省发改委……"); a person's or a place's name
        # found anywhere in a text ("道同" in "知道同……") is no sign of whose interview it is
        names = [name for name in actors(text) if len(name) > 2 and ORG_END.search(name)]
        found = [self.retriever.containing(name, scope) for name in names]
        found = [f for f in found if f]
        if not found:
            return scope, set()
        both = set.intersection(*map(set, found))
        articles = both or set.union(*map(set, found))
        people = {person for _, _, person in articles}
        if all(people) and len(people) <= 8:
            narrowed = tuple(p for p in people if not scope.interviewees or p in scope.interviewees)
            scope = Scope(scope.sources, narrowed or scope.interviewees)
        return scope, {(source, article) for source, article, _ in articles}

    def ask_stream(
        self, question: str, history: History | None = None, top_k: int | None = None, sources=None, interviewees=None
    ) -> AnswerStream:
        """The answer on its way: iterate for its text as it grows, ``.answer()`` for the result.

        ``sources`` and ``interviewees`` limit it to those documents and those people's interviews.
        """
        scope = self.scope(sources, interviewees)
        return AnswerStream(self._pieces(Question.parse(question, history), top_k, scope))

    def ask(
        self, question: str, history: History | None = None, top_k: int | None = None, sources=None, interviewees=None
    ) -> Answer:
        """The answer to ``question`` with its citations (within ``sources`` / ``interviewees`` when given)."""
        return self.ask_stream(question, history, top_k, sources, interviewees).answer()

    def _pieces(self, question: Question, top_k: int | None, scope: Scope = Scope()) -> Pieces:
        if question.refusal:
            yield question.refusal
            yield Answer(question=question.text, text=question.refusal, found=False)
            return
        self.retriever.pin()  # one read of the index for the whole answer (see AnswerStream)
        k = top_k or self.settings.top_k
        k = max(k, ACROSS_TOP_K) if question.across_interviews else k
        hits = self._retrieve(question, k, scope)
        quoted = None if self.kind_of(question) == FACTOID else self._broad(question, hits, k, scope)
        yield from relay(self._answer_with_fallback(question, hits, quoted), lambda a: with_notice(a, question.notice))

    def _broad(self, question: Question, hits: list[Hit], k: int, scope: Scope) -> Answer:
        """The quoted answer to a broad question.  An open one is asked as a factoid when the
        passage it would quote has no interview's shape, or when its scope holds nothing on its
        topic: worded unlike the text ("农村的小学校以后会怎么处理？"), its words are not there, yet one
        sentence may answer it -- the calibrated scorer decides."""
        kind = self.kind_of(question)
        if kind == OPEN and hits and not self.reader.structured(hits[0]):
            # no point to quote whole (an encyclopedia's paragraph): answered like a factoid
            return self.extractive.answer(question, self._retrieve(question, k, scope, kind=FACTOID))
        answer = self.answerer_for(question).answer(question, hits)
        if not answer.found and kind == OPEN:
            answer = self.extractive.answer(question, self._retrieve(question, k, scope, kind=FACTOID))
        return answer

    def _answer_with_fallback(self, question: Question, hits: list[Hit], quoted: Answer | None = None) -> Pieces:
        """The LLM's answer when there is one that checks out, else the quoted sentences.

        ``quoted``: a broad question's quoted answer: the LLM reads the passages chosen for its
        kind (one per article for who-said), and its refusal stands without asking the LLM.
        """
        notice = ""
        if self.llm is not None:
            passages = hits
            if quoted is not None:
                if not quoted.found:
                    yield quoted.text
                    yield quoted
                    return
                passages = self._passages(quoted)
            try:
                yield from self.llm.stream(question, passages)
                return
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
        if quoted is not None:
            yield quoted.text
            yield with_notice(quoted, notice)
            return
        yield from relay(self.answerer_for(question).stream(question, hits), lambda a: with_notice(a, notice))

    def _passages(self, answer: Answer) -> list[Hit]:
        """The chunks ``answer``'s citations quote, once each, in the order first cited."""
        found: dict[str, Hit] = {}
        for c in answer.citations:
            if c.chunk_id in found:
                continue
            chunk = next((ch for ch in self.retriever.article(c.source, c.article) if ch.id == c.chunk_id), None)
            if chunk is not None:
                found[c.chunk_id] = Hit(chunk, c.score)
        return list(found.values()) or answer.hits

    def answerer_for(self, question: Question) -> Answerer:
        """The extractive answerer for the question's kind: the one place the kind chooses one."""
        return self.answerers[self.kind_of(question)]

    def kind_of(self, question: Question) -> str:
        return question.kind if self.kinds else FACTOID


def _matching(names, known: set[str], matches, kind: str) -> tuple[str, ...]:
    """The known values each name matches; a name that matches none is an error listing what there is."""
    chosen: list[str] = []
    for name in names:
        found = sorted(value for value in known if matches(str(name).strip(), value))
        if not found:
            shown = "、".join(sorted(known)[:12]) + ("…" if len(known) > 12 else "")
            holds = f"it holds: {shown}" if known else f"it holds no {kind} yet"
            raise UnknownFilterError(f"no {kind} in the collection matches {str(name)[:80]!r}; {holds}")
        chosen += found
    return tuple(dict.fromkeys(chosen))


def _cause_name(error: BaseException) -> str:
    return (error.__cause__ or error).__class__.__name__
