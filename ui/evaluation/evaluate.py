"""``rag eval``: retrieval and answer quality and speed on a question set, beside baselines, in one run.

Question sets: the project's JSONL (``id``, ``type``, ``question``, ``history``, ``answers``,
``evidence``; the corpus is the bundled collection unless ``--corpus`` names another) or
SQuAD-style JSON (CMRC 2018, DRCD...: every passage becomes a document of the corpus).

A retrieved chunk is right when it contains an evidence string, or when its span in its
document holds the offset of a gold answer.
"""

from __future__ import annotations

import random
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rag.config import ANSWERERS, Settings
from ui.evaluation.baseline import LangChainDefault
from ui.evaluation.questions import Question, load_questions

KS = tuple(range(1, 11))


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


def run(
    questions_path: Path,
    corpus: list[Path] | None = None,
    sample: int | None = None,
    seed: int = 0,
    holdout: int = 0,
    home: Path | None = None,
    baselines: bool = True,
    on_progress=None,
    answerers: tuple[str, ...] = ANSWERERS,
    part: str | None = None,
) -> dict:
    """Build an index, ask every question of every answerer, and return the figures as a dict.

    ``part``: SQuAD sets only -- ask only the questions of that part of the answer scorer's
    split (``bench.scorer``), with its held-out articles left out of the index.
    """
    from ingest.pipeline import BUNDLED_COLLECTION

    workdir = Path(tempfile.mkdtemp(prefix="rag-eval-"))
    leave_out = None
    if part:
        from ui.evaluation.split import held_out, part_of

        leave_out = held_out
    # With a given home, the passages are written beside it under a fixed name, so that a second
    # run on the same home finds the same files (and an index that only needs checking).
    corpus_dir = Path(home) / "corpus" if home else workdir / "corpus"
    questions, files = load_questions(questions_path, corpus_dir, holdout, seed, leave_out)
    if part:
        questions = [q for q in questions if part_of(q.article) == part]
    files = files or [Path(p) for p in (corpus or [BUNDLED_COLLECTION])]
    if sample and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    setup = _Setup.build(files, home or workdir / "home", on_progress, answerers)
    systems: dict[str, list] = {"ours": [], "dense": [], "bm25": []}
    langchain, lc_seconds = None, None
    if baselines:
        t = time.perf_counter()
        langchain = LangChainDefault(setup.assistant.settings, setup.assistant.embedder, files)
        lc_seconds = time.perf_counter() - t
        systems["langchain"] = []
    latencies: dict[str, list[float]] = {name: [] for name in answerers}
    rows = []
    for i, q in enumerate(questions):
        rows.append(_ask_one(q, setup.assistants, langchain, systems, latencies))
        if on_progress:
            on_progress(i + 1, len(questions), "questions")
    return _summarise(questions_path, rows, systems, latencies, setup, lc_seconds)


