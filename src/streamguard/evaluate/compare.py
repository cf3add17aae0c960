"""``streamguard compare``: phase 1 vs phase 2 (or any two models run with the same seeds), on Devign's test and on
the held-out collected data, with the statistics of docs/phases.md.

Per run, the threshold is chosen on its own valid predictions (accuracy, as ``evaluate`` does). Test items of the
two phases are paired by position: the merge keeps the base's valid/test rows and their order, and the labels are
checked to agree. Per metric and item set:
- the value per seed, the mean difference (B - A) with its 95% CI and p from a paired bootstrap over items
  (each resample scores every seed of both phases on the same items; the statistic is the difference of the
  seed means), the paired t-test and Wilcoxon over seeds (``stats.seed_tests``), and the effect size d_z
  (mean / sd of the per-seed differences; None when they do not vary);
- McNemar over items on the seed-majority vote of each phase (accuracy-type metrics).
Pair accuracy: a before/after pair (same ``pair_id`` in the raw rows) counts as right when both members are.
"""
from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from streamguard.data.labels import monitor
from streamguard.errors import UserError
from streamguard.evaluate.metrics import resample_weights
from streamguard.evaluate.stats import bootstrap_difference, mcnemar, seed_tests
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields
from streamguard.rundir import RunDir
from streamguard.thresholds import choose_threshold

METRICS = ("accuracy", "roc_auc", "f1_vulnerable")


def find_runs(spec: str) -> dict[int, Path]:
    """seed -> run dir: a folder of ``seed-N`` runs, a glob, or one run."""
    p = Path(spec)
    paths = RunDir(p).seed_folders() if p.is_dir() and not RunDir(p).is_run() else \
        sorted(Path(x) for x in glob.glob(spec)) if glob.has_magic(spec) else [p]
    runs = {}
    for path in paths:
        seed = RunDir(path).read_exp().get("seed")
        if seed in runs:
            raise UserError(f"{spec}: seed {seed} appears twice")
        runs[int(seed if seed is not None else 0)] = path
    if not runs:
        raise UserError(f"no run matches {spec!r}")
    return runs


def _read(run: Path, split: str) -> list[dict]:
    return RunDir(run).read_predictions(split)


def heldout_predictions(run: Path, heldout: Path) -> list[dict]:
    """The run's predictions on the held-out data (cached as the run's ``heldout`` predictions)."""
    from streamguard.data.records import write_jsonl
    from streamguard.train import registry
    cache = RunDir(run).predictions_path("heldout")
    if not cache.is_file():
        rows = registry.get(RunDir(run).read_exp()["model"]).predict(run, heldout, "test")
        write_jsonl(cache, rows)  # a cache, not a run's predictions: no threshold is recorded from it
    return _read(run, "heldout")


def _scores(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r["label"] for r in rows]), np.array([r["prob_vulnerable"] for r in rows], dtype=float)


def _metrics(y: np.ndarray, s: np.ndarray, t: float, w: np.ndarray | None = None) -> dict[str, float]:
    w = np.ones(len(y)) if w is None else w
    pred = s >= t
    tp, fp, fn = (w * (pred & (y == 1))).sum(), (w * (pred & (y == 0))).sum(), (w * (~pred & (y == 1))).sum()
    out = {"accuracy": float((w * (pred == (y == 1))).sum() / w.sum()),
           "f1_vulnerable": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0}
    pos = w > 0
    out["roc_auc"] = float(roc_auc_score(y[pos], s[pos], sample_weight=w[pos])) if len(set(y[pos])) == 2 \
        else float("nan")
    return out


def _pairs(ids: list[str], pair_of: dict[str, str]) -> list[tuple[int, int]]:
    """Index pairs (before, after) of complete before/after pairs among ``ids``."""
    members: dict[str, list[int]] = {}
    for k, i in enumerate(ids):
        if pair_of.get(i):
            members.setdefault(pair_of[i], []).append(k)
    return [(m[0], m[1]) for m in members.values() if len(m) == 2]


def _pair_correct(y: np.ndarray, s: np.ndarray, t: float, pairs: list[tuple[int, int]]) -> np.ndarray:
    right = (s >= t) == (y == 1)
    return np.array([right[a] and right[b] for a, b in pairs], dtype=bool)


Scored = dict[int, tuple[np.ndarray, float]]  # seed -> (scores, threshold)


def _effect(diffs: list[float]) -> float | None:
    d = np.asarray(diffs, dtype=float)
    return float(d.mean() / d.std(ddof=1)) if len(d) > 1 and d.std(ddof=1) > 0 else None


def _majority(y: np.ndarray, scored: Scored, seeds: list[int]) -> np.ndarray:
    votes = np.mean([(scored[s][0] >= scored[s][1]) for s in seeds], axis=0)
    return (votes > 0.5) == (y == 1)


