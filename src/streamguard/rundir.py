"""The one owner of the run-directory format (docs/contracts.md), below both training and evaluation:

    RUN/exp_config.json          what was trained on what, how (every kind writes it with ``write_exp_config``)
    RUN/predictions/{valid,test}.jsonl   id, label, prob_vulnerable, logits, project
    RUN/metrics.csv              one row per validated epoch (neural kinds)

A run directory is trusted code's output: share models as bundles, not run directories.
"""
from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.atomic import write_json
from streamguard.data.processed import ProcessedDir
from streamguard.data.records import write_jsonl
from streamguard.errors import UserError
from streamguard.provenance import environment
from streamguard.redact import redact

METRICS_FILE = "metrics.csv"

def prediction_rows(records: list[dict[str, Any]], logits: np.ndarray) -> list[dict[str, Any]]:
    """Rows of the predictions contract; the probability is the softmax of the two logits."""
    out = []
    for rec, (l0, l1) in zip(records, np.asarray(logits, dtype=np.float64), strict=True):
        z = float(l1 - l0)
        prob = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        out.append({"id": rec["id"], "label": int(rec["label"]), "prob_vulnerable": prob,
                    "logits": [float(l0), float(l1)], "project": (rec.get("metadata") or {}).get("project", "")})
    return out


def logit_margin(rows: Iterable[dict[str, Any]]) -> np.ndarray:
    """Log-odds of the vulnerable class (l1 - l0) from prediction rows."""
    return np.array([r["logits"][1] - r["logits"][0] for r in rows], dtype=np.float64)


def write_exp_config(out_dir: Path, model: str, data_dir: Path, hyper: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reproducibility record of every kind: hyperparameters, seed, data checksums and identity, git
    state, package versions, command; ``extra`` adds what a kind knows beyond that (the engine: device)."""
    env = environment()
    data = ProcessedDir(data_dir)
    cfg = {"model": model, "hyperparameters": hyper, "seed": hyper.get("seed"), "data_dir": str(data_dir),
           "data_identity": data.identity(), "data_sha256": data.input_hashes(), "raw_sha256": data.raw_hashes(),
           "git": env.pop("git"), "packages": env.pop("packages"), "environment": env, "command": sys.argv,
           "device": "cpu", **(extra or {})}
    cfg = redact(cfg)  # no credentials from URIs (checkpoint/tracking URIs, the command line) in the record
    write_json(Path(out_dir) / "exp_config.json", cfg, sort_keys=True)
    return cfg


def read_exp_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "exp_config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory: exp_config.json is missing")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc.msg}") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise UserError(f"{path} names no model kind")
    return cfg


def write_predictions(out_dir: Path, split: str, rows: list[dict[str, Any]]) -> Path:
    path = Path(out_dir) / "predictions" / f"{split}.jsonl"
    write_jsonl(path, rows)
    if split == "valid":  # every run records the decision threshold chosen on valid
        from streamguard import thresholds
        thresholds.record(out_dir, rows)
    return path


def read_metrics_csv(run_dir: Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` as numbers; an empty cell (a metric not logged that epoch) is absent."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items() if v not in (None, "")}
            for row in rows]
