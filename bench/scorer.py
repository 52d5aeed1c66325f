"""``python -m bench.scorer``: train, calibrate and test the answer scorer; print its figures.

Data: CMRC 2018 dev (simplified) and DRCD dev (traditional) from ``tests/data``.  Each set is
split by *article* (a hash of its title) into fit 60 % / calibrate 20 % / test 20 %, and a
fifth of the articles of every part is left out of the index: their questions have no
answer in the collection and must be refused.  For each question the real retriever reads
the index; every sentence of the retrieved chunks is a candidate, positive when its span
holds a human answer's offset.

- the trees are fitted on the fit part;
- their scores are calibrated (Platt) on the calibrate part, and the refusal threshold is
  chosen there for at most ``--false-refusal`` of answerable questions refused (with
  ``--unlike``, also of that share of them worded least like their answer);
- every figure printed is measured on the test part, which neither step saw.

The seed dev set is never read here.  Rows are cached under ``--work`` (re-running only
re-fits); the model is written to ``rag/data/answer_scorer.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from ui.evaluation.split import PARTS, held_out, part_of

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {
    "cmrc2018": ROOT / "tests" / "data" / "cmrc2018" / "cmrc2018_dev.json",
    "drcd": ROOT / "tests" / "data" / "drcd" / "DRCD_dev.json",
}


def build_rows(name: str, work: Path, per_part: int, seed: int, top_k: int) -> dict:
    """Index the dataset's kept articles, ask a sample of every part, and keep the feature rows."""
    # Rows are kept by what made them: a change to the code that reads questions and
    # sentences makes new ones.
    sources = ("features.py", "question.py", "terms.py", "text.py", "scorer.py", "retrieval.py")
    made_by = hashlib.sha256(b"".join((ROOT / "rag" / f).read_bytes() for f in sources)).hexdigest()[:8]
    cache = work / f"rows-{name}-{per_part}-{seed}-{top_k}-{made_by}.npz"
    if cache.exists():
        return dict(np.load(cache, allow_pickle=False))
    assistant, chosen = indexed_sample(name, work, per_part, seed, top_k)
    return _rows_for(name, chosen, assistant, cache)


def indexed_sample(name: str, work: Path, per_part: int, seed: int, top_k: int = 5):
    """An assistant on the dataset's kept articles (indexed under ``work``, once) and a sample of
    ``per_part`` questions of every part, in part order."""
    from ingest.pipeline import ingest
    from rag.assistant import Assistant
    from rag.config import Settings
    from rag.embeddings import load_embedder
    from ui.evaluation.questions import load_questions

    questions, files = load_questions(DATASETS[name], work / f"corpus-{name}", leave_out=held_out)
    base = Settings.from_env()
    settings = Settings(home=work / f"home-{name}", model_cache=base.model_cache, top_k=top_k)
    embedder = load_embedder(settings)
    began = time.perf_counter()
    report = ingest(files, settings, embedder=embedder)
    print(f"{name}: {len(files)} passages indexed ({report.added} chunks added) in {time.perf_counter() - began:.0f} s")
    sampler = random.Random(seed)
    chosen = []
    for part in PARTS:
        in_part = [q for q in questions if part_of(q.article) == part]
        chosen += sampler.sample(in_part, min(per_part, len(in_part)))
    return Assistant(settings, embedder=embedder), chosen


