"""One table of transfer levers over seeds: for each lever and direction, the arm without (A) and with (B) it,
ROC-AUC and accuracy as mean +- sd over seeds, and the paired tests on the same test items.

Usage:
  python benchmarks/transfer_ablation_summary.py --out benchmarks/results/transfer_ablation \\
      --row "taint-flow graph (GNN)|FFmpeg -> QEMU|RUNS/FFmpeg-to-qemu-ast-seed*|RUNS/FFmpeg-to-qemu-taint-seed*" \\
      --row ...
      [--job "none=transfer_merged.json" --job "pair term=transfer_merged_pairs.json" ...]
``--job LEVER=JSON`` adds a side-by-side table of ``make transfer`` variants (benchmarks/transfer.py's JSON: every
set's ROC-AUC with its CI, the pair metrics and the within-file ranking), one row per set and variant.
Each run is a run directory (predictions/test.jsonl, its valid-chosen threshold). Arms are paired by seed
(the same seed numbers must exist on both sides). Tests on items: a paired bootstrap of the difference B - A of the
seed-mean ROC-AUC (resamples of test items shared by both arms, two-sided p), and McNemar on each seed pair's
verdicts (the largest p is reported). Across seeds: a paired t-test of ROC-AUC (with 3 seeds, weak by design).
"""
from __future__ import annotations

import argparse
import glob
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from streamguard.evaluate.metrics import resample_weights, threshold_free_metrics
from streamguard.evaluate.stats import mcnemar
from streamguard.provenance import git_state
from streamguard.rundir import RunDir
from streamguard.thresholds import run_threshold

BOOT = 2000


def _seed(path: str) -> int:
    match = re.search(r"seed-?(\d+)$", path.rstrip("/"))
    if not match:
        raise SystemExit(f"{path}: no -seedN suffix")
    return int(match.group(1))


def arm(pattern: str) -> dict[int, dict[str, Any]]:
    """seed -> the run's test labels, scores (in id order) and verdicts at its own threshold."""
    out = {}
    for path in sorted(glob.glob(pattern)):
        if not RunDir(Path(path)).predictions_path("test").is_file():  # a log file, or a run still training
            continue
        rows = sorted(RunDir(Path(path)).read_predictions("test"), key=lambda r: r["id"])
        thr = run_threshold(Path(path))
        score = np.array([r["prob_vulnerable"] for r in rows])
        out[_seed(path)] = {"ids": [r["id"] for r in rows], "y": np.array([int(r["label"]) for r in rows]),
                            "score": score, "pred": (score >= thr).astype(int)}
    return out


def compare(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]) -> dict[str, Any]:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit("no seed in both arms")
    y = a[seeds[0]]["y"]
    for s in seeds:
        if a[s]["ids"] != a[seeds[0]]["ids"] or b[s]["ids"] != a[seeds[0]]["ids"]:
            raise SystemExit(f"seed {s}: the arms were not tested on the same items")
    w = resample_weights(len(y), BOOT, seed=42)
    boot = {name: np.mean([threshold_free_metrics(w, y, arm_[s]["score"], 0.005)["roc_auc"] for s in seeds], axis=0)
            for name, arm_ in (("a", a), ("b", b))}
    diff = boot["b"] - boot["a"]
    ones = np.ones((1, len(y)))
    auc = {name: [float(threshold_free_metrics(ones, y, arm_[s]["score"], 0.005)["roc_auc"][0]) for s in seeds]
           for name, arm_ in (("a", a), ("b", b))}
    acc = {name: [float(np.mean(arm_[s]["pred"] == y)) for s in seeds] for name, arm_ in (("a", a), ("b", b))}
    mcn = [mcnemar(a[s]["pred"] == y, b[s]["pred"] == y) for s in seeds]
    t_p = float(stats.ttest_rel(auc["b"], auc["a"]).pvalue) if len(seeds) > 1 else None
    return {"seeds": seeds, "n": int(len(y)), "roc_auc": auc, "accuracy": acc,
            "roc_auc_diff": float(np.mean(auc["b"]) - np.mean(auc["a"])),
            "roc_auc_diff_ci": [float(np.nanpercentile(diff, 2.5)), float(np.nanpercentile(diff, 97.5))],
            "roc_auc_diff_p": float(min(1.0, 2 * min(np.nanmean(diff <= 0), np.nanmean(diff >= 0)))),
            "mcnemar_max_p": max(m["p_value"] for m in mcn), "roc_auc_t_p": t_p}


