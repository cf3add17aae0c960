"""fp32 vs bf16 forward passes when scanning: the same bundles score Devign's official test functions through
the scan path (raw text -> featurize -> predict), once per precision, the precisions taking turns ``--repeats``
times. Reports each bundle's test accuracy (at its own threshold) and ROC-AUC under both, how far the scores
move (max and median |p_bf16 - p_fp32|), how many verdicts flip, and the median wall time of scoring.

    python benchmarks/scan_precision.py --raw data/raw/devign/test.jsonl --bundle transformer=/tmp/b_transformer \
        --bundle gnn=/tmp/b_gnn --bundle fusion=/tmp/b_fusion --out benchmarks/results/scan_precision
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import streamguard
from streamguard.scan.model import native_bf16

PRECISIONS = ("fp32", "bf16")


def _score(bundle: str, precision: str, codes: list[str], workers: int) -> tuple[np.ndarray, float, float]:
    """Probabilities, the bundle's threshold and the wall seconds of scoring (loading excluded)."""
    with streamguard.load(bundle, workers=workers, precision=precision) as det:
        det.score(codes[:8])  # load the weights and start the featurizing pool outside the timing
        t0 = time.perf_counter()
        probs = np.array([s.raw_prob for s in det.score(codes)])
        return probs, det.threshold, time.perf_counter() - t0


def measure(name: str, bundle: str, codes: list[str], labels: np.ndarray, repeats: int, workers: int) -> dict:
    probs: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    threshold = 0.5
    for _ in range(repeats):
        for precision in PRECISIONS:
            probs[precision], threshold, s = _score(bundle, precision, codes, workers)
            seconds[precision].append(round(s, 2))
    row: dict = {"name": name, "bundle": bundle, "threshold": threshold}
    for precision in PRECISIONS:
        p = probs[precision]
        row[precision] = {"accuracy": round(float(((p >= threshold) == labels).mean()), 4),
                          "roc_auc": round(float(roc_auc_score(labels, p)), 4),
                          "seconds_median": statistics.median(seconds[precision]), "seconds_all": seconds[precision]}
    delta = np.abs(probs["bf16"] - probs["fp32"])
    row["max_abs_delta"] = round(float(delta.max()), 5)
    row["median_abs_delta"] = round(float(np.median(delta)), 5)
    row["verdict_flips"] = int(((probs["bf16"] >= threshold) != (probs["fp32"] >= threshold)).sum())
    row["speedup"] = round(row["fp32"]["seconds_median"] / row["bf16"]["seconds_median"], 2)
    return row


def markdown(res: dict) -> str:
    lines = ["# Scanning in bf16 vs fp32 (Devign's official test functions through the scan path)", "",
             f"Command: `{res['command']}`  ", f"Commit {res['commit'][:12]}, {res['date']}; {res['machine']['cpu']}, "
             f"{res['machine']['cores']} cores, native bf16: {res['machine']['native_bf16']}, torch "
             f"{res['machine']['torch']}. {res['functions']} functions; wall time of scoring them (featurizing "
             f"included, loading excluded), median of {res['repeats']}.", "",
             "| bundle | accuracy fp32 / bf16 | ROC-AUC fp32 / bf16 | max / median abs. score change | verdicts "
             "flipped | seconds fp32 / bf16 | speed-up |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        a, b = r["fp32"], r["bf16"]
        lines.append(f"| {r['name']} | {a['accuracy']:.4f} / {b['accuracy']:.4f} | {a['roc_auc']:.4f} / "
                     f"{b['roc_auc']:.4f} | {r['max_abs_delta']:.4f} / {r['median_abs_delta']:.5f} | "
                     f"{r['verdict_flips']} | {a['seconds_median']} / {b['seconds_median']} | {r['speedup']}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", required=True, type=Path, help="CodeXGLUE jsonl (func, target), e.g. the test split")
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH", help="a bundle (repeatable)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per precision (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="featurizing processes (default %(default)s)")
    ap.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = [json.loads(x) for x in args.raw.read_text().splitlines() if x.strip()]
    codes, labels = [r["func"] for r in rows], np.array([int(r["target"]) for r in rows])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    res = {"command": " ".join(["python", *sys.argv]), "commit": commit,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "functions": len(codes),
           "repeats": args.repeats, "machine": {"cpu": cpu, "cores": os.cpu_count(), "native_bf16": native_bf16(),
                                                "torch": torch.__version__},
           "rows": [measure(*b.split("=", 1), codes, labels, args.repeats, args.workers) for b in args.bundle]}
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(res, indent=2) + "\n")
        Path(args.out + ".md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