@dataclass
class _Setup:
    """The index built for a run, an assistant per answerer, and what building it cost."""

    assistants: dict
    report: object
    characters: int
    model_seconds: float

    @property
    def assistant(self):
        return next(iter(self.assistants.values()))

    @classmethod
    def build(cls, files: list[Path], home: Path, on_progress, answerers: tuple[str, ...]) -> _Setup:
        from ingest.pipeline import ingest
        from rag.assistant import Assistant
        from rag.embeddings import load_embedder

        base = Settings.from_env()
        settings = Settings(
            home=home,
            model_cache=base.model_cache,
            embed_model=base.embed_model,
            embed_backend=base.embed_backend,
            embed_batch_size=base.embed_batch_size,
            device=base.device,
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
        assistants = {}
        for name in answerers:
            assistants[name] = Assistant(replace(settings, answerer=name), embedder=embedder)
            assistants[name].warm_up()
        return cls(assistants, report, characters, model_seconds)


def _ask_one(q: Question, assistants: dict, langchain, systems: dict[str, list], latencies: dict) -> dict:
    """Rank the gold chunk in every system, ask the question of every answerer, and return its row."""
    assistant = next(iter(assistants.values()))
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
    by = {}
    for name, answering in assistants.items():
        t = time.perf_counter()
        answer = answering.ask(q.question, history=q.history)
        latencies[name].append(time.perf_counter() - t)
        by[name] = {
            "found": answer.found,
            "correct": answer_correct(q, answer.text),
            "near": answer.found and near_answer(q, answer),
            "answer": answer.text,
            "answer_chars": len(answer.text),
            "citations": len(answer.citations),
            "citations_right": sum(
                is_gold(q, c.quote, c.source, c.start, c.end) or answer_correct(q, c.quote) for c in answer.citations
            ),
        }
    return {
        "id": q.id,
        "type": q.type,
        "question": q.question,
        "answerable": q.answerable,
        "rank": systems["ours"][-1],
        "by": by,
        "langchain_correct": answer_correct(q, lc_top) if lc_top is not None else None,
        "langchain_chars": len(lc_top) if lc_top is not None else None,
        "gold": q.answers[:3],
    }


def near_answer(q: Question, answer, within: int = 150) -> bool:
    """Whether a human answer is within ``within`` characters of a quote (right, give or take a sentence)."""
    for c in answer.citations:
        if q.offsets and c.source == q.doc and any(c.start - within <= o < c.end + within for o in q.offsets):
            return True
        if any(e in c.quote for e in q.evidence) or answer_correct(q, c.quote):
            return True
    return False


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
    first = next(iter(latencies))
    misses = sorted(
        (r for r in answerable if not r["by"][first]["correct"] or not r["rank"] or r["rank"] > 5),
        key=lambda r: (r["rank"] or 99, r["by"][first]["correct"]),
        reverse=True,
    )[:15]
    return {
        "questions_file": str(questions_path),
        "questions": len(rows),
        "answerable": len(answerable),
        "retrieval": retrieval,
        "ratio_to_best_baseline": {m: (retrieval["ours"][m] / b if b else None) for m, b in best_baseline.items()},
        "answers": _answer_figures(rows, list(latencies), "langchain" in systems),
        "per_type": _per_type(rows, systems["ours"], list(latencies)),
        "speed": _speed(latencies, setup, lc_seconds),
        "worst_misses": [
            {**{k: r[k] for k in ("id", "type", "question", "rank", "gold")}, "answer": r["by"][first]["answer"]}
            for r in misses
        ],
        "rows": rows,
    }


def _answer_figures(rows: list[dict], names: list[str], langchain: bool) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answers = {}
    for name in names:
        mine = [r["by"][name] for r in answerable]
        cited = sum(r["by"][name]["citations"] for r in rows)
        answers[name] = {
            "answer_contains": sum(a["correct"] for a in mine) / (len(mine) or 1),
            "within_150_chars": sum(a["near"] for a in mine) / (len(mine) or 1),
            "mean_answer_chars": statistics.mean([a["answer_chars"] for a in mine]) if mine else 0,
            "citation_precision": sum(r["by"][name]["citations_right"] for r in rows) / (cited or 1),
            "refusal_accuracy": (sum(not r["by"][name]["found"] for r in unanswerable) / len(unanswerable))
            if unanswerable
            else None,
            "false_refusal_rate": sum(not a["found"] for a in mine) / (len(mine) or 1),
        }
    if langchain:
        answers["langchain"] = {
            "answer_contains": sum(bool(r["langchain_correct"]) for r in answerable) / (len(answerable) or 1),
            "mean_answer_chars": statistics.mean([r["langchain_chars"] or 0 for r in answerable]) if answerable else 0,
            "refusal_accuracy": 0.0 if unanswerable else None,  # it always answers
            "false_refusal_rate": 0.0,
        }
    return answers


def _per_type(rows: list[dict], ranks: list[int | None], names: list[str]) -> dict:
    per_type = {}
    for t in sorted({r["type"] for r in rows}):
        group = [(r, rank) for r, rank in zip(rows, ranks) if r["type"] == t]
        figures = {
            "questions": len(group),
            "hit@5": sum(1 for r, rank in group if rank and rank <= 5) / len(group) if t != "unanswerable" else None,
        }
        for name in names:
            figures[f"{name} answer_contains"] = (
                sum(r["by"][name]["correct"] for r, _ in group) / len(group) if t != "unanswerable" else None
            )
            figures[f"{name} refused"] = sum(not r["by"][name]["found"] for r, _ in group) / len(group)
        per_type[t] = figures
    return per_type


def _speed(latencies: dict[str, list[float]], setup: _Setup, lc_seconds: float | None) -> dict:
    report, characters = setup.report, setup.characters
    speed = {
        "documents": len(report.files),
        "chunks": report.added + report.unchanged,
        "characters": characters,
        "model_load_seconds": round(setup.model_seconds, 2),
        "ingest_seconds": round(report.seconds, 2),
        "ingest_chars_per_second": round(characters / report.seconds, 1) if report.seconds else None,
        "langchain_index_seconds": round(lc_seconds, 2) if lc_seconds else None,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    for name, values in latencies.items():
        speed[f"{name} ask_p50_ms"] = round(1000 * _percentile(values, 50), 1)
        speed[f"{name} ask_p95_ms"] = round(1000 * _percentile(values, 95), 1)
    return speed
