"""The ``analysers`` kind: flawfinder and cppcheck findings as features of a small logistic regression.

A model kind like the others (streamguard.train.kinds), so the fusion trains it out of fold and exports it as a
base model (``fuse --models lexical,analysers``). It reads the whole raw functions (as the peers do) and runs
both tools on them at train, predict and scan time: a missing tool stops the command with one line saying how
to install it (exit 2). A member cannot be scored as absent, since the fusion's weights were fit with it.
Findings are kept per function text in memory, so the fold and full models of a fusion (one process) analyse
each function once; ``cache_dir`` keeps them on disk too, for other processes (a rerun, the other direction of a
cross-project pair).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from streamguard import atomic
from streamguard.atomic import make_dir
from streamguard.config import AnalysersConfig, to_dict
from streamguard.errors import UserError
from streamguard.features import analyser_vector as vec
from streamguard.features.analysers import analyse
from streamguard.features.processed import ProcessedDir
from streamguard.models import loaded
from streamguard.models.analysers import AnalyserModel, fit
from streamguard.rundir import prediction_rows, read_exp_config, write_exp_config
from streamguard.runlock import locked
from streamguard.thresholds import write_predictions
from streamguard.train import kinds, mlflow_store

log = logging.getLogger(__name__)
MODEL_FILE = "analysers_model.json"
CONFIG = AnalysersConfig
BUNDLE_FILES = (MODEL_FILE,)


def _found(data: ProcessedDir, split: str, recs: list[dict[str, Any]], cfg: AnalysersConfig
           ) -> tuple[list[str], list[dict[str, list[Any]]]]:
    """The raw functions of ``recs`` and both tools' findings in them."""
    codes = data.raw_functions(split, recs)
    return codes, analyse(codes, Path(cfg.cache_dir) if cfg.cache_dir else None, cfg.jobs, f"{split} functions")


def train(data_dir: Path, out_dir: Path, cfg: AnalysersConfig | None = None,
          train_ids: set[str] | None = None) -> Path:
    out_dir = Path(out_dir)
    make_dir(out_dir, "run directory")
    with locked(out_dir, "run directory"):
        return _train(ProcessedDir(data_dir), out_dir, cfg or AnalysersConfig(), train_ids)


def _select(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, features: list[str], rules: list[str],
            cfg: AnalysersConfig) -> tuple[AnalyserModel, list[dict[str, float]]]:
    """One model per C; the lowest valid log-loss wins (the fusion wants calibrated log-odds)."""
    if not cfg.c_grid:
        raise UserError("config key 'c_grid': needs at least one value")
    best, trials = None, []
    for c in cfg.c_grid:
        model = fit(x, y, features, rules, c, cfg.seed)
        margin = model.margin(xv)
        prob = np.clip(1.0 / (1.0 + np.exp(-margin)), 1e-7, 1 - 1e-7)
        trial = {"C": c, "log_loss": float(log_loss(yv, prob, labels=[0, 1])),
                 "roc_auc": float(roc_auc_score(yv, margin)) if len(set(yv.tolist())) == 2 else float("nan")}
        trials.append(trial)
        if best is None or trial["log_loss"] < best[1]["log_loss"]:
            best = (model, trial)
    return best[0], trials


def _train(data: ProcessedDir, out_dir: Path, cfg: AnalysersConfig, train_ids: set[str] | None) -> Path:
    t0 = time.perf_counter()
    tr, va = data.read_split("train", ids=train_ids), data.read_split("valid")
    if len({r["label"] for r in tr}) < 2:
        raise UserError("analysers: the training items hold only one class")
    codes, found = _found(data, "train", tr, cfg)
    rules = vec.top_rule_ids(found, cfg.top_rules)
    x = vec.matrix(codes, found, rules)
    xv = vec.matrix(*_found(data, "valid", va, cfg), rules)
    y, yv = np.array([r["label"] for r in tr]), np.array([r["label"] for r in va])
    model, trials = _select(x, y, xv, yv, vec.feature_names(rules), rules, cfg)
    atomic.write_json(out_dir / MODEL_FILE, model.to_dict())
    write_predictions(out_dir, "valid", prediction_rows(va, model.logits(xv)))
    if data.has_split("test"):
        write_predictions(out_dir, "test", _predict(model, cfg, data, "test"))
    write_exp_config(out_dir, "analysers", data.path, to_dict(cfg), {
        "selected_C": model.C, "c_trials": trials, "rules": rules, "n_train": len(tr),
        "fold_mode": train_ids is not None, "fit_seconds": round(time.perf_counter() - t0, 1)})
    mlflow_store.record_run(out_dir, "analysers", {**to_dict(cfg), "selected_C": model.C},
                            {"features": len(model.features)})
    log.info("analysers: C=%g chosen on valid, %d features, %.0f s", model.C, len(model.features),
             time.perf_counter() - t0)
    return out_dir


def loaded_model(model_dir: Path) -> AnalyserModel:
    """The model, read once per process (JSON only: loading runs no code)."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"{model_dir} has no {MODEL_FILE}; the analysers run did not finish")
    return loaded.cached("analysers", Path(model_dir),
                         lambda: AnalyserModel.from_dict(json.loads(path.read_text())), BUNDLE_FILES)


def _predict(model: AnalyserModel, cfg: AnalysersConfig, data: ProcessedDir, split: str,
             ids: set[str] | None = None) -> list[dict]:
    recs = data.read_split(split, ids=ids)
    kinds.check_ids([r["id"] for r in recs], ids, data.path)
    x = vec.matrix(*_found(data, split, recs, cfg), model.rules)
    return prediction_rows(recs, model.logits(x))


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    exp, data = kinds.open_run(run_dir, data_dir, "analysers")
    return _predict(loaded_model(run_dir), config_from_run(exp), data, split, ids)


# --- the rest of the kind contract (streamguard.train.kinds) -------------------------------------------------

def config_from_run(exp: dict[str, Any]) -> AnalysersConfig:
    return kinds.config_from_run(AnalysersConfig, exp)


def export_files(run: Path, dst: Path) -> None:
    kinds.copy_files(run, dst, BUNDLE_FILES, "analysers")


def uses_torch(model_dir: Path) -> bool:
    return False


def reads_features(model_dir: Path) -> bool:
    return False  # the raw function text only: scan skips tokenizing and parsing for it


def line_scores(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Each feature's share of the margin (``AnalyserModel.contributions``) split evenly over the lines it
    counted (a flawfinder hit's line, a risky call's line, every line for the length); the share of a feature the
    function lacks is split over all of its lines."""
    model, codes = loaded_model(model_dir), list(codes)
    found = analyse(codes, None, config_from_run(read_exp_config(Path(model_dir))).jobs)
    return [_line_scores(model, code, f) for code, f in zip(codes, found)]


def _line_scores(model: AnalyserModel, code: str, found: dict[str, list[Any]]) -> np.ndarray:
    evs = vec.events(code, found, model.rules)
    counts = np.bincount([i for i, _ in evs], minlength=len(model.features)).astype(np.float64)
    share = model.contributions(vec.vector(code, found, model.rules)[None, :])[0]
    scores = np.zeros(code.count("\n") + 1)
    scores += share[counts == 0].sum() / len(scores)
    for feat, line in evs:
        if 1 <= line <= len(scores):
            scores[line - 1] += share[feat] / counts[feat]
    return scores
