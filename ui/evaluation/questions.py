"""Question sets for ``rag eval`` and the scorer's training: the project's JSONL, and SQuAD-style JSON
(CMRC 2018, DRCD...), whose passages become the files of a corpus."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


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
        return _load_jsonl(path), []
    data = json.loads(path.read_text(encoding="utf-8"))
    corpus_dir.mkdir(parents=True, exist_ok=True)
    held_out = set(random.Random(seed).sample(range(len(data["data"])), min(holdout, len(data["data"]))))
    questions, files = [], []
    for number, article in enumerate(data["data"]):
        # The article's title heads each of its passages, as a title line heads an interview.
        title = " ".join(str(article.get("title", "")).split())
        header = f"{title}\n" if title else ""
        if leave_out(title) if leave_out else number in held_out:
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
                offsets = [answer_offset(paragraph["context"], a) for a in qa.get("answers", [])]
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


def _load_jsonl(path: Path) -> list[Question]:
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
    return questions


def answer_offset(context: str, answer: dict) -> int | None:
    """Where a human answer stands in its passage: its ``answer_start`` when the text is there,
    else the nearest place the text occurs (a few offsets are off by some characters), else None."""
    text, start = answer.get("text") or "", int(answer.get("answer_start", -1))
    if not text:
        return None
    if start >= 0 and context[start : start + len(text)] == text:
        return start
    places = [i for i in range(len(context)) if context.startswith(text, i)]
    return min(places, key=lambda i: abs(i - start)) if places else None
