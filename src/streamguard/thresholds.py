"""The decision threshold: the one search for the best cut (every kind, the fusion, the evaluation), and a
run's threshold chosen on its valid predictions, recorded in ``threshold.json``.

Every kind writes ``predictions/valid.jsonl``; the cut on ``prob_vulnerable`` that maximises the metric on those
items is recorded beside them, and ``predict``/``scan`` use it unless the user gives ``--threshold``. (The
fusion folds its own threshold into its logits, so its recorded cut sits at about 0.5.)

Beside that accuracy cut, ``threshold.json`` records the validation ROC curve and the operating point for a target
false-positive rate (``operating_point``, default 2%, with its FNR): the accuracy cut was chosen where about half
of the functions are vulnerable and flags about half of a real project, so ``scan`` uses the low-FPR one by default
(``resolve``: ``accuracy``, ``fpr:0.01`` or a number).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.errors import UserError
from streamguard.rundir import PREDICTIONS_DIR, THRESHOLD_FILE, RunDir

__all__ = ["THRESHOLD_FILE", "check", "choose", "choose_threshold", "record", "run_threshold", "verdict",
           "write_predictions"]
log = logging.getLogger(__name__)
DEFAULT = 0.5
VULNERABLE, CLEAN = "vulnerable", "clean"
FPR_TARGET = 0.02   # the default operating point of ``scan``: at most 2% of clean validation functions flagged


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


def write_predictions(run_dir: Path, split: str, rows: list[dict[str, Any]]) -> Path:
    """A run's predictions of one split; every run records the decision threshold chosen on its valid ones."""
    path = RunDir(run_dir).write_predictions(split, rows)
    if split == "valid":
        record(run_dir, rows)
    return path


def record(run_dir: Path, rows: list[dict[str, Any]] | None = None, metric: str = "accuracy") -> dict[str, Any]:
    """Choose on the run's valid predictions (``rows``, else the file) and record it in the run (atomically)."""
    run = RunDir(run_dir)
    if rows is None:
        rows = run.read_predictions("valid", missing_ok=True)
    info = choose(rows, metric)
    info.update(_rates(rows, info.get("margin_threshold")))
    info.update(roc_record(rows))
    run.write_threshold(info)
    return info


def _rates(rows: list[dict[str, Any]], margin: float | None) -> dict[str, float]:
    """The validation FPR and FNR at a cut on the logit margin (none without both classes)."""
    y = np.array([int(r["label"]) for r in rows])
    if margin is None or not (y == 0).any() or not (y == 1).any():
        return {}
    flag = np.array([r["logits"][1] - r["logits"][0] for r in rows]) >= margin
    return {"valid_fpr": round(float(flag[y == 0].mean()), 6), "valid_fnr": round(float((~flag[y == 1]).mean()), 6)}


def _accuracy_rates(model_dir: Path) -> tuple[float | None, float | None]:
    """The accuracy cut's validation FPR and FNR: recorded, or from the run's valid predictions, else unknown."""
    info = _lenient_record(model_dir)
    if "valid_fpr" not in info and "margin_threshold" in info:
        info = _rates(_read_valid(Path(model_dir)), info["margin_threshold"])
    return info.get("valid_fpr"), info.get("valid_fnr")


def _read_valid(run_dir: Path) -> list[dict[str, Any]]:
    return RunDir(run_dir).read_predictions("valid", missing_ok=True)


def _lenient_record(model_dir: Path) -> dict[str, Any]:
    """The recorded threshold record, or {} when it is missing or damaged (the caller falls back)."""
    try:
        return RunDir(model_dir).read_threshold() or {}
    except (OSError, UserError):
        return {}


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


def roc_record(rows: list[dict[str, Any]], target: float = FPR_TARGET) -> dict[str, Any]:
    """The validation ROC curve (its corners: enough to pick a cut for any FPR target later, also from a bundle
    that carries no predictions) and the operating point at ``target``; empty when valid has one class."""
    y = np.array([int(r["label"]) for r in rows])
    if len(rows) == 0 or len(set(y.tolist())) < 2:
        return {}
    from sklearn.metrics import roc_curve
    margin = np.array([r["logits"][1] - r["logits"][0] for r in rows], dtype=np.float64)
    fpr, tpr, cut = roc_curve(y, margin, drop_intermediate=True)
    roc = {"margin": [float(c) for c in cut[1:]], "fpr": [round(float(v), 6) for v in fpr[1:]],
           "tpr": [round(float(v), 6) for v in tpr[1:]], "n_pos": int(y.sum()), "n_neg": int(len(y) - y.sum())}
    return {"valid_roc": roc, "operating_point": point_at_fpr(roc, target)}


