"""The analysers model: logistic regression over log1p of the analyser feature counts, standardised.

Counts in, log-odds out; no file I/O (the kind writes ``to_dict`` as JSON). Line evidence is the linear model's
exact decomposition of the margin against the average training function (``coef * standardised log1p(count)``,
whose mean over train is 0): each feature's share goes to the lines that feature counted, evenly, and a feature
the function lacks altogether (count 0) spreads its share over all lines. The line scores then sum to the margin
less the intercept.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from streamguard.errors import UserError


@dataclass
class AnalyserModel:
    features: list[str]
    rules: list[str]              # the cppcheck rule ids with a feature of their own (features end with them)
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    C: float = 1.0

    def _std(self, counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} analyser features, got shape {counts.shape}")
        return (np.log1p(counts) - np.asarray(self.mean)) / np.asarray(self.scale)

    def margin(self, counts: np.ndarray) -> np.ndarray:
        """The log-odds of "vulnerable" for each row of counts."""
        return self._std(counts) @ np.asarray(self.coef) + self.intercept

    def logits(self, counts: np.ndarray) -> np.ndarray:
        """Two-class logits, the log-odds split symmetrically (as every kind's, for the fusion)."""
        m = self.margin(counts)
        return np.stack([-m / 2.0, m / 2.0], axis=1)

    def contributions(self, counts: np.ndarray) -> np.ndarray:
        """Per row and feature: its share of the margin above the average training function's."""
        return self._std(counts) * np.asarray(self.coef)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AnalyserModel:
        try:
            model = cls(**doc)
        except TypeError as exc:
            raise UserError(f"not an analysers model: {exc}") from None
        if not (len(model.features) == len(model.mean) == len(model.scale) == len(model.coef)):
            raise UserError("not an analysers model: its feature, mean, scale and coef lists differ in length")
        return model


def fit(counts: np.ndarray, y: np.ndarray, features: list[str], rules: list[str], c: float,
        seed: int) -> AnalyserModel:
    """Standardise log1p(counts) on these rows and fit an L2 logistic regression."""
    x = np.log1p(np.asarray(counts, dtype=np.float64))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0  # a feature constant on train carries nothing: keep it finite
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit((x - mean) / scale, y)
    return AnalyserModel(features, list(rules), mean.tolist(), scale.tolist(), clf.coef_[0].tolist(),
                         float(clf.intercept_[0]), c)
