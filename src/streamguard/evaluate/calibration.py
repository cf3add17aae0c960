"""Calibrated scores: a map from a model's raw P(vulnerable) to a probability that matches observed frequencies,
fitted on a run's validation predictions, and the measures of how well a score is calibrated.

Two methods, both serialised as plain JSON (no pickle):

- ``temperature``: one float T; the calibrated score is ``sigmoid(logit(p) / T)``. Strictly increasing, so the
  ranking of functions (and every verdict cut moved with it) is unchanged.
- ``isotonic``: scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` on p; kept as its breakpoints
  ``x``/``y`` and applied with ``numpy.interp`` (which clips outside ``x`` as the fitted model does). It is only
  non-decreasing: functions in one flat step share a score.

``ece`` is the expected calibration error over 15 equal-width bins; ``reliability`` the diagram's data.
The measured comparison of the two is benchmarks/results/calibration.md; ``DEFAULT_METHOD`` follows it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 15
METHODS = ("temperature", "isotonic")
DEFAULT_METHOD = "temperature"  # benchmarks/results/calibration.md: as good on test and held-out, keeps the ranking
FORMAT = 1
_EPS = 1e-7  # probabilities are clipped into [eps, 1 - eps] before the logit: a score of exactly 0 or 1 is finite


def logit(p: Any) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q) - np.log1p(-q)


def sigmoid(z: Any) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))  # stable at both ends


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    s = z / t
    return float(np.mean(np.logaddexp(0.0, s) - y * s))  # -log-likelihood of Bernoulli(sigmoid(s))


def fit_temperature(p: Sequence[float], y: Sequence[int]) -> float:
    """The T > 0 minimising the NLL of ``sigmoid(logit(p) / T)`` against ``y`` (searched on log T)."""
    from scipy.optimize import minimize_scalar
    z, yy = logit(p), np.asarray(y, dtype=np.float64)
    res = minimize_scalar(lambda lt: _nll(z, yy, float(np.exp(lt))), bounds=(-5.0, 5.0), method="bounded",
                          options={"xatol": 1e-6})
    return float(np.exp(res.x))


def fit_isotonic(p: Sequence[float], y: Sequence[int]) -> tuple[list[float], list[float]]:
    """The breakpoints (x, y) of the isotonic regression of ``y`` on ``p`` (clipped outside x)."""
    from sklearn.isotonic import IsotonicRegression
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(p, float), np.asarray(y, float))
    return [float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_]


def ece(p: Sequence[float], y: Sequence[int], bins: int = BINS) -> float:
    """Expected calibration error: the share-weighted |mean score - share positive| over equal-width bins."""
    rel = reliability(p, y, bins)
    n = sum(rel["count"])
    return float(sum(c * abs(m - f) for c, m, f in zip(rel["count"], rel["mean_score"], rel["positive_share"])
                     ) / n) if n else 0.0


def brier(p: Sequence[float], y: Sequence[int]) -> float:
    pp, yy = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.mean((pp - yy) ** 2)) if len(pp) else 0.0


def reliability(p: Sequence[float], y: Sequence[int], bins: int = BINS) -> dict[str, list[float]]:
    """The reliability diagram's points: per non-empty bin, its mean score, share positive and count."""
    pp, yy = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    which = np.clip((pp * bins).astype(int), 0, bins - 1)  # bin b holds [b/bins, (b+1)/bins); 1.0 in the last
    out: dict[str, list[float]] = {"bin_low": [], "mean_score": [], "positive_share": [], "count": []}
    for b in range(bins):
        m = which == b
        if m.any():
            out["bin_low"].append(b / bins)
            out["mean_score"].append(float(pp[m].mean()))
            out["positive_share"].append(float(yy[m].mean()))
            out["count"].append(int(m.sum()))
    return out


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration: ``method`` is the one applied; both methods' parameters are kept, with the
    validation (and, when known, test) ECE and Brier score of the raw and each calibrated score."""
    method: str = "none"
    temperature: float = 1.0
    iso_x: tuple[float, ...] = ()
    iso_y: tuple[float, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.method in METHODS

    def apply(self, p: Any, method: str | None = None) -> np.ndarray:
        """Calibrated scores of raw probabilities ``p`` (``method`` overrides the chosen one)."""
        how = method or self.method
        if how == "temperature":
            return sigmoid(logit(p) / self.temperature)
        if how == "isotonic":
            return np.interp(np.asarray(p, dtype=np.float64), self.iso_x, self.iso_y)
        return np.asarray(p, dtype=np.float64)

    def one(self, p: float) -> float:
        return float(self.apply([p])[0])

    def ece_before_after(self, split: str = "valid") -> tuple[float | None, float | None]:
        s = self.stats.get(split) or {}
        return s.get("ece_raw"), s.get(f"ece_{self.method}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "method": self.method, "temperature": self.temperature,
                "isotonic": {"x": list(self.iso_x), "y": list(self.iso_y)}, "bins": BINS, **self.stats}

    @classmethod
    def from_dict(cls, doc: Any) -> Calibration:
        """Checked: a damaged calibration is a ValueError (the bundle owner turns it into a refusal)."""
        if not isinstance(doc, dict) or doc.get("method") not in (*METHODS, "none"):
            raise ValueError("no known calibration method")
        t = float(doc.get("temperature", 1.0))
        iso = doc.get("isotonic") or {}
        x, y = [float(v) for v in iso.get("x") or []], [float(v) for v in iso.get("y") or []]
        if not (np.isfinite(t) and t > 0) or len(x) != len(y) or (doc["method"] == "isotonic" and not x) \
                or not all(np.isfinite(x + y)) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ValueError("temperature must be a positive number; isotonic x/y non-decreasing, same length")
        stats = {k: v for k, v in doc.items() if k not in ("format", "method", "temperature", "isotonic", "bins")}
        return cls(doc["method"], t, tuple(x), tuple(y), stats)


def _measure(cal: Calibration, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(len(p)), "ece_raw": ece(p, y), "brier_raw": brier(p, y)}
    for m in METHODS:
        q = cal.apply(p, m)
        out[f"ece_{m}"], out[f"brier_{m}"] = ece(q, y), brier(q, y)
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def fit(p_valid: Sequence[float], y_valid: Sequence[int], method: str = DEFAULT_METHOD,
        test: tuple[Sequence[float], Sequence[int]] | None = None) -> Calibration:
    """Both methods fitted on validation scores and labels; ``method`` is the one applied. With one class (or
    none) in valid nothing can be fitted: the identity (``method`` "none")."""
    p, y = np.asarray(p_valid, dtype=np.float64), np.asarray(y_valid, dtype=np.float64)
    if len(p) == 0 or len(np.unique(y)) < 2:
        return Calibration("none", stats={"note": "valid has one class or none: not calibrated"})
    x_iso, y_iso = fit_isotonic(p, y)
    cal = Calibration(method, fit_temperature(p, y), tuple(x_iso), tuple(y_iso))
    stats: dict[str, Any] = {"fitted_on": "valid", "valid": _measure(cal, p, y)}
    if test is not None and len(test[0]):
        stats["test"] = _measure(cal, np.asarray(test[0], float), np.asarray(test[1], float))
    return Calibration(cal.method, cal.temperature, cal.iso_x, cal.iso_y, stats)


def fit_rows(valid: list[dict[str, Any]], test: list[dict[str, Any]] | None = None,
             method: str = DEFAULT_METHOD) -> Calibration:
    """``fit`` on prediction rows (``prob_vulnerable``, ``label``: the RunDir predictions contract)."""
    def arr(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([float(r["prob_vulnerable"]) for r in rows]), np.array([int(r["label"]) for r in rows]))
    return fit(*arr(valid), method, arr(test) if test else None)


def fit_run(run_dir: Any, method: str = DEFAULT_METHOD) -> Calibration:
    """The calibration of a run directory, fitted on its valid predictions (measured on test when it has one)."""
    from streamguard.rundir import RunDir
    run = RunDir(run_dir)
    return fit_rows(run.read_predictions("valid", missing_ok=True), run.read_predictions("test", missing_ok=True),
                    method)
