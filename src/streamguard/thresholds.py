"""The decision threshold chosen on validation items: one function for every model kind and the evaluation."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamguard.errors import UserError


def choose_threshold(y: Sequence[int], score: Sequence[float], criterion: str = "accuracy",
                     candidates: Sequence[float] | None = None, neutral: float = 0.5) -> float:
    """The threshold (vulnerable when ``score >= t``) that maximises ``criterion`` on these items.

    Without ``candidates`` every cut between two distinct scores is tried, at the midpoint so that a test
    score between two valid scores falls on a defined side, plus "nothing vulnerable". Ties go to the
    threshold closest to ``neutral``, the untuned default (0.5 for probabilities, 0 for log-odds).
    """
    if criterion not in ("accuracy", "f1"):
        raise UserError(f"threshold criterion must be accuracy or f1, got {criterion!r}")
    y_arr, s_arr = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    if candidates is None:
        vals = np.unique(s_arr)[::-1]
        mids = np.r_[(vals[:-1] + vals[1:]) / 2, vals[-1]] if len(vals) else np.array([0.5])
        cands = np.r_[np.nextafter(vals[0], np.inf) if len(vals) else 1.0, mids]
    else:
        cands = np.asarray(sorted(set(candidates), reverse=True), dtype=float)
    # counts of items at or above each candidate, by binary search rather than a (candidates x n) matrix
    pos_sorted, neg_sorted = np.sort(s_arr[y_arr == 1]), np.sort(s_arr[y_arr == 0])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, cands, side="left")
    fp = len(neg_sorted) - np.searchsorted(neg_sorted, cands, side="left")
    fn = len(pos_sorted) - tp
    tn = len(neg_sorted) - fp
    if criterion == "accuracy":
        value = (tp + tn) / max(len(y_arr), 1)
    else:
        denom = 2 * tp + fp + fn
        value = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    return float(cands[best[np.argmin(np.abs(cands[best] - neutral))]])