def _ms(values: list[float], pct: bool = False) -> str:
    k = 100 if pct else 1
    fmt = "{:.1f}" if pct else "{:.3f}"
    sd = fmt.format(k * float(np.std(values, ddof=1))) if len(values) > 1 else "-"
    return f"{fmt.format(k * float(np.mean(values)))} +- {sd}"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| lever | direction | seeds | n | ROC-AUC without | ROC-AUC with | difference [95% CI], p (bootstrap) | "
            "accuracy without / with (%) | McNemar max p | t-test p (ROC-AUC over seeds) |\n" + "|---" * 10 + "|")
    lines = [head]
    for r in rows:
        c = r["result"]
        t_p = "-" if c["roc_auc_t_p"] is None else f"{c['roc_auc_t_p']:.2f}"
        lines.append(f"| {r['lever']} | {r['direction']} | {len(c['seeds'])} | {c['n']} | {_ms(c['roc_auc']['a'])} | "
                     f"{_ms(c['roc_auc']['b'])} | {c['roc_auc_diff']:+.3f} [{c['roc_auc_diff_ci'][0]:+.3f}, "
                     f"{c['roc_auc_diff_ci'][1]:+.3f}], p = {c['roc_auc_diff_p']:.3f} | "
                     f"{_ms(c['accuracy']['a'], True)} / {_ms(c['accuracy']['b'], True)} | {c['mcnemar_max_p']:.3g} | "
                     f"{t_p} |")
    return "\n".join(lines)


def job_table(jobs: list[tuple[str, dict[str, Any]]]) -> str:
    """The transfer job's variants side by side, per evaluation set."""
    lines = ["| set | levers | ROC-AUC [95% CI] | vuln > fix | P-C | P-V | P-R | R@5 (chance) |", "|---" * 8 + "|"]
    for name in [r["set"] for r in jobs[0][1]["rows"]]:
        for lever, res in jobs:
            r = next(x for x in res["rows"] if x["set"] == name)
            p, k = r["pairs"], r["ranking"]

            def pair(key: str, p: dict = p) -> str:
                return f"{p[key]:.3f}" if p.get("n_pairs") else "-"
            r5 = f"{k['recall_at_5']:.3f} ({k['chance_recall_at_5']:.3f})" if k.get("n_files") else "-"
            ci = r["roc_auc_ci"]
            lines.append(f"| {name} | {lever} | {r['roc_auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
                         f"| {pair('vulnerable_higher')} | {pair('p_c')} | {pair('p_v')} | {pair('p_r')} | {r5} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", action="append", default=[], metavar="LEVER|DIRECTION|GLOB_A|GLOB_B")
    ap.add_argument("--job", action="append", default=[], metavar="LEVERS=TRANSFER_JSON")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md (the table)")
    args = ap.parse_args()
    rows = []
    for spec in args.row:
        lever, direction, ga, gb = spec.split("|")
        rows.append({"lever": lever, "direction": direction, "a": ga, "b": gb, "result": compare(arm(ga), arm(gb))})
    jobs = [(spec.split("=", 1)[0], json.loads(Path(spec.split("=", 1)[1]).read_text())) for spec in args.job]
    text = "\n\n".join(([table(rows)] if rows else []) + ([job_table(jobs)] if jobs else []))
    args.out.with_suffix(".json").write_text(json.dumps({"git": git_state(), "rows": rows,
                                                         "jobs": {k: v["rows"] for k, v in jobs}}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