def compare_items(y: np.ndarray, a: Scored, b: Scored, n_boot: int = 1000, seed: int = 0,
                  pairs: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    """Every statistic of the module's docstring for one item set (``a`` and ``b`` score the same items)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise UserError(f"the two phases share no seed (A: {sorted(a)}, B: {sorted(b)})")
    weights = resample_weights(len(y), n_boot, seed)
    per_seed = {ph: {s: _metrics(y, *sc[s]) for s in seeds} for ph, sc in (("a", a), ("b", b))}
    dist = {ph: np.array([[np.mean([_metrics(y, *sc[s], w)[m] for s in seeds]) for m in METRICS] for w in weights])
            for ph, sc in (("a", a), ("b", b))}
    out: dict[str, Any] = {"n_items": int(len(y)), "seeds": seeds, "metrics": {}}
    for k, m in enumerate(METRICS):
        va, vb = ({s: per_seed[ph][s][m] for s in seeds} for ph in ("a", "b"))
        observed = float(np.mean(list(vb.values())) - np.mean(list(va.values())))
        out["metrics"][m] = {
            "a_per_seed": va, "b_per_seed": vb, "a_mean": float(np.mean(list(va.values()))),
            "b_mean": float(np.mean(list(vb.values()))),
            "bootstrap": bootstrap_difference(dist["b"][:, k], dist["a"][:, k], observed),
            "seeds": seed_tests(vb, va), "effect_size_dz": _effect([vb[s] - va[s] for s in seeds])}
    out["metrics"]["accuracy"]["mcnemar_majority_vote"] = mcnemar(_majority(y, b, seeds), _majority(y, a, seeds))
    if pairs:
        out["pair_accuracy"] = _pair_stats(y, a, b, seeds, pairs, n_boot, seed)
    return out


def _pair_stats(y, a: Scored, b: Scored, seeds: list[int], pairs, n_boot: int, seed: int) -> dict[str, Any]:
    ca = {s: _pair_correct(y, *a[s], pairs) for s in seeds}
    cb = {s: _pair_correct(y, *b[s], pairs) for s in seeds}
    w = resample_weights(len(pairs), n_boot, seed + 1)
    da = (w @ np.mean([ca[s] for s in seeds], axis=0)) / w.sum(axis=1)
    db = (w @ np.mean([cb[s] for s in seeds], axis=0)) / w.sum(axis=1)
    va, vb = {s: float(ca[s].mean()) for s in seeds}, {s: float(cb[s].mean()) for s in seeds}
    observed = float(np.mean(list(vb.values())) - np.mean(list(va.values())))
    maj = {ph: np.mean([c[s] for s in seeds], axis=0) > 0.5 for ph, c in (("a", ca), ("b", cb))}
    return {"n_pairs": len(pairs), "a_per_seed": va, "b_per_seed": vb, "a_mean": float(np.mean(list(va.values()))),
            "b_mean": float(np.mean(list(vb.values()))), "bootstrap": bootstrap_difference(db, da, observed),
            "seeds": seed_tests(vb, va), "effect_size_dz": _effect([vb[s] - va[s] for s in seeds]),
            "mcnemar_majority_vote": mcnemar(maj["b"], maj["a"])}


def _scored(runs: dict[int, Path], rows_of) -> tuple[list[str], np.ndarray, Scored]:
    """Per seed: the run's scores on an item set and the threshold chosen on its own valid predictions."""
    ids, y, scored = None, None, {}
    for s, run in runs.items():
        vy, vs = _scores(_read(run, "valid"))
        rows = rows_of(run)
        ys, ss = _scores(rows)
        if y is not None and not np.array_equal(ys, y):
            raise UserError(f"{run}: labels differ from the other runs' on the same items")
        ids, y = [r["id"] for r in rows], ys
        scored[s] = (ss, choose_threshold(vy, vs, "accuracy"))
    return ids, y, scored


def _subset(scored: Scored, idx: np.ndarray) -> Scored:
    return {s: (v[0][idx], v[1]) for s, v in scored.items()}


def _breakdown(y, a: Scored, b: Scored, groups: list[str], n_boot: int, top: int = 8) -> dict[str, Any]:
    """Per group (source, project): the seed-mean metrics of both phases and the bootstrap CI of the change."""
    out = {}
    values, counts = np.unique(np.array(groups), return_counts=True)
    for g in values[np.argsort(-counts)][:top]:
        idx = np.flatnonzero(np.array(groups) == g)
        res = compare_items(y[idx], _subset(a, idx), _subset(b, idx), n_boot)
        out[str(g)] = {"n": int(len(idx)), "vulnerable_share": round(float(y[idx].mean()), 4),
                       **{m: {k: res["metrics"][m][k] for k in ("a_mean", "b_mean")} |
                          {"ci": res["metrics"][m]["bootstrap"]["ci"]} for m in ("accuracy", "roc_auc")}}
    return out


def _train_rows(runs: dict[int, Path]) -> list[dict]:
    data = Path(RunDir(next(iter(runs.values()))).read_exp()["data_dir"])
    recs = ProcessedDir(data).read_split("train", keep=("id", "label", "metadata"))
    extra = raw_fields(data, "train", recs)
    return [{"label": r["label"], **extra[r["id"]]} for r in recs]


def _check_paired(ids_a: list[str], ids_b: list[str], ya: np.ndarray, yb: np.ndarray) -> None:
    rows = [i.rsplit("-", 1)[-1] for i in ids_a] == [i.rsplit("-", 1)[-1] for i in ids_b]
    if len(ids_a) != len(ids_b) or not rows or not np.array_equal(ya, yb):
        raise UserError("the two phases' test predictions are not the same items in the same order "
                        "(was phase 2's data merged with phase 1's raw data as --base?)")


def compare(a_spec: str, b_spec: str, out: Path, heldout: Path | None = None, heldout_b: Path | None = None,
            names: tuple[str, ...] = ("phase1", "phase2"), n_boot: int = 1000) -> dict[str, Any]:
    ra, rb = find_runs(a_spec), find_runs(b_spec)
    ids_a, ya, sa = _scored(ra, lambda r: _read(r, "test"))
    ids_b, yb, sb = _scored(rb, lambda r: _read(r, "test"))
    _check_paired(ids_a, ids_b, ya, yb)
    res: dict[str, Any] = {"a": {"name": names[0], "runs": {s: str(p) for s, p in ra.items()}},
                           "b": {"name": names[1], "runs": {s: str(p) for s, p in rb.items()}},
                           "bootstrap": n_boot, "sets": {"devign_test": compare_items(ya, sa, sb, n_boot)}}
    named = {f"{names[0]} train": _train_rows(ra), f"{names[1]} train": _train_rows(rb)}
    if heldout is not None:
        ids_h, yh, ha = _scored(ra, lambda r: heldout_predictions(r, heldout))
        ids_h2, _, hb = _scored(rb, lambda r: heldout_predictions(r, heldout_b or heldout))
        _check_paired(ids_h, ids_h2, yh, yh)
        recs = ProcessedDir(heldout).read_split("test", keep=("id", "label", "metadata"))
        info = raw_fields(heldout, "test", recs)
        pair_of = {i: f"{v['source']}:{v['pair_id']}" if v["pair_id"] else "" for i, v in info.items()}
        held = compare_items(yh, ha, hb, n_boot, pairs=_pairs(ids_h, pair_of))
        held["by_source"] = _breakdown(yh, ha, hb, [info[i]["source"] for i in ids_h], max(200, n_boot // 5))
        held["by_project"] = _breakdown(yh, ha, hb, [info[i]["project"] for i in ids_h], max(200, n_boot // 5))
        res["sets"]["heldout"] = held
        named["heldout"] = [{"label": r["label"], **info[r["id"]]} for r in recs]
    res["labels"] = monitor(named, f"{names[0]} train")
    res["verdict"] = verdict(res)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    from streamguard.evaluate.compare_report import write_markdown
    write_markdown(out / "report.md", res)
    print(f"compare: {res['verdict']['summary']} -> {out}/report.md")
    return res


def verdict(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's goal: held-out ROC-AUC up by >= 0.05, Devign test accuracy not significantly lower."""
    acc = res["sets"]["devign_test"]["metrics"]["accuracy"]
    acc_drop = acc["bootstrap"]["difference"] < 0 and (acc["bootstrap"]["p_value"] or 1) < 0.05
    held = res["sets"].get("heldout")
    if held is None:
        return {"goal_met": None, "summary": f"Devign test accuracy {acc['bootstrap']['difference']:+.4f}"
                                             f"{' (significant drop)' if acc_drop else ''}; no held-out set"}
    auc = held["metrics"]["roc_auc"]["bootstrap"]["difference"]
    met = auc >= 0.05 and not acc_drop
    # a gain carried by one source (e.g. its formatting or base rate) is not a gain on unseen code in general
    by_source = {g: round(v["roc_auc"]["b_mean"] - v["roc_auc"]["a_mean"], 4)
                 for g, v in held.get("by_source", {}).items()}
    parts = ", ".join(f"{g} {d:+.3f}" for g, d in by_source.items())
    return {"goal_met": met, "heldout_auc_difference": auc, "devign_accuracy_significant_drop": acc_drop,
            "heldout_auc_difference_by_source": by_source,
            "summary": f"held-out ROC-AUC {auc:+.4f} (goal +0.05; by source: {parts or 'n/a'}), Devign test "
                       f"accuracy {acc['bootstrap']['difference']:+.4f}{' (significant drop)' if acc_drop else ''}: "
                       f"goal {'met' if met else 'not met'}"}
