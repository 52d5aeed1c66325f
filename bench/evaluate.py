"""``rag eval``: retrieval and answer quality and speed on a question set, beside baselines, in one run.

Question sets: the project's JSONL (``id``, ``type``, ``question``, ``history``, ``answers``,
``evidence``; the corpus is the bundled collection unless ``--corpus`` names another) or
SQuAD-style JSON (CMRC 2018, DRCD...: every passage becomes a document of the corpus).

A retrieved chunk is right when it contains an evidence string, or when its span in its
document holds the offset of a gold answer.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.config import Settings

KS = tuple(range(1, 11))


@dataclass
class Question:
    id: str
    question: str
    type: str = "factoid"
    answers: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    doc: str = ""  # SQuAD: the passage file the answers are in
    offsets: list[int] = field(default_factory=list)  # SQuAD: answer offsets in that passage
    all_phrases: bool = True  # JSONL: every key phrase must appear; SQuAD: any human answer
    article: str = ""  # SQuAD: the title of the article the question is about

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


def load_questions(
    path: Path, corpus_dir: Path, holdout: int = 0, seed: int = 0, leave_out: Callable[[str], bool] | None = None
) -> tuple[list[Question], list[Path]]:
    """Questions and the corpus files they are asked about (SQuAD passages are written to ``corpus_dir``).

    ``holdout``: SQuAD sets only -- that many articles (chosen with ``seed``) are left out of the
    corpus, and their questions become unanswerable: what an honest system must refuse.
    ``leave_out``: instead, leave out the articles whose title it holds true for.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        questions = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line)
                questions.append(
                    Question(
                        id=q["id"],
                        question=q["question"],
                        type=q.get("type", "factoid"),
                        answers=q.get("answers", []),
                        evidence=q.get("evidence", []),
                        history=[tuple(t) for t in q.get("history", [])],
                    )
                )
        return questions, []
    data = json.loads(path.read_text(encoding="utf-8"))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    held_out = set(random.Random(seed).sample(range(len(data["data"])), min(holdout, len(data["data"]))))
    questions, files = [], []
    for number, article in enumerate(data["data"]):
        # The article's title heads each of its passages, as a title line heads an interview.
        title = " ".join(str(article.get("title", "")).split())
        header = f"{title}\n" if title else ""
        if (leave_out(title) if leave_out else number in held_out):
            for paragraph in article["paragraphs"]:
                questions += [
                    Question(id=qa["id"], question=qa["question"], type="unanswerable", article=title)
                    for qa in paragraph["qas"]
                ]
            continue
        for paragraph in article["paragraphs"]:
            name = f"{paragraph.get('id') or len(files)}.txt"
            target = corpus_dir / name
            target.write_text(header + paragraph["context"], encoding="utf-8")
            files.append(target)
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                offsets = [a["answer_start"] for a in qa.get("answers", [])]
                questions.append(
                    Question(
                        id=qa["id"],
                        question=qa["question"],
                        type="unanswerable" if qa.get("is_impossible") or not answers else "factoid",
                        answers=sorted(set(answers)),
                        doc=str(target.resolve()),
                        offsets=sorted({len(header) + o for o in offsets if o is not None}),
                        all_phrases=False,
                        article=title,
                    )
                )
    return questions, files


def _answer_offset(context: str, answer: dict) -> int | None:
    """Where a human answer stands in its passage: its ``answer_start`` when the text is there,
    else the nearest place the text occurs (a few offsets are off by some characters), else None."""
    text, start = answer.get("text") or "", int(answer.get("answer_start", -1))
    if not text:
        return None
    if start >= 0 and context[start : start + len(text)] == text:
        return start
    places = [i for i in range(len(context)) if context.startswith(text, i)]
    return min(places, key=lambda i: abs(i - start)) if places else None


def is_gold(q: Question, text: str, source: str, start: int, end: int) -> bool:
    """Whether a chunk (or quote) at ``source[start:end]`` holds the evidence for ``q``."""
    if any(e in text for e in q.evidence):
        return True
    if q.offsets and source == q.doc:
        return any(start <= o < end for o in q.offsets)
    return False


def answer_correct(q: Question, text: str) -> bool:
    if not q.answers:
        return False
    hits = [a in text for a in q.answers]
    return all(hits) if q.all_phrases else any(hits)


def _rank(q: Question, items: list[tuple[str, str, int, int]]) -> int | None:
    for i, (text, source, start, end) in enumerate(items, 1):
        if is_gold(q, text, source, start, end):
            return i
    return None


