"""Paired significance tests: McNemar and paired bootstrap on the same test items, t-test and Wilcoxon
across seeds."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

EXACT_BELOW = 25  # discordant pairs under which McNemar uses the exact binomial test (chi-square is poor there)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test on two classifiers' per-item correctness over the same items.

    ``b`` counts items only A gets right, ``c`` items only B gets right. Exact two-sided binomial test when
    ``b + c`` is small, otherwise chi-square with continuity correction.
    """
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError("McNemar needs predictions on the same items")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "statistic": 0.0, "p_value": 1.0, "method": "no discordant items"}
    if n < EXACT_BELOW:
        p = stats.binomtest(b, n, 0.5, alternative="two-sided").pvalue
        return {"b": b, "c": c, "statistic": float(b), "p_value": float(p), "method": "exact binomial"}
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "statistic": float(chi2), "p_value": float(stats.chi2.sf(chi2, df=1)),
            "method": "chi-square, continuity-corrected"}


def bootstrap_difference(dist_a: np.ndarray, dist_b: np.ndarray, observed: float) -> dict[str, Any]:
    """Summary of a paired bootstrap: ``dist_a`` and ``dist_b`` were computed on the same resamples.

    The two-sided p-value is twice the share of resamples on the far side of zero (at least 1/B, never 0:
    a finite number of resamples cannot show a smaller p).
    """
    diff = np.asarray(dist_a) - np.asarray(dist_b)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        return {"difference": observed, "ci": [None, None], "p_value": None, "resamples": 0}
    share = min(np.mean(diff <= 0), np.mean(diff >= 0))
    p = min(1.0, max(2 * share, 1 / diff.size))
    lo, hi = np.quantile(diff, [0.025, 0.975])
    return {"difference": float(observed), "ci": [float(lo), float(hi)], "p_value": float(p),
            "resamples": int(diff.size)}


def seed_tests(per_seed_a: dict[int, float], per_seed_b: dict[int, float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank over the seeds both models were run with.

    Seeds pair the runs (same data order and initialisation where the trainer honours the seed). With fewer
    than two shared seeds no test is possible; the reason is returned instead of a number.
    """
    seeds = sorted(set(per_seed_a) & set(per_seed_b))
    a = np.array([per_seed_a[s] for s in seeds], dtype=float)
    b = np.array([per_seed_b[s] for s in seeds], dtype=float)
    out: dict[str, Any] = {"seeds": seeds, "n": len(seeds),
                           "mean_difference": float(np.mean(a - b)) if seeds else None}
    if len(seeds) < 2:
        out["t_test"] = out["wilcoxon"] = {"p_value": None, "note": f"needs >= 2 shared seeds, has {len(seeds)}"}
        return out
    diff = a - b
    if np.allclose(diff, diff[0]):
        # identical differences: the t statistic is undefined (zero variance); say so rather than return nan
        out["t_test"] = {"p_value": None, "note": "differences are constant across seeds"}
    else:
        res = stats.ttest_rel(a, b)
        out["t_test"] = {"statistic": float(res.statistic), "p_value": float(res.pvalue)}
    if np.all(diff == 0):
        out["wilcoxon"] = {"p_value": None, "note": "all differences are zero"}
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that small samples give coarse p-values; the note says it
        res_w = stats.wilcoxon(a, b)
    out["wilcoxon"] = {"statistic": float(res_w.statistic), "p_value": float(res_w.pvalue)}
    if len(seeds) < 6:
        out["wilcoxon"]["note"] = f"with {len(seeds)} seeds the smallest possible p-value is above 0.05"
    return out


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None): many pairs are compared in one report."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    order = sorted(idx, key=lambda i: p_values[i])  # type: ignore[arg-type, return-value]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * float(p_values[i])))  # type: ignore[arg-type]
        adjusted[i] = running
    return adjusted