def _rows_for(name: str, questions: list, assistant, cache: Path) -> dict:
    from rag.question import Question

    scorer = assistant.scorer
    tables, labels, groups, parts, answerable = [], [], [], [], []
    began = time.perf_counter()
    for i, q in enumerate(questions):
        question = Question.parse(q.question)
        hits = assistant.retrieve(q.question)
        sentences, table = scorer.features(question, hits)
        if sentences:
            tables.append(table)
            labels += [any(s.start <= o < s.end for o in q.offsets) and s.hit.source == q.doc for s in sentences]
            groups += [i] * len(sentences)
        parts.append(PARTS.index(part_of(q.article)))
        answerable.append(q.answerable)
        if (i + 1) % 100 == 0:
            print(f"  {name}: {i + 1}/{len(questions)} questions, {time.perf_counter() - began:.0f} s", flush=True)
    data = {
        "features": np.concatenate(tables).astype(np.float32),
        "labels": np.asarray(labels, dtype=np.int8),
        "groups": np.asarray(groups, dtype=np.int32),  # the question of each row
        "parts": np.asarray(parts, dtype=np.int8),  # the part of each question
        "answerable": np.asarray(answerable, dtype=bool),  # of each question
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


def _with_columns(table: np.ndarray, values: dict[str, float]) -> np.ndarray:
    from rag.features import FEATURES

    out = table.copy()
    for name, value in values.items():
        out[:, FEATURES.index(name)] = value
    return out


# A question that shares no words with the collection (English, say): no coverage, no BM25, no
# subjects or kinds read from its words; its similarities are read against the collection's.
BLIND = {
    "coverage": 0.0,
    "lift_x_coverage": 0.0,
    "chunk_coverage": 0.0,
    "title_coverage": 0.0,
    "char_coverage": 0.0,
    "lexical_rank": 0.0,
    "type_asked": 0.0,
    "type_found": 1.0,
    "unit_found": 1.0,
    "subjects": 0.0,
    "subject_in_sentence": 1.0,
    "subject_in_chunk": 1.0,
    "subject_in_article": 1.0,
    "cjk": 0.0,
}


def augment(data: dict) -> dict:
    """The questions as asked (variant 0), and each again as if asked in another language
    (variant 1, ``BLIND``): what the trees for questions that share no words are fitted,
    calibrated and tested on."""
    from rag.features import FEATURES

    n = len(data["parts"])
    blind = _with_columns(data["features"], BLIND)
    blind[:, FEATURES.index("question_length")] *= 3  # English takes about three letters for a character
    return {
        "features": np.concatenate([data["features"], blind]),
        "labels": np.concatenate([data["labels"], data["labels"]]),
        "groups": np.concatenate([data["groups"], data["groups"] + n]),
        "parts": np.concatenate([data["parts"], data["parts"]]),
        "answerable": np.concatenate([data["answerable"], data["answerable"]]),
        "variant": np.concatenate([np.zeros(n, dtype=np.int8), np.ones(n, dtype=np.int8)]),
    }


def merge(sets: list[dict]) -> dict:
    """Several datasets' rows as one, question numbers kept apart."""
    keys = ("features", "labels", "parts", "answerable", "variant")
    out, offset = {k: [] for k in (*keys, "groups")}, 0
    for data in sets:
        for key in keys:
            out[key].append(data[key])
        out["groups"].append(data["groups"] + offset)
        offset += len(data["parts"])
    return {k: np.concatenate(v) for k, v in out.items()}


def rows_of(data: dict, part: str, variant: int | None = None) -> np.ndarray:
    """A mask of the rows whose question is in ``part`` (and of ``variant``)."""
    mask = data["parts"][data["groups"]] == PARTS.index(part)
    if variant is not None:
        mask &= data["variant"][data["groups"]] == variant
    return mask


def fit_trees(data: dict, seed: int, variant: int) -> str:
    """Gradient-boosted trees on the fit part's questions of ``variant``; LightGBM's text format."""
    import lightgbm

    mask = rows_of(data, "fit", variant)
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "verbose": -1,
        "num_threads": 2,
    }
    booster = lightgbm.train(params, lightgbm.Dataset(data["features"][mask], data["labels"][mask]), 300)
    return booster.model_to_string()


