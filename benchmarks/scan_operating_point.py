"""The scan's default operating point (validation FPR <= 2%) against the accuracy threshold, on held-out collected
data: Big-Vul's rows outside Devign's projects (FFmpeg, QEMU) and ReVeal's Chromium rows, neither trained on.
For each bundle and cut: the flagged share, recall (TPR), FPR and precision at the set's own base rate, and the
precision and flagged share those TPR/FPR give at realistic base rates (5%, 2% vulnerable); then the flagged
share of a real tree (``--tree``).

    python benchmarks/scan_operating_point.py --bundle lexical=/tmp/b_lex --bundle fusion=/tmp/b_fusion \
        --bigvul /work/shared/data/collected/bigvul_subset/all.jsonl \
        --reveal /work/shared/data/collected/reveal_chrome/all.jsonl --tree tests/fixtures/kernel_c \
        --out benchmarks/results/scan_operating_point
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import numpy as np

import streamguard
from streamguard import thresholds

RULES = ("accuracy", "fpr:0.02", "fpr:0.05")
BASE_RATES = (0.05, 0.02)
DEVIGN_PROJECTS = {"ffmpeg", "qemu"}


def _rows(path: Path, limit: int, seed: int) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if str(r.get("project", "")).lower() not in DEVIGN_PROJECTS
            and not r.get("label_conflict")]
    if limit and len(rows) > limit:
        rows = random.Random(seed).sample(rows, limit)
    return rows


def _at(probs: np.ndarray, y: np.ndarray, cut: float) -> dict:
    flag = probs >= cut
    tpr = float(flag[y == 1].mean()) if (y == 1).any() else float("nan")
    fpr = float(flag[y == 0].mean()) if (y == 0).any() else float("nan")
    row = {"threshold": round(cut, 6), "flagged_share": round(float(flag.mean()), 4), "recall": round(tpr, 4),
           "fpr": round(fpr, 4),
           "precision": round(float(y[flag].mean()), 4) if flag.any() else None}
    for pi in BASE_RATES:  # what the same TPR/FPR give where pi of the functions are vulnerable
        share = pi * tpr + (1 - pi) * fpr
        row[f"at_{pi:g}"] = {"flagged_share": round(share, 4),
                             "precision": round(pi * tpr / share, 4) if share > 0 else None}
    return row


def measure(name: str, bundle: str, sets: dict[str, list[dict]], tree: Path | None, workers: int) -> dict:
    out: dict = {"bundle": bundle, "sets": {}}
    with streamguard.load(bundle, workers=workers) as det:
        cuts = {r: thresholds.resolve(r, det.source.model_dir, det.source.threshold) for r in RULES}
        out["cuts"] = {r: p.to_dict() for r, p in cuts.items()}
        for set_name, rows in sets.items():
            t0 = time.perf_counter()
            scores = det.score([r["func"] for r in rows])
            keep = [i for i, s in enumerate(scores) if not np.isnan(s.prob)]  # the cuts are on the raw score
            probs = np.array([scores[i].raw_prob for i in keep])
            y = np.array([int(rows[i]["target"]) for i in keep])
            out["sets"][set_name] = {"n": len(keep), "not_scored": len(rows) - len(keep),
                                     "base_rate": round(float(y.mean()), 4),
                                     "seconds": round(time.perf_counter() - t0, 1),
                                     **{r: _at(probs, y, p.threshold) for r, p in cuts.items()}}
            print(name, set_name, json.dumps(out["sets"][set_name]), file=sys.stderr)
        if tree is not None:
            report = det.scan([tree], root=tree, evidence=0)
            probs = np.array([f.raw for f in report.findings])
            out["tree"] = {"path": str(tree), "functions": len(probs),
                           **{r: round(float((probs >= p.threshold).mean()), 4) for r, p in cuts.items()}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--bigvul", type=Path, required=True)
    ap.add_argument("--reveal", type=Path, default=None)
    ap.add_argument("--tree", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=0, help="rows per set (a seeded sample; 0: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json")
    args = ap.parse_args()
    sets = {"bigvul_heldout": _rows(args.bigvul, args.limit, 0)}
    if args.reveal is not None:
        sets["reveal_chrome"] = _rows(args.reveal, args.limit, 0)
    t0 = time.time()
    results = {name: measure(name, path, sets, args.tree, args.workers)
               for name, path in (b.split("=", 1) for b in args.bundle)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"command": " ".join(["python", *sys.argv]), "commit": commit, "machine": {
        "platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "wall_seconds": round(time.time() - t0, 1), "rules": RULES, "base_rates": BASE_RATES}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
