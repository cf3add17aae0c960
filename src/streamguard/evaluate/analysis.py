"""Numbers for the report: metrics with bootstrap CIs per entry, per seed and per project, and the paired
tests between entries. All entries share the same bootstrap resamples, which is what makes the paired
bootstrap paired."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from streamguard.config import EvaluateConfig
from streamguard.evaluate.entries import Entry, Items
from streamguard.evaluate.metrics import (
    METRICS,
    bootstrap_distribution,
    metrics_from_weights,
    percentile_ci,
    resample_weights,
)
from streamguard.evaluate.stats import bootstrap_difference, holm, mcnemar, seed_tests

SEED_TEST_METRICS = ("accuracy", "f1", "roc_auc")
# CodeXGLUE Defect Detection leaderboard, accuracy (%) on the official test split (data README)
PUBLISHED = {"CodeBERT": 62.08, "PLBART": 63.18, "ReGVD": 63.69, "VulBERTa-MLP": 64.75, "C-BERT": 65.45,
             "CodeT5-base": 65.78, "CoTexT": 66.62, "UniXcoder-nine-MLP": 69.29}


def _summarise(point: list[dict[str, np.ndarray]], dists: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Seed-mean point estimate, spread over seeds, and a CI from the seed-mean of each resample."""
    out: dict[str, Any] = {}
    for m in METRICS:
        per_seed = [float(p[m][0]) for p in point]
        mean_dist = np.mean([d[m] for d in dists], axis=0)
        out[m] = {"value": float(np.mean(per_seed)), "ci": percentile_ci(mean_dist),
                  "std_over_seeds": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
                  "per_seed": per_seed}
    out["confusion_per_seed"] = [{k: round(float(p[k][0])) for k in ("tp", "fp", "tn", "fn")} for p in point]
    return out


def _score(entry: Entry, y: np.ndarray, weights: np.ndarray, idx: np.ndarray | None, thresholds: list[float],
           max_fpr: float) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:
    """Metrics of ``entry`` at ``thresholds`` (one per seed) on items ``idx`` (all when None)."""
    point, dists = [], []
    for scores, t in zip(entry.test, thresholds):
        s = scores if idx is None else scores[idx]
        pred = s >= t
        point.append(metrics_from_weights(np.ones((1, len(s))), y, s, pred, max_fpr))
        dists.append(bootstrap_distribution(weights, y, s, pred, max_fpr))
    return _summarise(point, dists), dists


def entry_metrics(entries: list[Entry], valid: Items, test: Items,
                  cfg: EvaluateConfig) -> tuple[dict[str, Any], dict[str, list[dict[str, np.ndarray]]]]:
    """Per entry: test metrics at the valid-chosen threshold and at the default, plus valid metrics."""
    weights = resample_weights(len(test.ids), cfg.bootstrap, cfg.seed)
    results, all_dists = {}, {}
    for e in entries:
        chosen, dists = _score(e, test.label, weights, None, e.thresholds, cfg.max_fpr)
        default, _ = _score(e, test.label, weights[:0], None, e.defaults, cfg.max_fpr)
        on_valid = [metrics_from_weights(np.ones((1, len(s))), valid.label, s, s >= t, cfg.max_fpr)
                    for s, t in zip(e.valid, e.thresholds)]
        for m in METRICS:  # the default rule is reported without CIs: it is the untuned reference point
            default[m].pop("ci")
        results[e.name] = {"kind": e.kind, "model": e.model, "seeds": e.seeds, "runs": e.runs,
                           "thresholds": e.thresholds, "default_thresholds": e.defaults, **e.extra,
                           "test_at_valid_threshold": chosen, "test_at_default": default,
                           "valid_at_valid_threshold": {m: float(np.mean([v[m][0] for v in on_valid]))
                                                        for m in METRICS}}
        all_dists[e.name] = dists
    return results, all_dists