def platt(margins: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Calibration of raw scores into probabilities, fitted by logistic regression."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e4).fit(margins.reshape(-1, 1), labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def best_per_question(
    data: dict, probabilities: np.ndarray, part: str, variant: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each question of ``part`` (and ``variant``): its best probability, whether that sentence is a positive, answerable."""
    variants = data.get("variant", np.zeros(len(data["parts"]), dtype=np.int8))
    questions = np.flatnonzero((data["parts"] == PARTS.index(part)) & (variants == variant))
    best = np.zeros(len(questions))
    right = np.zeros(len(questions), dtype=bool)
    starts = np.searchsorted(data["groups"], questions)
    ends = np.searchsorted(data["groups"], questions, side="right")
    for i, (a, b) in enumerate(zip(starts, ends)):
        if b > a:
            top = a + int(np.argmax(probabilities[a:b]))
            best[i], right[i] = probabilities[top], bool(data["labels"][top])
    return best, right, data["answerable"][questions]


def choose_threshold(best: np.ndarray, answerable: np.ndarray, false_refusal: float) -> float:
    """The highest threshold that refuses at most ``false_refusal`` of answerable questions."""
    scores = np.sort(best[answerable])
    allowed = int(np.floor(false_refusal * len(scores)))
    return float(scores[allowed]) if len(scores) else 0.5


def answer_coverage(data: dict, part: str) -> np.ndarray:
    """For each question of ``part`` as asked: the word coverage of its best-covered answer
    sentence among the candidates (NaN when none was retrieved or it has no answer)."""
    from rag.features import FEATURES

    column = FEATURES.index("coverage")
    variants = data.get("variant", np.zeros(len(data["parts"]), dtype=np.int8))
    questions = np.flatnonzero((data["parts"] == PARTS.index(part)) & (variants == 0))
    starts = np.searchsorted(data["groups"], questions)
    ends = np.searchsorted(data["groups"], questions, side="right")
    out = np.full(len(questions), np.nan)
    for i, (a, b) in enumerate(zip(starts, ends)):
        positive = data["labels"][a:b].astype(bool)
        if positive.any():
            out[i] = data["features"][a:b][positive, column].max()
    return out


def worded_unlike(data: dict, part: str, share: float) -> np.ndarray:
    """A mask of the questions of ``part`` whose answer sentence shares the fewest of their words:
    the ``share`` of answerable ones with the lowest ``answer_coverage`` (paraphrase-like)."""
    coverage = answer_coverage(data, part)
    known = ~np.isnan(coverage)
    if not known.any():
        return known
    return known & (coverage <= np.quantile(coverage[known], share))


def figures(best: np.ndarray, right: np.ndarray, answerable: np.ndarray, threshold: float) -> dict:
    """What the scorer does on a part: answers right, refusals, false refusals."""
    answered = best >= threshold
    return {
        "questions": int(len(best)),
        "answerable": int(answerable.sum()),
        "top_sentence_right": float(right[answerable].mean()) if answerable.any() else None,
        "answered_right": float((right & answered)[answerable].sum() / max(1, answered[answerable].sum())),
        "refused_held_out": float((~answered)[~answerable].mean()) if (~answerable).any() else None,
        "false_refusal": float((~answered)[answerable].mean()) if answerable.any() else None,
    }


def coverage_baseline(data: dict, part: str) -> float:
    """Top-sentence accuracy of ranking by lexical coverage alone (as the rule-based answerer does)."""
    from rag.features import FEATURES

    coverage = (
        data["features"][:, FEATURES.index("coverage")] + 0.3 * data["features"][:, FEATURES.index("chunk_coverage")]
    )
    _, right, answerable = best_per_question(data, coverage, part)
    return float(right[answerable].mean())


def fit_and_calibrate(data: dict, variant: int, seed: int, false_refusal: float, unlike: float = 0.0):
    """Trees fitted on the fit part, calibrated and given their threshold on the calibrate part.

    The threshold refuses at most ``false_refusal`` of the answerable questions and, when
    ``unlike`` is set, also of the ``unlike`` share of them worded least like their answer
    (``worded_unlike``): users reword what they ask, and such questions score lower.
    """
    from rag.scorer import Trees

    trees = Trees(fit_trees(data, seed, variant), (1.0, 0.0), 0.5)
    calibrate = rows_of(data, "calibrate", variant)
    trees.platt = platt(trees.margins(data["features"][calibrate]), data["labels"][calibrate])
    best, _, answerable = best_per_question(data, trees.probabilities(data["features"]), "calibrate", variant)
    trees.threshold = choose_threshold(best, answerable, false_refusal)
    if unlike:
        reworded = worded_unlike(data, "calibrate", unlike)
        trees.threshold = min(trees.threshold, choose_threshold(best[reworded], answerable[reworded], false_refusal))
    return trees


UNLIKE_REPORTED = 0.2  # the fifth of test questions worded least like their answer


def _report(model, data: dict, per_set: dict) -> dict:
    """The figures of the calibrate part (what the thresholds were chosen on) and of the test parts."""
    report = {}
    for variant, trees, label in ((0, model.shared, ""), (1, model.meaning, ", no shared words (simulated)")):
        p = trees.probabilities(data["features"])
        report[f"calibrate{label}"] = figures(*best_per_question(data, p, "calibrate", variant), trees.threshold)
        for name, rows in per_set.items():
            p = trees.probabilities(rows["features"])
            report[f"test {name}{label}"] = figures(*best_per_question(rows, p, "test", variant), trees.threshold)
            if not variant:
                report[f"test {name}"]["coverage_rule_top_sentence_right"] = coverage_baseline(rows, "test")
        p = trees.probabilities(data["features"])
        best, right, answerable = best_per_question(data, p, "test", variant)
        report[f"test (all){label}"] = figures(best, right, answerable, trees.threshold)
        reworded = worded_unlike(data, "test", UNLIKE_REPORTED)
        report[f"test (all){label}"]["false_refusal_worded_unlike"] = float(np.mean(best[reworded] < trees.threshold))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scorer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "interview-rag-scorer"))
    parser.add_argument("--per-part", type=int, default=500, help="questions sampled per part and dataset")
    parser.add_argument("--false-refusal", type=float, default=0.03, help="answerable questions refused, at most")
    parser.add_argument(
        "--unlike",
        type=float,
        default=0.0,
        help="the false-refusal aim also holds for this share of calibrate questions worded least like their answer",
    )
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--out", default=None, help="model file (default: the bundled rag/data/answer_scorer.json)")
    args = parser.parse_args(argv)

    from rag.scorer import MODEL_FILE, ScorerModel

    work = Path(args.work)
    per_set = {name: augment(build_rows(name, work, args.per_part, args.seed, args.top_k)) for name in args.datasets}
    data = merge(list(per_set.values()))
    model = ScorerModel(
        *(fit_and_calibrate(data, variant, args.seed, args.false_refusal, args.unlike) for variant in (0, 1))
    )
    report = _report(model, data, per_set)
    model.about = {
        "trained_on": {name: str(DATASETS[name].relative_to(ROOT)) for name in args.datasets},
        "split": "by article title: fit 60 %, calibrate 20 %, test 20 %; 20 % of articles of each part left out of the index",
        "per_part": args.per_part,
        "top_k": args.top_k,
        "seed": args.seed,
        "false_refusal_aim": args.false_refusal,
        "false_refusal_aim_holds_for_worded_unlike": args.unlike,
        "figures": report,
    }
    model.save(Path(args.out) if args.out else MODEL_FILE)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    print(
        f"thresholds {model.shared.threshold:.3f} (Chinese), {model.meaning.threshold:.3f} (no shared words); "
        f"wrote {args.out or MODEL_FILE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
