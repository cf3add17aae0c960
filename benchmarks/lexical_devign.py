"""Benchmark of the lexical baseline on the full processed Devign data: quality, fit time, peak memory.

    python benchmarks/lexical_devign.py --data data/processed/devign \
        [--set analyzer=union ...] [--name lexical_devign]

Writes benchmarks/results/<name>.json (and appends a line to lexical_devign.md) with accuracy, F1 of the
vulnerable class and ROC-AUC on valid and test, the C chosen on valid, wall time, peak RSS, the command and
the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from streamguard.config import LexicalConfig, load_config, to_dict
from streamguard.train.lexical import train

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
               platform.processor())
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "platform": platform.platform(),
            "python": platform.python_version()}


def scores(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    y = np.array([r["label"] for r in rows])
    p = np.array([r["prob_vulnerable"] for r in rows])
    return {"n": len(rows), "accuracy": round(float(accuracy_score(y, p >= 0.5)), 4),
            "f1_vulnerable": round(float(f1_score(y, p >= 0.5)), 4), "roc_auc": round(float(roc_auc_score(y, p)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/processed/devign"))
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-lexical"))
    ap.add_argument("--name", default="lexical_devign")
    args = ap.parse_args()
    cfg = load_config(LexicalConfig, args.config, None, args.set)
    t0 = time.perf_counter()
    train(args.data, args.out, cfg)
    wall = time.perf_counter() - t0
    exp = json.loads((args.out / "exp_config.json").read_text())
    result = {"name": args.name, "config": to_dict(cfg), "selected_C": exp["selected_C"],
              "n_features": exp["n_features"], "c_trials": exp["c_trials"],
              "valid": scores(args.out / "predictions" / "valid.jsonl"),
              "test": scores(args.out / "predictions" / "test.jsonl"),
              "train_seconds_incl_c_grid": round(wall, 1),
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
              "git": exp["environment"]["git"], "data_sha256": exp["data_sha256"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    v, t = result["valid"], result["test"]
    line = (f"| {args.name} | {cfg.analyzer} {cfg.ngram_min}-{cfg.ngram_max} | {result['selected_C']} | "
            f"{v['accuracy']:.4f} | {t['accuracy']:.4f} | {t['f1_vulnerable']:.4f} | {t['roc_auc']:.4f} | "
            f"{result['train_seconds_incl_c_grid']:.0f} | {result['peak_rss_mib']} |\n")
    with open(RESULTS / "lexical_devign.md", "a") as fh:
        fh.write(line)
    print(json.dumps({k: result[k] for k in ("valid", "test", "train_seconds_incl_c_grid", "peak_rss_mib")}))


if __name__ == "__main__":
    main()
