"""The relevance model's fit on rows of our own: threshold from the calibrate part, figures, round trip."""

from __future__ import annotations

import numpy as np

from bench.relevance import figures, fit, threshold_for
from rag.relevance import Evidence, Logistic, RelevanceModel


def test_fit_threshold_and_figures_separate_on_from_off_topic(tmp_path):
    rng = np.random.default_rng(0)
    on = np.column_stack([rng.uniform(0.6, 1.0, 200), rng.uniform(0.03, 0.08, 200)])
    off = np.column_stack([rng.uniform(0.0, 0.5, 200), rng.uniform(-0.02, 0.03, 200)])
    x, y = np.vstack([on, off]), np.array([True] * 200 + [False] * 200)
    model = fit(x, y)
    p = model.predict_proba(x)[:, 1]
    threshold = threshold_for(p, y, false_refusal=0.05)
    assert (p[y] < threshold).mean() <= 0.05
    result = figures(p, y, threshold)
    assert result["off_topic_refused"] > 0.9 and result["auc"] > 0.95
    shipped = RelevanceModel(
        Logistic(tuple(model.coef_[0]), float(model.intercept_[0]), threshold), Logistic((1.0,), 0.0, 0.5)
    )
    shipped.save(tmp_path / "r.json")
    again = RelevanceModel.load(tmp_path / "r.json")
    assert again.relevant(Evidence(0.9, 0.06), True) and not again.relevant(Evidence(0.1, 0.0), True)
