"""Fusion of base models' logits: logits in, logits out; no file I/O.

Both methods end as one linear map of the base models' log-odds, ``z = Z @ w + b``:
- ``weighted``: non-negative weights (a weighted average up to scale) fit by minimising log-loss, so a weak
  or anti-correlated base model gets weight 0 instead of a sign flip learnt from noise;
- ``stacker``: an L2-regularised logistic regression on the log-odds (weights may be negative).
The decision threshold is then folded into the bias, so ``prob_vulnerable >= 0.5`` is the chosen decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from streamguard.errors import UserError

METHODS = ("weighted", "stacker")


@dataclass
class Fusion:
    method: str
    weights: list[float]
    bias: float
    threshold: float = 0.0          # on the fused log-odds; chosen on valid, after the fit
    extra: dict = field(default_factory=dict)

    def margin(self, z: np.ndarray) -> np.ndarray:
        """Fused log-odds before the threshold."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != len(self.weights):
            raise ValueError(f"expected logits of {len(self.weights)} base models, got shape {z.shape}")
        return z @ np.asarray(self.weights) + self.bias

    def logits(self, z: np.ndarray) -> np.ndarray:
        """Two-class logits whose softmax is >= 0.5 exactly when the margin reaches the threshold."""
        m = self.margin(z) - self.threshold
        return np.stack([-m / 2.0, m / 2.0], axis=1)


def _nll(params: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    m = z @ params[:-1] + params[-1]
    # log(1 + e^m) - y*m, stable for large |m|
    loss = np.logaddexp(0.0, m) - y * m
    g = 1.0 / (1.0 + np.exp(-m)) - y
    grad = np.concatenate([z.T @ g, [g.sum()]]) / len(y)
    return float(loss.mean()), grad


def fit_weighted(z: np.ndarray, y: np.ndarray) -> Fusion:
    k = z.shape[1]
    x0 = np.concatenate([np.full(k, 1.0 / k), [0.0]])
    bounds = [(0.0, None)] * k + [(None, None)]
    res = minimize(_nll, x0, args=(z, y.astype(np.float64)), jac=True, method="L-BFGS-B", bounds=bounds)
    return Fusion("weighted", [float(w) for w in res.x[:-1]], float(res.x[-1]),
                  extra={"oof_log_loss": float(res.fun), "converged": bool(res.success)})


def fit_stacker(z: np.ndarray, y: np.ndarray, seed: int) -> Fusion:
    clf = LogisticRegression(C=1.0, random_state=seed).fit(z, y)
    m = z @ clf.coef_[0] + clf.intercept_[0]
    loss = float(np.mean(np.logaddexp(0.0, m) - y * m))
    return Fusion("stacker", [float(w) for w in clf.coef_[0]], float(clf.intercept_[0]),
                  extra={"oof_log_loss": loss})


def fit(z: np.ndarray, y: np.ndarray, method: str, seed: int = 42) -> Fusion:
    """Fit the fusion on out-of-fold logits ``z`` (n, k) of the base models and labels ``y``."""
    z, y = np.asarray(z, dtype=np.float64), np.asarray(y)
    if method not in METHODS:
        raise UserError(f"fusion method must be one of {', '.join(METHODS)}, got {method!r}")
    if len(set(y.tolist())) < 2:
        raise UserError("fusion: the out-of-fold labels hold only one class")
    return fit_weighted(z, y) if method == "weighted" else fit_stacker(z, y, seed)
