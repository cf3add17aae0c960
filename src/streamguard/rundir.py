"""The one owner of the run-directory format (docs/contracts.md), below both training and evaluation.
``RunDir`` is the only code that names a run directory's files; every other module goes through it:

    RUN/exp_config.json                  what was trained on what, how (``RunDir.write_exp``)
    RUN/predictions/{valid,test}.jsonl   id, label, prob_vulnerable, logits, project (``heldout.jsonl``: cache)
    RUN/threshold.json                   the decision threshold chosen on valid (streamguard.thresholds)
    RUN/metrics.csv                      one row per validated epoch (neural kinds)
    RUN/train_summary.json               the engine's done marker: written last
    RUN/seed-N/                          a member run of a seed ensemble (``--seeds``)
    RUN/base/KIND/, RUN/oof/KIND.jsonl   a fusion's base runs and out-of-fold predictions
    RUN/folds/KIND/[seed-N/]fold-I/      a fusion's fold runs; ``oof.jsonl`` then ``fold_key`` (done marker)

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

from streamguard.atomic import write_json, write_text
from streamguard.data.records import read_jsonl, write_jsonl
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.provenance import environment
from streamguard.redact import redact

EXP_FILE = "exp_config.json"
PREDICTIONS_DIR = "predictions"
THRESHOLD_FILE = "threshold.json"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "train_summary.json"
SEED_PREFIX = "seed-"
BASE_DIR = "base"
OOF_DIR = "oof"
FOLDS_DIR = "folds"
FOLD_PART, FOLD_KEY = "oof.jsonl", "fold_key"  # a fold run's held-out predictions; what it was trained on


class RunDir:
    """One run directory: the paths of its files and their readers and writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- the experiment record
    @property
    def exp_path(self) -> Path:
        return self.path / EXP_FILE

    def is_run(self) -> bool:
        return self.exp_path.is_file()

    def write_exp(self, model: str, data_dir: Path, hyper: dict[str, Any],
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The reproducibility record of every kind: hyperparameters, seed, data checksums and identity, git
        state, package versions, command; ``extra`` adds what a kind knows beyond that (the engine: device)."""
        env = environment()
        data = ProcessedDir(data_dir)
        cfg = {"model": model, "hyperparameters": hyper, "seed": hyper.get("seed"), "data_dir": str(data_dir),
               "data_identity": data.identity(), "data_sha256": data.input_hashes(),
               "raw_sha256": data.raw_hashes(), "git": env.pop("git"), "packages": env.pop("packages"),
               "environment": env, "command": sys.argv, "device": "cpu", **(extra or {})}
        cfg = redact(cfg)  # no credentials from URIs (checkpoint/tracking URIs, the command line) in the record
        write_json(self.exp_path, cfg, sort_keys=True)
        return cfg

    def read_exp(self) -> dict[str, Any]:
        """The record, checked: a UserError when it is missing, not JSON or names no model kind."""
        path = self.exp_path
        if not path.is_file():
            raise UserError(f"{self.path} is not a run directory: {EXP_FILE} is missing")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not valid JSON: {exc.msg}") from None
        if not isinstance(cfg, dict) or "model" not in cfg:
            raise UserError(f"{path} names no model kind")
        return cfg

    def read_exp_lenient(self) -> dict[str, Any]:
        """The record as far as it is readable, ``{}`` otherwise (while a run is being set up)."""
        try:
            cfg = json.loads(self.exp_path.read_text()) if self.exp_path.is_file() else {}
        except json.JSONDecodeError:
            return {}
        return cfg if isinstance(cfg, dict) else {}

    # -- predictions
    def predictions_path(self, split: str) -> Path:
        return self.path / PREDICTIONS_DIR / f"{split}.jsonl"

    def has_predictions(self, split: str) -> bool:
        return self.predictions_path(split).is_file()

    def write_predictions(self, split: str, rows: list[dict[str, Any]]) -> Path:
        """Write one split's predictions (``thresholds.write_predictions`` also records the valid threshold)."""
        path = self.predictions_path(split)
        write_jsonl(path, rows)
        return path

    def read_predictions(self, split: str, missing_ok: bool = False) -> list[dict[str, Any]]:
        """The rows of one split's predictions; a missing file is a UserError (``[]`` with ``missing_ok``)."""
        path = self.predictions_path(split)
        if not path.is_file():
            if missing_ok:
                return []
            raise UserError(f"predictions not found: {path}")
        return read_jsonl(path)

    # -- threshold, metrics, summary
    @property
    def threshold_path(self) -> Path:
        return self.path / THRESHOLD_FILE

    def write_threshold(self, info: dict[str, Any]) -> None:
        write_json(self.threshold_path, info)

    def read_threshold(self) -> dict[str, Any] | None:
        """The recorded threshold record, ``None`` when the run has none; a damaged one is a UserError."""
        if not self.threshold_path.is_file():
            return None
        try:
            info = json.loads(self.threshold_path.read_text())
        except json.JSONDecodeError:
            raise UserError(f"{self.threshold_path} holds no valid threshold") from None
        if not isinstance(info, dict):
            raise UserError(f"{self.threshold_path} holds no valid threshold")
        return info

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def read_metrics(self) -> list[dict[str, float]]:
        """Rows of ``metrics.csv`` as numbers; an empty cell (a metric not logged that epoch) is absent."""
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [{k: int(float(v)) if k == "epoch" else float(v) for k, v in row.items() if v not in (None, "")}
                for row in rows]

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    def clear_summary(self) -> None:
        """Remove the done marker: gone until this run has written its predictions again."""
        self.summary_path.unlink(missing_ok=True)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_path.is_file():
            return {}
        data = json.loads(self.summary_path.read_text())
        return data if isinstance(data, dict) else {}

    def mirrored_files(self) -> list[str]:
        """The files a checkpoint mirror keeps of a finished neural run, relative to the run directory."""
        return [EXP_FILE, METRICS_FILE, SUMMARY_FILE, f"{PREDICTIONS_DIR}/valid.jsonl", f"{PREDICTIONS_DIR}/test.jsonl"]

    # -- seed ensembles
    def seed_dir(self, seed: int) -> Path:
        return self.path / f"{SEED_PREFIX}{seed}"

    def seed_members(self) -> dict[int, Path]:
        """seed -> member run of the ``seed-N`` folders that hold a run (empty for a plain run)."""
        n = len(SEED_PREFIX)
        found = [p for p in self.path.glob(f"{SEED_PREFIX}*") if p.name[n:].isdigit() and RunDir(p).is_run()]
        return {int(p.name[n:]): p for p in sorted(found, key=lambda p: int(p.name[n:]))}

    def seed_folders(self) -> list[Path]:
        """Every ``seed-*`` folder, finished or not, by name."""
        return sorted(self.path.glob(f"{SEED_PREFIX}*"))

    # -- a fusion's base runs and out-of-fold predictions
    def base_dir(self, kind: str) -> Path:
        return self.path / BASE_DIR / kind

    @staticmethod
    def base_rel(kind: str) -> str:
        """The base run's path as the fusion records it (relative to the fusion's run directory)."""
        return f"{BASE_DIR}/{kind}"

    def oof_path(self, kind: str) -> Path:
        return self.path / OOF_DIR / f"{kind}.jsonl"

    def oof_kinds(self) -> list[str]:
        return sorted(p.stem for p in (self.path / OOF_DIR).glob("*.jsonl"))

    def write_oof(self, kind: str, rows: list[dict[str, Any]]) -> None:
        write_jsonl(self.oof_path(kind), rows)

    def read_oof(self, kind: str) -> list[dict[str, Any]]:
        return read_jsonl(self.oof_path(kind))

    def folds_dir(self, kind: str) -> Path:
        return self.path / FOLDS_DIR / kind

    @staticmethod
    def fold_dir(parent: Path, i: int) -> Path:
        return Path(parent) / f"fold-{i}"

    def fold_part(self, key: str) -> list[dict[str, Any]] | None:
        """This fold run's held-out predictions when it finished for ``key`` (same folds and config), else None."""
        done, key_file = self.path / FOLD_PART, self.path / FOLD_KEY
        if done.is_file() and key_file.is_file() and key_file.read_text() == key:
            return read_jsonl(done)
        return None

    def write_fold_part(self, rows: list[dict[str, Any]], key: str) -> Path:
        write_jsonl(self.path / FOLD_PART, rows)
        write_text(self.path / FOLD_KEY, key)  # last: the fold's done marker
        return self.path / FOLD_PART


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


# Thin wrappers kept for the kind modules (train/lexical, gnn, transformer) and scan/explain, which other work
# is moving to RunDir; new code uses RunDir directly.
def write_exp_config(out_dir: Path, model: str, data_dir: Path, hyper: dict[str, Any],
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return RunDir(out_dir).write_exp(model, data_dir, hyper, extra)


def read_exp_config(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).read_exp()


def read_metrics_csv(run_dir: Path) -> list[dict[str, float]]:
    return RunDir(run_dir).read_metrics()