def per_project(entries: list[Entry], test: Items, cfg: EvaluateConfig) -> dict[str, Any]:
    """Each entry's metrics on each project's test items, with CIs from that project's own resamples."""
    projects = sorted(set(test.project))
    out: dict[str, Any] = {}
    for k, proj in enumerate(projects):
        idx = np.array([i for i, p in enumerate(test.project) if p == proj])
        y = test.label[idx]
        weights = resample_weights(len(idx), cfg.bootstrap, cfg.seed + 1 + k)
        out[proj] = {"n": len(idx), "vulnerable_share": float(y.mean()), "entries": {}}
        for e in entries:
            summary, _ = _score(e, y, weights, idx, e.thresholds, cfg.max_fpr)
            out[proj]["entries"][e.name] = {m: {"value": summary[m]["value"], "ci": summary[m]["ci"]}
                                            for m in METRICS}
    return out


def _seed_pairs(a: Entry, b: Entry) -> list[tuple[int, int]]:
    """Which runs of A and B McNemar compares: matching seeds, else every run against a single-run entry."""
    if len(a.seeds) == 1 or len(b.seeds) == 1:
        return [(i, j) for i in range(len(a.seeds)) for j in range(len(b.seeds))]
    shared = [s for s in a.seeds if s in b.seeds]
    if shared:
        return [(a.seeds.index(s), b.seeds.index(s)) for s in shared]
    return list(zip(range(len(a.seeds)), range(len(b.seeds))))


def paired_tests(entries: list[Entry], test: Items, results: dict[str, Any],
                 dists: dict[str, list[dict[str, np.ndarray]]], primary: str | None = None) -> list[dict[str, Any]]:
    """McNemar (the most conservative p over run pairs) and paired bootstrap of F1 and accuracy differences.

    Holm's adjustment runs over every pair, or with ``primary`` over the pairs that hold that entry only (the
    comparisons a claim rests on); the other pairs are then reported unadjusted (``p_holm`` None)."""
    out = []
    for a, b in itertools.combinations(entries, 2):
        runs = []
        for i, j in _seed_pairs(a, b):
            ok_a = (a.test[i] >= a.thresholds[i]) == test.label.astype(bool)
            ok_b = (b.test[j] >= b.thresholds[j]) == test.label.astype(bool)
            runs.append({"seed_a": a.seeds[i], "seed_b": b.seeds[j], **mcnemar(ok_a, ok_b)})
        worst = max(runs, key=lambda r: r["p_value"])
        row: dict[str, Any] = {"a": a.name, "b": b.name, "mcnemar": {**worst, "runs": runs}}
        for m in ("f1", "accuracy"):
            da = np.mean([d[m] for d in dists[a.name]], axis=0)
            db = np.mean([d[m] for d in dists[b.name]], axis=0)
            observed = (results[a.name]["test_at_valid_threshold"][m]["value"]
                        - results[b.name]["test_at_valid_threshold"][m]["value"])
            row[f"bootstrap_{m}"] = bootstrap_difference(da, db, observed)
        out.append(row)
    family = [r for r in out if primary is None or primary in (r["a"], r["b"])]
    for key in ("mcnemar", "bootstrap_f1", "bootstrap_accuracy"):
        adjusted = holm([r[key]["p_value"] for r in family])
        for r in out:
            r[key]["p_holm"] = None
        for r, p in zip(family, adjusted):
            r[key]["p_holm"] = p
    for r in out:
        r["holm_family"] = primary in (r["a"], r["b"]) if primary else True
    return out


def across_seeds(entries: list[Entry], results: dict[str, Any]) -> list[dict[str, Any]]:
    """t-test and Wilcoxon over shared seeds, for every pair of entries that both have several seeds."""
    multi = [e for e in entries if len(e.seeds) > 1]
    out = []
    for a, b in itertools.combinations(multi, 2):
        row: dict[str, Any] = {"a": a.name, "b": b.name}
        for m in SEED_TEST_METRICS:
            va = dict(zip(a.seeds, results[a.name]["test_at_valid_threshold"][m]["per_seed"]))
            vb = dict(zip(b.seeds, results[b.name]["test_at_valid_threshold"][m]["per_seed"]))
            row[m] = seed_tests(va, vb)
        out.append(row)
    return out


def published_rows() -> list[dict[str, Any]]:
    return [{"name": name, "accuracy": acc / 100, "source": "CodeXGLUE leaderboard",
             "note": "published, not measured"} for name, acc in sorted(PUBLISHED.items(), key=lambda kv: kv[1])]
