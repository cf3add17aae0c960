"""Binary metrics of the vulnerable class, threshold choice on valid, and vectorised bootstrap.

Every metric is computed from per-item weights: a point estimate uses weight 1 for every item, a bootstrap
resample uses how often each item was drawn. One code path for both keeps the point estimate and its
confidence interval consistent, and lets thousands of resamples run as a few matrix products.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "fnr_at_fpr")
CHUNK = 200  # resamples computed at once: bounds memory to a few (CHUNK x n) float arrays


def threshold_free_metrics(w: np.ndarray, y: np.ndarray, score: np.ndarray, max_fpr: float) -> dict[str, np.ndarray]:
    """ROC-AUC, average precision and FNR at FPR <= max_fpr for each row of weights ``w`` (R x n).

    Items with equal scores form one group, so ties are handled as sklearn does (half credit in the AUC,
    one step in the precision-recall curve).
    """
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wo = w[:, order]
    pos = np.add.reduceat(wo * y[order], starts, axis=1)
    neg = np.add.reduceat(wo * (1 - y[order]), starts, axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (n_neg[:, None] - fp + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
        ap = (pos * tp / (tp + fp)).sum(axis=1) / n_pos
        ap = np.where(n_pos > 0, ap, np.nan)
        tpr = tp / n_pos[:, None]
        ok = fp / n_neg[:, None] <= max_fpr + 1e-12
        fnr = 1.0 - np.where(ok, tpr, 0.0).max(axis=1)
    undefined = (n_pos == 0) | (n_neg == 0)
    return {"roc_auc": np.where(undefined, np.nan, auc), "pr_auc": ap,
            "fnr_at_fpr": np.where(undefined, np.nan, fnr)}


def metrics_from_weights(w: np.ndarray, y: np.ndarray, score: np.ndarray, pred: np.ndarray,
                         max_fpr: float) -> dict[str, np.ndarray]:
    """All METRICS (plus confusion counts) for each row of item weights ``w`` (R x n)."""
    y = y.astype(float)
    p = pred.astype(float)
    tp, fp = w @ (y * p), w @ ((1 - y) * p)
    fn, tn = w @ (y * (1 - p)), w @ ((1 - y) * (1 - p))
    with np.errstate(invalid="ignore", divide="ignore"):
        # zero_division=0, as sklearn reports it: no predicted positives means precision 0, not undefined
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        accuracy = (tp + tn) / (tp + tn + fp + fn)
    out = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1,
           "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    out.update(threshold_free_metrics(w, y, score.astype(float), max_fpr))
    return out


def point_metrics(y: Sequence[int], score: Sequence[float], threshold: float,
                  max_fpr: float = 0.005) -> dict[str, float]:
    """The metrics of one set of predictions: vulnerable when ``score >= threshold``."""
    y_arr, s_arr = np.asarray(y), np.asarray(score, dtype=float)
    res = metrics_from_weights(np.ones((1, len(y_arr))), y_arr, s_arr, s_arr >= threshold, max_fpr)
    out = {k: float(v[0]) for k, v in res.items()}
    for k in ("tp", "fp", "tn", "fn"):
        out[k] = round(out[k])
    out["n"] = len(y_arr)
    return out


def resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_boot`` bootstrap resamples (n_boot x n)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_distribution(weights: np.ndarray, y: np.ndarray, score: np.ndarray, pred: np.ndarray,
                           max_fpr: float) -> dict[str, np.ndarray]:
    """Each metric on every resample (rows of ``weights``), computed CHUNK resamples at a time."""
    parts: dict[str, list[np.ndarray]] = {m: [np.empty(0)] for m in METRICS}
    for start in range(0, len(weights), CHUNK):
        res = metrics_from_weights(weights[start:start + CHUNK], y, score, pred, max_fpr)
        for m in METRICS:
            parts[m].append(res[m])
    return {m: np.concatenate(v) for m, v in parts.items()}


def percentile_ci(values: np.ndarray, level: float = 0.95) -> list[float | None]:
    """Percentile interval, ignoring resamples where the metric is undefined (e.g. one class only)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [None, None]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return [float(lo), float(hi)]


