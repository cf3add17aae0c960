"""Metrics against sklearn, threshold choice, bootstrap intervals, and the statistical tests."""
from __future__ import annotations

import numpy as np
import pytest
from evaluate_fixtures import devign_labels
from scipy import stats as sps
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from streamguard.evaluate.metrics import (
    bootstrap_distribution,
    percentile_ci,
    point_metrics,
    resample_weights,
)
from streamguard.evaluate.stats import bootstrap_difference, holm, mcnemar, seed_tests
from streamguard.thresholds import choose_threshold


def _real_like(n: int = 600, skill: float = 1.0, seed: int = 0, rounding: int | None = None):
    """Real Devign test labels with probabilities correlated with them (rounded to create ties)."""
    y = np.array([r["target"] for r in devign_labels("test", n)])
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(0, 1.5, len(y)))))
    return y, (np.round(p, rounding) if rounding else p)


@pytest.mark.parametrize("rounding", [None, 2])
def test_point_metrics_match_sklearn(rounding):
    y, p = _real_like(rounding=rounding)
    m = point_metrics(y, p, 0.5)
    pred = p >= 0.5
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    fpr, tpr, _ = roc_curve(y, p)
    assert m["fnr_at_fpr"] == pytest.approx(1 - tpr[fpr <= 0.005].max())
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == len(y)


def test_no_positive_predictions_give_zero_precision_and_f1():
    y = np.array([0, 1, 1, 0])
    m = point_metrics(y, np.zeros(4), 0.5)
    assert m["precision"] == 0 and m["f1"] == 0 and m["accuracy"] == 0.5
    assert np.isnan(point_metrics(np.ones(4, int), np.linspace(0, 1, 4), 0.5)["roc_auc"])


def test_choose_threshold_maximises_the_criterion_on_valid():
    y, p = _real_like(seed=3)
    t_acc = choose_threshold(y, p, "accuracy")
    grid = np.unique(p)
    best_acc = max(np.mean((p >= g) == y) for g in grid)
    assert np.mean((p >= t_acc) == y) == pytest.approx(best_acc)
    t_f1 = choose_threshold(y, p, "f1")
    assert f1_score(y, p >= t_f1) == pytest.approx(max(f1_score(y, p >= g) for g in grid))
    # restricted candidates (a peer's levels): only those may come back
    assert choose_threshold(y, p, "accuracy", candidates=[0.3, 0.9]) in (0.3, 0.9)


def test_bootstrap_is_seeded_contains_the_estimate_and_narrows_with_n():
    widths = []
    for n in (150, 600):
        y, p = _real_like(n=n)
        w = resample_weights(n, 1000, seed=7)
        assert np.array_equal(w, resample_weights(n, 1000, seed=7))
        assert (w.sum(axis=1) == n).all()
        dist = bootstrap_distribution(w, y, p, p >= 0.5, 0.005)
        point = point_metrics(y, p, 0.5)
        for m in ("accuracy", "f1", "roc_auc", "pr_auc"):
            lo, hi = percentile_ci(dist[m])
            assert lo <= point[m] <= hi
        lo, hi = percentile_ci(dist["accuracy"])
        widths.append(hi - lo)
    assert widths[1] < widths[0] * 0.7  # ~1/sqrt(4) in theory


def test_bootstrap_rows_equal_sklearn_on_the_resampled_items():
    y, p = _real_like(n=200, rounding=2)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(y), len(y))
    w = np.bincount(idx, minlength=len(y))[None, :].astype(float)
    dist = bootstrap_distribution(w, y, p, p >= 0.5, 0.005)
    assert dist["roc_auc"][0] == pytest.approx(roc_auc_score(y[idx], p[idx]))
    assert dist["pr_auc"][0] == pytest.approx(average_precision_score(y[idx], p[idx]))
    assert dist["f1"][0] == pytest.approx(f1_score(y[idx], p[idx] >= 0.5))


def test_mcnemar_hand_computed_cases():
    # 10 items only A gets right, 2 only B: exact two-sided binomial, P(X<=2 | 12, 0.5) * 2 = 79/4096 * 2
    a = np.array([1] * 10 + [0] * 2 + [1] * 5 + [0] * 3, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 5 + [0] * 3, bool)
    res = mcnemar(a, b)
    assert (res["b"], res["c"], res["method"]) == (10, 2, "exact binomial")
    assert res["p_value"] == pytest.approx(2 * 79 / 4096)
    # large counts: chi-square with continuity correction, (|40-20|-1)^2 / 60
    a = np.r_[np.ones(40, bool), np.zeros(20, bool)]
    res = mcnemar(a, ~a)
    assert res["statistic"] == pytest.approx(19 ** 2 / 60)
    assert res["p_value"] == pytest.approx(sps.chi2.sf(19 ** 2 / 60, 1))
    assert mcnemar(a, a)["p_value"] == 1.0


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(0)
    better = rng.normal(0.70, 0.01, 1000)
    res = bootstrap_difference(better, better - 0.05, 0.05)
    assert res["ci"][0] > 0 and res["p_value"] == pytest.approx(1 / 1000)
    res = bootstrap_difference(better, better + rng.normal(0, 0.01, 1000), 0.0)
    assert res["ci"][0] < 0 < res["ci"][1] and res["p_value"] > 0.2


def test_seed_tests_match_scipy_and_degrade_gracefully():
    a = {1: 0.64, 2: 0.66, 3: 0.65, 4: 0.67, 5: 0.66, 6: 0.655}
    b = {1: 0.62, 2: 0.63, 3: 0.64, 4: 0.64, 5: 0.61, 6: 0.645}
    res = seed_tests(a, b)
    assert res["t_test"]["p_value"] == pytest.approx(sps.ttest_rel(list(a.values()), list(b.values())).pvalue)
    assert res["wilcoxon"]["p_value"] == pytest.approx(sps.wilcoxon(list(a.values()), list(b.values())).pvalue)
    one = seed_tests({1: 0.6}, {1: 0.5})
    assert one["t_test"]["p_value"] is None and "needs >= 2" in one["t_test"]["note"]
    assert seed_tests({1: 0.6, 2: 0.6}, {1: 0.6, 2: 0.6})["wilcoxon"]["p_value"] is None
    assert seed_tests({1: 0.6}, {2: 0.5})["n"] == 0


def test_holm_adjustment():
    adjusted = holm([0.01, 0.04, None, 0.03])
    assert adjusted[2] is None
    assert [adjusted[i] for i in (0, 1, 3)] == pytest.approx([0.03, 0.06, 0.06])
