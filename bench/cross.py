"""``python -m bench.cross``: a cross-encoder (question and sentence read together) fitted on the fit part, and measured.

The same pairs as ``bench.finetune`` (CMRC 2018 dev and DRCD dev, fit part, split by article):
each question with the sentence of its passage that holds the answer (label 1), ``--negatives``
other sentences of that passage and one sentence of another passage (label 0).  The model is
e5 with a one-logit head, trained with binary cross-entropy in a plain torch loop (no
``datasets``/``accelerate``); token embeddings stay frozen, as in ``bench.finetune``.

Measured: on the *test* part, the rank of the answer's sentence among its passage's sentences;
on the seed dev set (checked, never fitted), the rank of each question's evidence among all
sentences of the bundled collection, and what a refusal would have to rest on -- the score of
the evidence of answerable questions against the best score any sentence gets for the
unanswerable ones.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from bench.finetune import Example, bundled_sentences, evidence_of, examples, summary


def pairs_of(chosen: list[Example], negatives: int, seed: int) -> list[tuple[str, str, float]]:
    """(question, sentence, label): the answer's sentence, ``negatives`` of its passage, one of another passage."""
    sampler = random.Random(seed)
    out = []
    for example in chosen:
        out.append((example.question, example.sentences[example.answer], 1.0))
        others = [s for i, s in enumerate(example.sentences) if i != example.answer]
        out += [(example.question, s, 0.0) for s in sampler.sample(others, min(negatives, len(others)))]
        out.append((example.question, sampler.choice(sampler.choice(chosen).sentences), 0.0))
    sampler.shuffle(out)
    return out


class Cross:
    """e5 with a one-logit head over "query: …" and "passage: …" read as one input."""

    def __init__(self, folder: Path, max_length: int = 160):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1)
        self.model.base_model.embeddings.word_embeddings.requires_grad_(False)
        self.max_length = max_length

    def logits(self, questions: list[str], sentences: list[str]):
        inputs = self.tokenizer(
            [f"query: {q}" for q in questions],
            [f"passage: {s}" for s in sentences],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        return self.model(**inputs).logits.squeeze(-1)

    def scores(self, question: str, sentences: list[str], batch_size: int = 32) -> np.ndarray:
        """The probability the model gives each sentence of answering ``question``."""
        import torch

        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(sentences), batch_size):
                batch = sentences[start : start + batch_size]
                out += torch.sigmoid(self.logits([question] * len(batch), batch)).tolist()
        return np.asarray(out)

    def train(self, pairs: list[tuple[str, str, float]], batch_size: int, rate: float) -> None:
        import torch

        trained = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=rate)
        steps = max(1, len(pairs) // batch_size)
        warm = max(1, steps // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) * (1 - s / steps))
        loss = torch.nn.BCEWithLogitsLoss()
        self.model.train()
        began = time.perf_counter()
        for step in range(steps):
            batch = pairs[step * batch_size : (step + 1) * batch_size]
            value = loss(self.logits([p[0] for p in batch], [p[1] for p in batch]), torch.tensor([p[2] for p in batch]))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            if step % 50 == 0:
                print(
                    f"  step {step}/{steps}, loss {value.item():.3f}, {time.perf_counter() - began:.0f} s", flush=True
                )
        self.model.eval()


def passage_ranks(cross: Cross, chosen: list[Example]) -> np.ndarray:
    """For each example, the rank (0 = first) of its answer's sentence among its passage's sentences."""
    out = []
    for example in chosen:
        scores = cross.scores(example.question, example.sentences)
        out.append(int((scores > scores[example.answer]).sum()))
    return np.asarray(out)


def seed_figures(cross: Cross) -> dict:
    """Seed dev questions on the bundled collection: evidence ranks and the scores a refusal would rest on."""
    from tests.conftest import load_seed_questions

    sentences = bundled_sentences()
    ranks, evidence_scores, unanswerable_best = {}, {}, []
    for q in load_seed_questions():
        if q.get("history"):
            continue
        scores = cross.scores(q["question"], sentences)
        if q.get("type") == "unanswerable":
            unanswerable_best.append(float(scores.max()))
            continue
        evidence = evidence_of(q, sentences)
        if evidence:
            best = scores[evidence].max()
            ranks.setdefault(q["type"], []).append(int((scores > best).sum()))
            evidence_scores.setdefault(q["type"], []).append(float(best))
    return {"ranks": ranks, "evidence": evidence_scores, "unanswerable_best": unanswerable_best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cross", description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2400, help="fit-part questions trained on")
    parser.add_argument("--negatives", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rate", type=float, default=3e-5)
    parser.add_argument("--test", type=int, default=400, help="test-part questions measured")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    from rag.config import Settings
    from rag.e5_convert import ensure_e5_folder

    torch.manual_seed(args.seed)
    cross = Cross(ensure_e5_folder(Settings.from_env().model_cache))
    fit = random.Random(args.seed).sample(examples("fit"), args.questions)
    test = random.Random(args.seed).sample(examples("test"), args.test)
    pairs = pairs_of(fit, args.negatives, args.seed)
    print(f"{len(pairs):,} pairs from {len(fit):,} fit-part questions; {len(test):,} test-part questions measured")
    began = time.perf_counter()
    cross.train(pairs, args.batch_size, args.rate)
    print(f"trained in {time.perf_counter() - began:.0f} s")
    began = time.perf_counter()
    print(summary("test part, among the passage's sentences", passage_ranks(cross, test)))
    print(f"  ({time.perf_counter() - began:.0f} s)")
    seed = seed_figures(cross)
    for kind, ranks in seed["ranks"].items():
        scores = np.asarray(seed["evidence"][kind])
        print(summary(f"seed {kind}", np.asarray(ranks)) + f"; evidence score median {np.median(scores):.3f}")
    print("seed unanswerable, best score of any sentence: " + " ".join(f"{s:.3f}" for s in seed["unanswerable_best"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