def _retrieval_figures(ranks: list[int | None]) -> dict:
    n = len(ranks) or 1
    return {
        **{f"hit@{k}": sum(1 for r in ranks if r and r <= k) / n for k in KS},
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class LangChainDefault:
    """What a user gets from the LangChain tutorial: 1000/200 character splits, plain Chroma, top-4."""

    def __init__(self, settings: Settings, embedder, files: list[Path]) -> None:
        from langchain_chroma import Chroma
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from ingest.parse import read_file
        from rag.store import chroma_client

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
        docs = []
        for path in files:
            text, _ = read_file(path)
            docs += splitter.split_documents([Document(page_content=text, metadata={"source": str(path.resolve())})])
        self.store = Chroma(
            collection_name="langchain-default",
            embedding_function=embedder,
            client=chroma_client(settings),
            collection_metadata={"hnsw:space": "cosine"},
        )
        for i in range(0, len(docs), 256):
            self.store.add_documents(docs[i : i + 256])

    def search(self, question: str, k: int) -> list[tuple[str, str, int, int]]:
        out = []
        for d in self.store.similarity_search(question, k=k):
            start = d.metadata.get("start_index", 0)
            out.append((d.page_content, d.metadata["source"], start, start + len(d.page_content)))
        return out


def run(
    questions_path: Path,
    corpus: list[Path] | None = None,
    sample: int | None = None,
    seed: int = 0,
    holdout: int = 0,
    home: Path | None = None,
    baselines: bool = True,
    on_progress=None,
) -> dict:
    """Build an index, ask every question, and return the figures as a dict."""
    from ingest.pipeline import BUNDLED_COLLECTION

    workdir = Path(tempfile.mkdtemp(prefix="rag-eval-"))
    questions, files = load_questions(questions_path, workdir / "corpus", holdout, seed)
    files = files or [Path(p) for p in (corpus or [BUNDLED_COLLECTION])]
    if sample and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    setup = _Setup.build(files, home or workdir / "home", on_progress)
    systems: dict[str, list] = {"ours": [], "dense": [], "bm25": []}
    langchain, lc_seconds = None, None
    if baselines:
        t = time.perf_counter()
        langchain = LangChainDefault(setup.assistant.settings, setup.assistant.embedder, files)
        lc_seconds = time.perf_counter() - t
        systems["langchain"] = []
    latencies, rows = [], []
    for i, q in enumerate(questions):
        rows.append(_ask_one(q, setup.assistant, langchain, systems, latencies))
        if on_progress:
            on_progress(i + 1, len(questions), "questions")
    return _summarise(questions_path, rows, systems, latencies, setup, lc_seconds)


@dataclass
class _Setup:
    """The index built for a run, and what building it cost."""

    assistant: object
    report: object
    characters: int
    model_seconds: float

    @classmethod
    def build(cls, files: list[Path], home: Path, on_progress) -> _Setup:
        from ingest.pipeline import ingest
        from rag.assistant import Assistant
        from rag.embeddings import load_embedder

        base = Settings.from_env()
        settings = Settings(
            home=home,
            model_cache=base.model_cache,
            embed_model=base.embed_model,
            chunk_size=base.chunk_size,
            chunk_overlap=base.chunk_overlap,
            top_k=base.top_k,
        )
        embedder = load_embedder(settings)
        began = time.perf_counter()
        embedder.warm_up()
        model_seconds = time.perf_counter() - began
        report = ingest(files, settings, embedder=embedder, on_progress=on_progress)
        characters = sum(len(p.read_text(encoding="utf-8", errors="replace")) for p in files)
        assistant = Assistant(settings, embedder=embedder)
        assistant.warm_up()
        return cls(assistant, report, characters, model_seconds)


def _ask_one(q: Question, assistant, langchain, systems: dict[str, list], latencies: list[float]) -> dict:
    """Rank the gold chunk in every system, ask the question, and return its row."""
    hits = assistant.retrieve(q.question, k=max(KS), history=q.history)
    systems["ours"].append(_rank(q, [(h.text, h.source, h.start, h.end) for h in hits]))
    query = q.question if not q.history else f"{q.history[-1][0]} {q.question}"
    dense = assistant.retriever.dense(query, max(KS))
    systems["dense"].append(_rank(q, [(c.text, c.source, c.start, c.end) for c, _ in dense]))
    lexical = assistant.retriever.bm25(query, max(KS))
    systems["bm25"].append(_rank(q, [(c.text, c.source, c.start, c.end) for c, _ in lexical]))
    lc_top = None
    if langchain:
        lc = langchain.search(query, max(KS))
        systems["langchain"].append(_rank(q, lc))
        lc_top = lc[0][0] if lc else ""
    t = time.perf_counter()
    answer = assistant.ask(q.question, history=q.history)
    latencies.append(time.perf_counter() - t)
    cited_right = [
        is_gold(q, c.quote, c.source, c.start, c.end) or answer_correct(q, c.quote) for c in answer.citations
    ]
    return {
        "id": q.id,
        "type": q.type,
        "question": q.question,
        "answerable": q.answerable,
        "rank": systems["ours"][-1],
        "found": answer.found,
        "correct": answer_correct(q, answer.text),
        "answer": answer.text,
        "answer_chars": len(answer.text),
        "citations": len(answer.citations),
        "citations_right": sum(cited_right),
        "langchain_correct": answer_correct(q, lc_top) if lc_top is not None else None,
        "langchain_chars": len(lc_top) if lc_top is not None else None,
        "gold": q.answers[:3],
    }


def _summarise(questions_path, rows, systems, latencies, setup: _Setup, lc_seconds) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    retrieval = {
        name: _retrieval_figures([rank for rank, r in zip(ranks, rows) if r["answerable"]])
        for name, ranks in systems.items()
    }
    best_baseline = {
        metric: max(v[metric] for name, v in retrieval.items() if name != "ours")
        for metric in ("hit@1", "hit@3", "hit@5", "mrr")
    }
    misses = sorted(
        (r for r in answerable if not r["correct"] or not r["rank"] or r["rank"] > 5),
        key=lambda r: (r["rank"] or 99, r["correct"]),
        reverse=True,
    )[:15]
    return {
        "questions_file": str(questions_path),
        "questions": len(rows),
        "answerable": len(answerable),
        "retrieval": retrieval,
        "ratio_to_best_baseline": {m: (retrieval["ours"][m] / b if b else None) for m, b in best_baseline.items()},
        "answers": _answer_figures(rows, "langchain" in systems),
        "per_type": _per_type(rows, systems["ours"]),
        "speed": _speed(latencies, setup, lc_seconds),
        "worst_misses": [{k: r[k] for k in ("id", "type", "question", "rank", "answer", "gold")} for r in misses],
    }


def _answer_figures(rows: list[dict], langchain: bool) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    cited = sum(r["citations"] for r in rows)
    answers = {
        "ours": {
            "answer_contains": sum(r["correct"] for r in answerable) / (len(answerable) or 1),
            "mean_answer_chars": statistics.mean([r["answer_chars"] for r in answerable]) if answerable else 0,
            "citation_precision": sum(r["citations_right"] for r in rows) / (cited or 1),
            "refusal_accuracy": (sum(not r["found"] for r in unanswerable) / len(unanswerable))
            if unanswerable
            else None,
            "false_refusal_rate": sum(not r["found"] for r in answerable) / (len(answerable) or 1),
        }
    }
    if langchain:
        answers["langchain"] = {
            "answer_contains": sum(bool(r["langchain_correct"]) for r in answerable) / (len(answerable) or 1),
            "mean_answer_chars": statistics.mean([r["langchain_chars"] or 0 for r in answerable]) if answerable else 0,
            "refusal_accuracy": 0.0 if unanswerable else None,  # it always answers
        }
    return answers


def _per_type(rows: list[dict], ranks: list[int | None]) -> dict:
    per_type = {}
    for t in sorted({r["type"] for r in rows}):
        group = [(r, rank) for r, rank in zip(rows, ranks) if r["type"] == t]
        per_type[t] = {
            "questions": len(group),
            "hit@5": sum(1 for r, rank in group if rank and rank <= 5) / len(group) if t != "unanswerable" else None,
            "answer_contains": sum(r["correct"] for r, _ in group) / len(group) if t != "unanswerable" else None,
            "refused": sum(not r["found"] for r, _ in group) / len(group),
        }
    return per_type


def _speed(latencies: list[float], setup: _Setup, lc_seconds: float | None) -> dict:
    report, characters = setup.report, setup.characters
    return {
        "documents": len(report.files),
        "chunks": report.added + report.unchanged,
        "characters": characters,
        "model_load_seconds": round(setup.model_seconds, 2),
        "ingest_seconds": round(report.seconds, 2),
        "ingest_chars_per_second": round(characters / report.seconds, 1) if report.seconds else None,
        "langchain_index_seconds": round(lc_seconds, 2) if lc_seconds else None,
        "ask_p50_ms": round(1000 * _percentile(latencies, 50), 1),
        "ask_p95_ms": round(1000 * _percentile(latencies, 95), 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
