"""The decision threshold: the one search for the best cut (every kind, the fusion, the evaluation), and a
run's threshold chosen on its valid predictions, recorded in ``threshold.json``.

Every kind writes ``predictions/valid.jsonl``; the cut on ``prob_vulnerable`` that maximises the metric on those
items is recorded beside them, and ``predict``/``scan`` use it unless the user gives ``--threshold``. (The
fusion folds its own threshold into its logits, so its recorded cut sits at about 0.5.)
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.errors import UserError
from streamguard.rundir import PREDICTIONS_DIR, THRESHOLD_FILE, RunDir

__all__ = ["THRESHOLD_FILE", "check", "choose", "choose_threshold", "record", "run_threshold", "verdict"]
log = logging.getLogger(__name__)
DEFAULT = 0.5
VULNERABLE, CLEAN = "vulnerable", "clean"


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def choose(rows: list[dict[str, Any]], metric: str = "accuracy") -> dict[str, Any]:
    """The probability cut that maximises ``metric`` (accuracy or f1) on prediction rows, with its value."""
    margin = np.array([r["logits"][1] - r["logits"][0] for r in rows], dtype=np.float64)
    y = np.array([int(r["label"]) for r in rows])
    if len(rows) == 0 or len(set(y.tolist())) < 2:
        return {"threshold": DEFAULT, "metric": metric, "chosen_on": "default (valid has one class or none)",
                "n_valid": len(rows)}
    cut = choose_threshold(y, margin, metric, neutral=0.0)
    pred = margin >= cut
    value = float((pred == y).mean()) if metric == "accuracy" else \
        float(2 * (pred & (y == 1)).sum() / max(pred.sum() + (y == 1).sum(), 1))
    return {"threshold": _sigmoid(cut), "margin_threshold": cut, "metric": metric, "valid_value": value,
            "chosen_on": f"{PREDICTIONS_DIR}/valid.jsonl", "n_valid": len(rows)}


def record(run_dir: Path, rows: list[dict[str, Any]] | None = None, metric: str = "accuracy") -> dict[str, Any]:
    """Choose on the run's valid predictions (``rows``, else the file) and record it in the run (atomically)."""
    run = RunDir(run_dir)
    if rows is None:
        rows = run.read_predictions("valid", missing_ok=True)
    info = choose(rows, metric)
    run.write_threshold(info)
    return info


def run_threshold(run_dir: Path) -> float:
    """The run's recorded threshold; a run from before thresholds were recorded gets one chosen on its valid
    predictions now (and recorded when the directory is writable); 0.5 when it has none."""
    run = RunDir(run_dir)
    info = run.read_threshold()
    if info is not None:
        try:
            return check(float(info["threshold"]), str(run.threshold_path))
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{run.threshold_path} holds no valid threshold") from None
    rows = run.read_predictions("valid", missing_ok=True)
    try:
        info = record(run_dir, rows)
    except (OSError, UserError):  # a read-only run directory (atomic.py reports it as a UserError)
        info = choose(rows)
    log.info("%s recorded no threshold; chose %.4f on its valid predictions", run_dir, info["threshold"])
    return info["threshold"]


def check(value: float, what: str = "--threshold") -> float:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise UserError(f"{what}: a threshold is a probability in [0, 1], got {value}")
    return value


def verdict(prob: float, threshold: float) -> str:
    return VULNERABLE if prob >= threshold else CLEAN


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
