"""One table of transfer levers over seeds: for each lever and direction, the arm without (A) and with (B) it,
ROC-AUC and accuracy as mean +- sd over seeds, and the paired tests on the same test items.

Usage:
  python benchmarks/transfer_ablation_summary.py --out benchmarks/results/transfer_ablation \\
      --row "taint-flow graph (GNN)|FFmpeg -> QEMU|RUNS/FFmpeg-to-qemu-ast-seed*|RUNS/FFmpeg-to-qemu-taint-seed*" \\
      --row ...
      --row "taint (GNN)|debian held-out packages|W/predictions-gnn-ast-seed*/merged-gnn-heldout.jsonl|..." \\
      --heldout-data W/processed-taint/heldout-merged \\
      [--job "none=transfer_merged.json" --job "pair term=transfer_merged_pairs.json" ...]
``--job LEVER=JSON`` adds a side-by-side table of ``make transfer`` variants (benchmarks/transfer.py's JSON: every
set's ROC-AUC with its CI, the pair metrics and the within-file ranking), one row per set and variant; a glob that
matches several JSONs (one per seed) gives mean +- sd over them.
Each run is a run directory (predictions/test.jsonl, its valid-chosen threshold), or a held-out predictions file
of the job (``streamguard predict``'s JSONL): then the row's second field names the held-out set
(evaluate/transfer.py HELDOUT_SETS) and ``--heldout-data`` is the job's processed held-out folder. Arms are paired by
seed, the last ``seedN`` in each path (the same seed numbers must exist on both sides). Tests on items: a paired
bootstrap of the difference B - A of the seed-mean ROC-AUC (resamples of test items shared by both arms, two-sided
p), and McNemar on each seed pair's verdicts (the largest p is reported). Across seeds: a paired t-test of ROC-AUC
(with 3 seeds, weak by design).
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
from streamguard.evaluate.transfer import HELDOUT_SETS, LENGTH, heldout_sets, length_rows
from streamguard.provenance import git_state
from streamguard.rundir import RunDir
from streamguard.thresholds import run_threshold

BOOT = 2000


def _seed(path: str) -> int:
    found = re.findall(r"seed-?(\d+)(?=/|$)", path.rstrip("/"))
    if not found:
        raise SystemExit(f"{path}: no seedN in the path")
    return int(found[-1])


def arm(pattern: str, heldout: tuple[str, Path | None] | None = None) -> dict[int, dict[str, Any]]:
    """seed -> the test labels, scores (in id order) and verdicts at the model's own threshold: of each run
    directory the pattern matches, or of each held-out predictions file (``heldout``: the set title and the
    job's processed held-out folder)."""
    out = {}
    for path in sorted(glob.glob(pattern)):
        if path.endswith(".jsonl"):
            title, data = heldout or ("", None)
            if data is None:
                raise SystemExit(f"{path}: a held-out predictions file needs --heldout-data")
            rows = heldout_sets(Path(path), data)[0].get(title)
            if not rows:
                raise SystemExit(f"{path}: no rows of the set {title!r} ({', '.join(t for _, t in HELDOUT_SETS)})")
            thr = float(rows[0]["threshold"])
        elif RunDir(Path(path)).predictions_path("test").is_file():
            rows, thr = RunDir(Path(path)).read_predictions("test"), run_threshold(Path(path))
        else:  # a log file, or a run still training
            continue
        rows = sorted(rows, key=lambda r: r["id"])
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
    head = ("| lever | tested on | seeds | n | ROC-AUC without | ROC-AUC with | difference [95% CI], p (bootstrap) | "
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


def variants(jobs: list[tuple[str, list[dict[str, Any]]]]) -> list[tuple[str, list[list[dict[str, Any]]]]]:
    """Per job variant, each run's model rows; then the length baseline (evaluate/transfer.py LENGTH, the same in
    every run of the job) as a variant of its own."""
    out = [(lever, [[r for r in res["rows"] if r["model"] != LENGTH] for res in results]) for lever, results in jobs]
    out = [(lever, runs) for lever, runs in out if any(runs)]
    length = [[r for r in res["rows"] if r["model"] == LENGTH] for _, results in jobs for res in results]
    return out + [("function length alone (baseline)", [rows]) for rows in length if rows][:1]


def job_table(jobs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The transfer job's variants side by side, per evaluation set; a variant run over several seeds (one result
    each) shows mean +- sd where one run shows its value (ROC-AUC with its 95% CI)."""
    lines = ["| set | levers | runs | ROC-AUC | vuln > fix | P-C | P-V | P-R | R@5 (chance) |", "|---" * 9 + "|"]
    table = variants(jobs)
    sets = dict.fromkeys(r["set"] for _, runs in table for rows in runs for r in rows)
    for name in sets:  # a variant run without some set (cross_project=false) has no line there
        for lever, runs in table:
            rows = [x for run in runs for x in run if x["set"] == name]
            if len(rows) != len(runs):
                continue
            paired, ranked = rows[0]["pairs"].get("n_pairs"), rows[0]["ranking"].get("n_files")

            def cell(get: Any, on: Any = True, rows: list = rows) -> str:
                return _ms([float(get(r)) for r in rows]).replace(" +- -", "") if on else "-"
            auc = cell(lambda r: r["roc_auc"])
            if len(rows) == 1:
                auc += " [{:.3f}, {:.3f}]".format(*rows[0]["roc_auc_ci"])
            chance = f" ({rows[0]['ranking']['chance_recall_at_5']:.3f})" if ranked else ""
            lines.append(f"| {name} | {lever} | {len(rows)} | {auc} | "
                         + " | ".join(cell(lambda r, m=m: r["pairs"][m], paired)
                                      for m in ("vulnerable_higher", "p_c", "p_v", "p_r"))
                         + f" | {cell(lambda r: r['ranking']['recall_at_5'], ranked)}{chance} |")
    return "\n".join(lines)


def job_plot(jobs: list[tuple[str, list[dict[str, Any]]]], path: Path) -> None:
    """ROC-AUC of every job variant on every set (mean, and the sd over runs as a bar), chance and the issue's 0.65
    goal as lines: the table at a glance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    table = variants(jobs)
    sets = list(dict.fromkeys(r["set"] for _, runs in table for rows in runs for r in rows))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(sets)), 4.2))
    width = 0.8 / len(table)
    for k, (lever, runs) in enumerate(table):
        xs, means, sds = [], [], []
        for i, name in enumerate(sets):
            aucs = [r["roc_auc"] for rows in runs for r in rows if r["set"] == name]
            if len(aucs) == len(runs):
                xs.append(i - 0.4 + width * (k + 0.5))
                means.append(float(np.mean(aucs)))
                sds.append(float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0)
        ax.errorbar(xs, means, yerr=sds, fmt="o", capsize=3, label=f"{lever} ({len(runs)} run(s))")
    ax.axhline(0.5, color="grey", lw=1, ls=":")
    ax.axhline(0.65, color="tab:red", lw=1, ls="--", label="goal 0.65")
    ax.set_xticks(range(len(sets)), [s.replace(" ", "\n", 1) for s in sets], fontsize=8)
    ax.set_ylabel("ROC-AUC")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--row", action="append", default=[], metavar="LEVER|DIRECTION|GLOB_A|GLOB_B")
    ap.add_argument("--job", action="append", default=[], metavar="LEVERS=TRANSFER_JSON_GLOB")
    ap.add_argument("--heldout-data", type=Path, default=None,
                    help="the job's processed held-out folder, for rows over held-out predictions files")
    ap.add_argument("--train-data", type=Path, default=None,
                    help="the job's processed train folder: with --heldout-data, adds the length baseline to the "
                         "job table (for results written before the job reported it)")
    ap.add_argument("--out", type=Path, required=True,
                    help="writes OUT.json and OUT.md (the tables), and OUT.png (the job variants' ROC-AUC) with --job")
    args = ap.parse_args()
    rows = []
    for spec in args.row:
        lever, direction, ga, gb = spec.split("|")
        held = (direction, args.heldout_data)
        rows.append({"lever": lever, "direction": direction, "a": ga, "b": gb,
                     "result": compare(arm(ga, held), arm(gb, held))})
    jobs = []
    for spec in args.job:
        lever, pattern = spec.split("=", 1)
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise SystemExit(f"--job {spec}: no file matches")
        jobs.append((lever, [json.loads(Path(p).read_text()) for p in paths]))
    if args.train_data and args.heldout_data and jobs:
        jobs.append(("length", [{"rows": length_rows(args.train_data, args.heldout_data)}]))
    text = "\n\n".join(([table(rows)] if rows else []) + ([job_table(jobs)] if jobs else []))
    jobs_rows = {k: [r["rows"] for r in v] for k, v in jobs}
    args.out.with_suffix(".json").write_text(json.dumps({"git": git_state(), "rows": rows, "jobs": jobs_rows},
                                                        indent=1) + "\n")
    args.out.with_suffix(".md").write_text(text + "\n")
    if jobs:
        job_plot(jobs, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
