"""Benchmark: train the GNN on full Devign and record speed, memory and quality.

Runs ``streamguard train gnn`` as a child process (the command is recorded), timestamps each metric line
to get seconds per epoch, reads peak memory from the child's rusage, and scores the predictions of the
best checkpoint on valid and test. Writes benchmarks/results/<name>.json.

    OMP_WAIT_POLICY=PASSIVE nohup .venv/bin/python benchmarks/gnn_devign.py --name gnn_devign_spec \
        -- --data data/processed/devign --out runs/gnn-devign-spec > runs/gnn-devign-spec.log 2>&1 &
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]


def score(path: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    y = np.array([r["label"] for r in rows])
    p = np.array([r["prob_vulnerable"] for r in rows])
    pred = (p >= 0.5).astype(int)
    return {"n": len(rows), "accuracy": round(float(accuracy_score(y, pred)), 4),
            "roc_auc": round(float(roc_auc_score(y, p)), 4), "f1_vulnerable": round(float(f1_score(y, pred)), 4),
            "predicted_vulnerable_share": round(float(pred.mean()), 4)}


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "load_avg_at_start": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True, help="results file name under benchmarks/results/")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of `train gnn`")
    args = ap.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    out = Path(train_args[train_args.index("--out") + 1])
    cmd = [sys.executable, "-m", "streamguard.cli", "train", "gnn", *train_args]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    start = time.time()
    stamps: list[tuple[float, str]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("epoch="):
                stamps.append((time.time(), line.strip()))
    if proc.returncode != 0:
        sys.exit(f"training failed with exit code {proc.returncode}")
    wall = time.time() - start
    if (out / "train_summary.json").stat().st_mtime < start:  # never report a previous run's files
        sys.exit("training ended without writing train_summary.json")
    exp = json.loads((out / "exp_config.json").read_text())
    summary = json.loads((out / "train_summary.json").read_text())
    epoch_s = np.diff([start] + [t for t, _ in stamps])[1:] if len(stamps) > 1 else np.array([wall])
    n_train = exp["graphs"]["train"]
    curve = list(csv.DictReader((out / "metrics.csv").open()))
    monitor = exp["hyperparameters"]["monitor"]
    best_epoch = int(max(curve, key=lambda r: float(r[monitor]))["epoch"])
    result = {"command": " ".join(["streamguard", "train", "gnn", *train_args]), "machine": machine(),
              "load_avg_at_end": round(os.getloadavg()[0], 2), "data_dir": exp["data_dir"],
              "graphs": exp["graphs"], "train_mean_nodes": exp["train_mean_nodes"], "best_epoch": best_epoch,
              "seconds_per_epoch_incl_validation": {"median": round(float(np.median(epoch_s)), 1),
                                                    "min": round(float(np.min(epoch_s)), 1)},
              "train_graphs_per_s_incl_validation": round(n_train / float(np.median(epoch_s)), 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
              "epochs_run": len(stamps), "early_stopped_at_epoch": summary["stopped_epoch"] or None,
              "wall_s": round(wall, 1), "train_summary": summary,
              "valid": score(out / "predictions" / "valid.jsonl"), "test": score(out / "predictions" / "test.jsonl"),
              "hyperparameters": exp["hyperparameters"], "epoch_lines": [s for _, s in stamps]}
    dest = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("seconds_per_epoch_incl_validation", "valid", "test")}, indent=1))


if __name__ == "__main__":
    main()
