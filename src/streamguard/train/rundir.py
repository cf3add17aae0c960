"""Reading processed splits lightly and writing the run-dir contract (exp_config.json, predictions).

Shared by the lexical kind, the fusion stage and ``streamguard predict``.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.data.records import read_jsonl_lines, write_jsonl
from streamguard.errors import UserError
from streamguard.provenance import environment, sha256_file
from streamguard.train.registry import data_identity

SPLITS = ("train", "valid", "test")


def split_path(data_dir: Path, split: str) -> Path:
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return Path(data_dir) / f"{split}.jsonl"


def read_split(data_dir: Path, split: str, ids: set[str] | None = None,
               keep: tuple[str, ...] = ("id", "label", "code", "metadata")) -> list[dict[str, Any]]:
    """Records of one processed split with only the ``keep`` fields (the token and graph fields of a full
    split take gigabytes as Python objects), restricted to ``ids`` when given; every id must be found."""
    path = split_path(data_dir, split)
    if not path.is_file():
        raise UserError(f"processed split not found: {path}")
    rows = []
    for lineno, obj in read_jsonl_lines(path):
        if not isinstance(obj, dict) or "id" not in obj or obj.get("label") not in (0, 1):
            raise UserError(f"{path}:{lineno}: not a processed record (needs 'id' and a 0/1 'label')")
        if ids is None or obj["id"] in ids:
            rows.append({k: obj.get(k) for k in keep})
    if ids is not None and len(rows) != len(ids):
        missing = sorted(ids - {r["id"] for r in rows})
        raise UserError(f"{len(missing)} requested id(s) are not in {path}, e.g. {missing[0]}")
    return rows


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


def input_hashes(data_dir: Path) -> dict[str, str]:
    files = [split_path(data_dir, s) for s in SPLITS] + [Path(data_dir) / "preprocessing_metadata.json",
                                                          Path(data_dir) / "node_vocab.json"]
    return {p.name: sha256_file(p) for p in files if p.is_file()}


def write_exp_config(out_dir: Path, model: str, data_dir: Path, hyper: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reproducibility record of every kind: hyperparameters, seed, data checksums and identity, git
    state, package versions, command; ``extra`` adds what a kind knows beyond that (the engine: device)."""
    env = environment()
    cfg = {"model": model, "hyperparameters": hyper, "seed": hyper.get("seed"), "data_dir": str(data_dir),
           "data_identity": data_identity(data_dir), "data_sha256": input_hashes(data_dir),
           "git": env.pop("git"), "packages": env.pop("packages"), "environment": env, "command": sys.argv,
           "device": "cpu", **(extra or {})}
    path = Path(out_dir) / "exp_config.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
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