def point_at_fpr(roc: dict[str, Any], target: float) -> dict[str, Any]:
    """The lowest cut whose validation FPR is at most ``target`` (flagged: ``prob >= threshold``), with the FPR,
    the FNR and the share of valid functions it flags there."""
    best = None
    for margin, fpr, tpr in zip(roc["margin"], roc["fpr"], roc["tpr"]):
        if fpr <= target + 1e-12 and math.isfinite(margin):
            best = (margin, fpr, tpr)  # the corners run from the strictest cut down: keep the last that fits
    n_pos, n_neg = roc["n_pos"], roc["n_neg"]
    if best is None:  # not even the strictest cut fits: flag nothing
        return {"target_fpr": target, "threshold": 1.0, "fpr": 0.0, "fnr": 1.0, "valid_flagged_share": 0.0}
    margin, fpr, tpr = best
    share = (tpr * n_pos + fpr * n_neg) / max(n_pos + n_neg, 1)
    return {"target_fpr": target, "threshold": _sigmoid(margin), "margin_threshold": margin, "fpr": fpr,
            "fnr": round(1 - tpr, 6), "valid_flagged_share": round(share, 6)}


@dataclass(frozen=True)
class OperatingPoint:
    """The verdict cut a scan uses and why: ``rule`` is ``fpr:T``, ``accuracy``, ``fixed`` or ``max-findings``."""
    threshold: float
    rule: str
    fpr: float | None = None        # on the validation split, where known
    fnr: float | None = None
    note: str = ""                  # e.g. why the default fell back to the accuracy cut

    def describe(self) -> str:
        what = {"accuracy": "the cut that maximised accuracy on validation", "fixed": "given on the command line",
                "max-findings": "the N highest scores"}.get(self.rule)
        what = what or f"chosen for a validation FPR of at most {self.rule[4:]}"
        if self.fpr is not None:
            what += f" (validation FPR {self.fpr:.3f}, FNR {self.fnr:.3f} there)"
        return f"threshold {self.threshold:.4f}: {what}" + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "rule": self.rule, "valid_fpr": self.fpr, "valid_fnr": self.fnr,
                "note": self.note, "description": self.describe()}


def model_roc(model_dir: Path) -> dict[str, Any] | None:
    """The validation ROC of a run directory or a bundle's ``model/`` folder: recorded in ``threshold.json``, or
    computed from ``predictions/valid.jsonl`` for a run recorded before ROC curves were (never written back: a
    bundle's files are signed). None when neither is there (a bundle exported before this record)."""
    roc = _lenient_record(model_dir).get("valid_roc")
    if isinstance(roc, dict) and all(isinstance(roc.get(k), list) for k in ("margin", "fpr", "tpr")):
        return roc
    rows = _read_valid(Path(model_dir))
    return roc_record(rows).get("valid_roc") if rows else None


def resolve(spec: str | None, model_dir: Path, accuracy: float) -> OperatingPoint:
    """The cut for ``--threshold``: None (the default, ``fpr:FPR_TARGET``), ``accuracy`` (the run's recorded
    cut, ``accuracy``), ``fpr:X`` (validation FPR at most X) or a probability."""
    text = (spec or f"fpr:{FPR_TARGET}").strip().lower()
    if text == "accuracy":
        return OperatingPoint(accuracy, "accuracy", *_accuracy_rates(model_dir))
    if not text.startswith("fpr:"):
        try:
            return OperatingPoint(check(float(text)), "fixed")
        except ValueError:
            raise UserError(f"--threshold takes accuracy, fpr:RATE or a probability, got {spec!r}") from None
    try:
        target = float(text[4:])
    except ValueError:
        target = float("nan")
    if not 0.0 <= target < 1.0:  # NaN fails too
        raise UserError(f"--threshold fpr:RATE needs a rate in [0, 1), got {spec!r}")
    roc = model_roc(model_dir)
    if roc is None:
        return OperatingPoint(accuracy, "accuracy", note=f"this model records no validation ROC (exported before "
                              f"operating points were); fell back to the accuracy cut instead of fpr:{target:g}: "
                              "re-export it from its run to get one")
    point = point_at_fpr(roc, target)
    return OperatingPoint(point["threshold"], f"fpr:{target:g}", point["fpr"], point["fnr"])


def scan_point(spec: str | None, max_findings: int | None, model_dir: Path, accuracy: float) -> OperatingPoint:
    """``scan``'s cut from ``--threshold`` and ``--max-findings``: alone, ``--max-findings N`` flags the N highest
    whatever their score (the report applies N once the scores are known)."""
    if max_findings is not None and max_findings < 0:
        raise UserError(f"--max-findings must be at least 0, got {max_findings}")
    if max_findings is not None and spec is None:
        return OperatingPoint(0.0, "max-findings")
    return resolve(spec, model_dir, accuracy)


def export_record(run_dir: Path) -> dict[str, Any]:
    """What a bundle's ``model/threshold.json`` holds: the run's accuracy cut, ROC corners and operating point."""
    info: dict[str, Any] = {"threshold": run_threshold(run_dir)}
    fpr, fnr = _accuracy_rates(run_dir)
    if fpr is not None:
        info.update(valid_fpr=fpr, valid_fnr=fnr)
    roc = model_roc(run_dir)
    if roc is not None:
        info.update({"valid_roc": roc, "operating_point": point_at_fpr(roc, FPR_TARGET)})
    return info
