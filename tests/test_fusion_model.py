"""The fusion model: non-negative weights fit by log-loss, the stacker, the threshold on the fused margin."""
from __future__ import annotations

import numpy as np
import pytest

from streamguard.errors import UserError
from streamguard.models.fusion import Fusion, fit
from streamguard.thresholds import choose_threshold


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = (2 * y - 1) * 1.5 + rng.normal(0, 1, n)      # informative log-odds
    noise = rng.normal(0, 3, n)                          # uninformative
    anti = -(2 * y - 1) * 0.5 + rng.normal(0, 1, n)      # anti-correlated: must not get a negative weight
    return np.stack([good, noise, anti], axis=1), y


def test_weighted_is_non_negative_and_ignores_noise() -> None:
    z, y = _data()
    fus = fit(z, y, "weighted")
    assert all(w >= 0 for w in fus.weights)
    assert fus.weights[0] > 1.0 and fus.weights[1] < 0.05 and fus.weights[2] == pytest.approx(0, abs=1e-6)
    # the fit really minimises log-loss: better than equal weights
    def nll(w: np.ndarray, b: float) -> float:
        m = z @ w + b
        return float(np.mean(np.logaddexp(0, m) - y * m))
    assert fus.extra["oof_log_loss"] == pytest.approx(nll(np.array(fus.weights), fus.bias), rel=1e-6)
    assert fus.extra["oof_log_loss"] < nll(np.full(3, 1 / 3), 0.0)


def test_stacker_may_use_negative_weights() -> None:
    z, y = _data()
    fus = fit(z, y, "stacker", seed=1)
    assert fus.method == "stacker" and fus.weights[0] > 0 and fus.weights[2] < 0


def test_logits_fold_in_threshold() -> None:
    fus = Fusion("weighted", [1.0, 2.0], 0.5, threshold=1.0)
    z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = fus.logits(z)
    margin = z @ np.array([1.0, 2.0]) + 0.5 - 1.0
    assert np.allclose(out[:, 1] - out[:, 0], margin) and np.allclose(out.sum(axis=1), 0)
    with pytest.raises(ValueError):
        fus.logits(np.zeros((2, 3)))


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_threshold_is_the_best_cut(metric: str) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    m = y + rng.normal(0, 1.0, 300)
    m[:20] = 0.25  # ties must not be split by the cut
    t = choose_threshold(y, m, metric, neutral=0.0)

    def score(cut: float) -> float:
        pred = m > cut
        if metric == "accuracy":
            return float(np.mean(pred == y))
        tp = np.sum(pred & (y == 1))
        return float(2 * tp / max(pred.sum() + y.sum(), 1))
    brute = max(score(c) for c in np.concatenate([m - 1e-9, m + 1e-9]))
    assert score(t) == pytest.approx(brute) and not np.any(m == t)


def test_bad_method_and_single_class() -> None:
    z, y = _data(100)
    with pytest.raises(UserError, match="method"):
        fit(z, y, "mean")
    with pytest.raises(UserError, match="one class"):
        fit(z, np.zeros(100, dtype=int), "weighted")
