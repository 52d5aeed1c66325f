"""``python -m bench.relevance``: fit, calibrate and test the relevance model of broad questions.

Data: CMRC 2018 dev and DRCD dev, split by article exactly as the answer scorer is
(``ui.evaluation.split``: fit 60 % / calibrate 20 % / test 20 %, a fifth of every part's articles left
out of the index).  A question is on a topic the index holds when its article is indexed, and
on one it does not when its article was left out.  For each question the real retriever reads
the index and ``rag.relevance.Evidence`` is taken from its best five chunks, with the topic
read as the answerer reads it (``rag.passages.Reader.topic``).

- the two logistic models are fitted on the fit part (``shared``: coverage and lift;
  ``meaning``: lift alone, for a question that shares no words with the collection);
- each threshold is set on the calibrate part for at most ``--false-refusal`` of on-topic
  questions refused;
- every figure printed is measured on the test part, which neither step saw.

The conversation sets about the bundled collection are never read here (``rag eval`` checks
them).  Rows are cached under ``--work``; the model is written to ``rag/data/relevance.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from bench.scorer import DATASETS, indexed_sample
from ui.evaluation.split import PARTS, part_of

ROOT = Path(__file__).resolve().parent.parent


def build_rows(name: str, work: Path, per_part: int, seed: int) -> dict:
    """Index the dataset's kept articles, ask a sample of every part, keep (coverage, lift, label, part)."""
    sources = (
        "passages.py",
        "topics.py",
        "articles.py",
        "relevance.py",
        "terms.py",
        "text.py",
        "retrieval.py",
        "question.py",
    )
    made_by = hashlib.sha256(b"".join((ROOT / "rag" / f).read_bytes() for f in sources)).hexdigest()[:8]
    cache = work / f"relevance-{name}-{per_part}-{seed}-{made_by}.npz"
    if cache.exists():
        return dict(np.load(cache, allow_pickle=False))
    from rag.question import Question
    from rag.relevance import Evidence

    assistant, chosen = indexed_sample(name, work, per_part, seed)
    reader = assistant.reader
    rows = []
    began = time.perf_counter()
    for n, q in enumerate(chosen, 1):
        question = Question.parse(q.question)
        hits = assistant.retriever.retrieve(question.text, k=5)
        weights = reader.topic(question, hits)
        evidence = Evidence.of(weights, hits, reader.background(question.text))
        rows.append((evidence.coverage, evidence.lift, q.answerable, PARTS.index(part_of(q.article)), question.cjk))
        if n % 300 == 0:
            print(f"  {name}: {n}/{len(chosen)} questions asked, {time.perf_counter() - began:.0f} s", flush=True)
    table = np.asarray(rows, dtype=np.float64)
    data = {"features": table[:, :2], "labels": table[:, 2].astype(bool), "parts": table[:, 3].astype(np.int8)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


def fit(features: np.ndarray, labels: np.ndarray):
    """A logistic regression of ``labels`` on ``features`` (scikit-learn, lightly regularised)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0, max_iter=1000).fit(features, labels)


def threshold_for(probabilities: np.ndarray, labels: np.ndarray, false_refusal: float) -> float:
    """The highest threshold that refuses at most ``false_refusal`` of the on-topic questions."""
    on_topic = np.sort(probabilities[labels])
    if len(on_topic) == 0:
        return 0.5
    return float(on_topic[int(np.floor(false_refusal * len(on_topic)))])


def figures(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Refusals of off-topic questions and of on-topic ones at ``threshold``, and the ranking's AUC."""
    from sklearn.metrics import roc_auc_score

    refused = probabilities < threshold
    return {
        "questions": int(len(labels)),
        "off_topic": int((~labels).sum()),
        "off_topic_refused": round(float(refused[~labels].mean()), 3) if (~labels).any() else None,
        "on_topic_refused": round(float(refused[labels].mean()), 3) if labels.any() else None,
        "auc": round(float(roc_auc_score(labels, probabilities)), 3) if 0 < labels.sum() < len(labels) else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relevance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "interview-rag-scorer"))
    parser.add_argument("--per-part", type=int, default=300, help="questions sampled per part and dataset")
    parser.add_argument("--false-refusal", type=float, default=0.05, help="on-topic questions refused, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--out", default=None, help="model file (default: the bundled rag/data/relevance.json)")
    args = parser.parse_args(argv)
    from rag.relevance import MODEL_FILE, Logistic, RelevanceModel

    work = Path(args.work)
    data = [build_rows(name, work, args.per_part, args.seed) for name in args.datasets]
    features = np.concatenate([d["features"] for d in data])
    labels = np.concatenate([d["labels"] for d in data])
    parts = np.concatenate([d["parts"] for d in data])
    fit_rows, calibrate_rows, test_rows = (parts == PARTS.index(p) for p in PARTS)
    about: dict = {"datasets": args.datasets, "per_part": args.per_part, "seed": args.seed, "test": {}}
    models = {}
    for name, columns in (("shared", [0, 1]), ("meaning", [1])):
        x = features[:, columns]
        model = fit(x[fit_rows], labels[fit_rows])
        threshold = threshold_for(
            model.predict_proba(x[calibrate_rows])[:, 1], labels[calibrate_rows], args.false_refusal
        )
        models[name] = Logistic(tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]), threshold)
        about["test"][name] = figures(model.predict_proba(x[test_rows])[:, 1], labels[test_rows], threshold)
        print(f"{name}: weights {models[name].weights} bias {models[name].bias:.3f} threshold {threshold:.3f}")
        print(f"  test part: {about['test'][name]}")
    RelevanceModel(models["shared"], models["meaning"], about).save(Path(args.out) if args.out else MODEL_FILE)
    print(f"written: {args.out or MODEL_FILE}")


if __name__ == "__main__":
    main()
