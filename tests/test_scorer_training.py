"""Training the answer scorer (bench/scorer.py) on made-up rows: the split, the variants, the threshold's promise."""

from __future__ import annotations

import numpy as np
import pytest

from bench import scorer
from rag.features import FEATURES
from ui.evaluation.split import PARTS, held_out, part_of

pytest.importorskip("lightgbm")


def made_up_rows(questions: int = 600, per_question: int = 12, seed: int = 0) -> dict:
    """Questions whose one answer sentence has a higher 'lift' and 'coverage'; a fifth have none."""
    rng = np.random.default_rng(seed)
    features, labels, groups = [], [], []
    answerable = rng.random(questions) > 0.2
    for q in range(questions):
        table = rng.normal(0.0, 0.05, size=(per_question, len(FEATURES))).astype(np.float32)
        table[:, FEATURES.index("cjk")] = 1.0
        label = np.zeros(per_question, dtype=np.int8)
        if answerable[q]:
            table[0, FEATURES.index("lift")] += 0.12
            table[0, FEATURES.index("coverage")] += 0.5
            label[0] = 1
        features.append(table)
        labels.append(label)
        groups += [q] * per_question
    return {
        "features": np.concatenate(features),
        "labels": np.concatenate(labels),
        "groups": np.asarray(groups, dtype=np.int32),
        "parts": rng.choice(3, size=questions, p=[0.6, 0.2, 0.2]).astype(np.int8),
        "answerable": answerable,
    }


def test_articles_split_the_same_way_every_time():
    titles = [f"条目{i}" for i in range(2000)]
    parts = [part_of(t) for t in titles]
    assert parts == [part_of(t) for t in titles]
    shares = [parts.count(p) / len(parts) for p in PARTS]
    assert 0.55 < shares[0] < 0.65 and 0.15 < shares[1] < 0.25 and 0.15 < shares[2] < 0.25
    assert 0.15 < sum(held_out(t) for t in titles) / len(titles) < 0.25


def test_the_blind_variant_reads_no_shared_words():
    data = scorer.augment(made_up_rows(50))
    blind = data["features"][data["variant"][data["groups"]] == 1]
    for name, value in scorer.BLIND.items():
        assert (blind[:, FEATURES.index(name)] == value).all(), name
    assert len(data["parts"]) == 100 and (data["labels"][: len(blind)] == data["labels"][len(blind) :]).all()


def test_threshold_keeps_its_promise_on_the_calibrate_part_and_is_checked_on_test():
    data = scorer.augment(made_up_rows())
    trees = scorer.fit_and_calibrate(data, 0, seed=0, false_refusal=0.03)
    p = trees.probabilities(data["features"])
    calibrate = scorer.figures(*scorer.best_per_question(data, p, "calibrate"), trees.threshold)
    test = scorer.figures(*scorer.best_per_question(data, p, "test"), trees.threshold)
    assert calibrate["false_refusal"] <= 0.03
    assert test["top_sentence_right"] > 0.9 and test["refused_held_out"] > 0.8 and test["false_refusal"] < 0.1
    assert 0 < trees.threshold < 1 and trees.platt[0] > 0


def test_the_threshold_also_keeps_its_promise_for_questions_worded_unlike_their_answer():
    rows = made_up_rows()
    rng = np.random.default_rng(1)
    reworded = rng.random(len(rows["parts"])) < 0.3  # their answer shares fewer words and is less alike
    for q in np.flatnonzero(reworded & rows["answerable"]):
        first = np.flatnonzero(rows["groups"] == q)[0]
        rows["features"][first, FEATURES.index("coverage")] -= 0.4
        rows["features"][first, FEATURES.index("lift")] -= 0.06
    data = scorer.augment(rows)
    plain = scorer.fit_and_calibrate(data, 0, seed=0, false_refusal=0.03)
    careful = scorer.fit_and_calibrate(data, 0, seed=0, false_refusal=0.03, unlike=0.2)
    unlike = scorer.worded_unlike(data, "calibrate", 0.2)
    coverage = scorer.answer_coverage(data, "calibrate")
    assert unlike.sum() >= 10 and np.nanmax(coverage[unlike]) < np.nanmin(coverage[~np.isnan(coverage) & ~unlike])
    best, _, answerable = scorer.best_per_question(data, plain.probabilities(data["features"]), "calibrate")
    assert np.mean(best[unlike & answerable] < plain.threshold) > 0.03  # what the plain threshold does to them
    best, _, answerable = scorer.best_per_question(data, careful.probabilities(data["features"]), "calibrate")
    assert careful.threshold < plain.threshold
    assert np.mean(best[unlike & answerable] < careful.threshold) <= 0.03
    assert np.mean(best[answerable] < careful.threshold) <= 0.03
