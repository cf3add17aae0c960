"""Summarise a folder of GNN runs (one per variant): best valid epoch, valid/test metrics of the best checkpoint.

    python benchmarks/gnn_sweep_summary.py RUNS_DIR [--out FILE.json]
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def score(path: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    y = np.array([r["label"] for r in rows])
    p = np.array([r["prob_vulnerable"] for r in rows])
    return {"accuracy": round(float(accuracy_score(y, p >= 0.5)), 4), "roc_auc": round(float(roc_auc_score(y, p)), 4),
            "f1_vulnerable": round(float(f1_score(y, p >= 0.5)), 4)}


def summarise(run: Path) -> dict[str, object]:
    out: dict[str, object] = {"name": run.name}
    if not (run / "predictions" / "test.jsonl").is_file():
        err = run.with_suffix(".err")
        out["error"] = err.read_text()[-1500:] if err.is_file() else "no predictions"
        return out
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    best = max(rows, key=lambda r: float(r["val_roc_auc"]))
    exp = json.loads((run / "exp_config.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    out.update({"overrides": {k: v for k, v in exp["hyperparameters"].items()
                              if k in ("conv", "residual", "norm", "ncs_edges", "ident_edges", "lr",
                                       "warmup_epochs", "precision")},
                "epochs_run": len(rows), "best_epoch": int(best["epoch"]), "wall_s": summary["wall_s"],
                "s_per_epoch": round(summary["wall_s"] / max(1, len(rows)), 1),
                "valid": score(run / "predictions" / "valid.jsonl"), "test": score(run / "predictions" / "test.jsonl"),
                "device": exp["device"].get("cuda")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    results = [summarise(p) for p in sorted(args.runs.iterdir()) if p.is_dir()]
    text = json.dumps(results, indent=1)
    (args.out or args.runs / "summary.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
