"""The lexical kind's entry points: fit TF-IDF + logistic regression on train, choose C on valid, write the run.

The processed ``code`` is trimmed to the transformer's 512-token budget; a lexical model does better on the
whole function, so by default the text comes from the raw split the dataset was preprocessed from.
"""
from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from streamguard.config import LexicalConfig, to_dict
from streamguard.errors import UserError
from streamguard.models.lexical import LexicalFeatures, fit_classifier, logits
from streamguard.train.rundir import (
    prediction_rows,
    read_exp_config,
    read_split,
    write_exp_config,
    write_predictions,
)

log = logging.getLogger(__name__)
MODEL_FILE = "model.pkl"


def _raw_funcs(data_dir: Path, split: str) -> list[str] | None:
    """The raw split's ``func`` per line, or None (with the reason logged) when it cannot be found."""
    meta_path = Path(data_dir) / "preprocessing_metadata.json"
    try:
        raw_dir = json.loads(meta_path.read_text()).get("raw_dir")
    except (OSError, json.JSONDecodeError):
        raw_dir = None
    if not raw_dir:
        log.warning("lexical: %s names no raw_dir; using the trimmed processed code", meta_path)
        return None
    # raw_dir may be relative to where preprocess ran or to the processed dir.
    cands = [Path(raw_dir) / f"{split}.jsonl", Path(data_dir) / raw_dir / f"{split}.jsonl"]
    path = next((p for p in cands if p.is_file()), None)
    if path is None:
        log.warning("lexical: raw file %s is gone; using the trimmed processed code for %s", cands[0], split)
        return None
    funcs = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                funcs.append(json.loads(line).get("func") or "")
            except (json.JSONDecodeError, AttributeError):
                funcs.append("")
    return funcs


def texts(records: list[dict[str, Any]], data_dir: Path, split: str, source: str) -> list[str]:
    """Full raw functions where the raw row still holds the kept code, else the processed code."""
    if source not in ("raw", "processed"):
        raise UserError(f"lexical code_source must be 'raw' or 'processed', got {source!r}")
    funcs = _raw_funcs(data_dir, split) if source == "raw" else None
    if funcs is None:
        return [r["code"] for r in records]
    out, fallback = [], 0
    for rec in records:
        row = (rec.get("metadata") or {}).get("row")
        func = funcs[row] if isinstance(row, int) and 0 <= row < len(funcs) else None
        # The kept code is a window of the raw function; anything else means the raw file changed.
        if func is not None and rec["code"].strip() in func:
            out.append(func)
        else:
            out.append(rec["code"])
            fallback += 1
    if fallback:
        log.warning("lexical: %d of %d %s records did not match their raw row; used the processed code",
                    fallback, len(records), split)
    return out


def _metrics(y: np.ndarray, margin: np.ndarray) -> dict[str, float]:
    prob = 1.0 / (1.0 + np.exp(-margin))
    out = {"accuracy": float(accuracy_score(y, margin > 0)), "f1_vulnerable": float(f1_score(y, margin > 0)),
           "log_loss": float(log_loss(y, np.clip(prob, 1e-7, 1 - 1e-7), labels=[0, 1]))}
    out["roc_auc"] = float(roc_auc_score(y, margin)) if len(set(y.tolist())) == 2 else float("nan")
    return out


def _weights(records: list[dict[str, Any]], cfg: LexicalConfig) -> np.ndarray | None:
    """Per-item weights from ``cfg.sample_weights`` (the engine's reader and format); missing ids weigh 1."""
    if not cfg.sample_weights:
        return None
    from streamguard.train.engine import load_sample_weights
    weights = load_sample_weights(cfg.sample_weights)
    log.warning("lexical: sample weights for %d of %d train items", sum(r["id"] in weights for r in records),
                len(records))
    return np.array([weights.get(r["id"], 1.0) for r in records])


def _select_c(x, y, xv, yv, cfg: LexicalConfig, sample_weight: np.ndarray | None = None
              ) -> tuple[Any, float, list[dict[str, float]]]:
    """Fit one model per C on train; keep the best valid accuracy (log-loss breaks ties)."""
    if not cfg.c_grid:
        raise UserError("lexical c_grid is empty")
    best, trials = None, []
    for c in cfg.c_grid:
        # without weights the call is the one it always was (tests stand in for fit_classifier with that signature)
        clf = (fit_classifier(x, y, c, cfg.seed) if sample_weight is None
               else fit_classifier(x, y, c, cfg.seed, sample_weight))
        m = {"C": c, **_metrics(yv, logits(clf, xv)[:, 1] * 2.0)}
        trials.append(m)
        log.info("lexical: C=%g valid accuracy %.4f", c, m["accuracy"])
        if best is None or (m["accuracy"], -m["log_loss"]) > (best[1]["accuracy"], -best[1]["log_loss"]):
            best = (clf, m)
    return best[0], best[1]["C"], trials


def train(data_dir: Path, out_dir: Path, cfg: LexicalConfig | None = None,
          train_ids: set[str] | None = None) -> Path:
    cfg = cfg or LexicalConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tr = read_split(data_dir, "train", ids=train_ids)
    va = read_split(data_dir, "valid")
    if len({r["label"] for r in tr}) < 2:
        raise UserError("lexical: the training items hold only one class")
    feats = LexicalFeatures(cfg.analyzer, cfg.ngram_min, cfg.ngram_max, cfg.max_features, cfg.strip_comments,
                            cfg.collapse_blank_lines)
    x = feats.fit_transform(texts(tr, data_dir, "train", cfg.code_source))
    xv = feats.transform(texts(va, data_dir, "valid", cfg.code_source))
    y, yv = np.array([r["label"] for r in tr]), np.array([r["label"] for r in va])
    clf, best_c, trials = _select_c(x, y, xv, yv, cfg, _weights(tr, cfg))
    fit_s = time.perf_counter() - t0
    with open(out_dir / MODEL_FILE, "wb") as fh:
        pickle.dump({"features": feats, "classifier": clf}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    write_predictions(out_dir, "valid", prediction_rows(va, logits(clf, xv)))
    if (data_dir / "test.jsonl").is_file():
        write_predictions(out_dir, "test", predict(out_dir, data_dir, "test", _model=(feats, clf), _cfg=cfg))
    write_exp_config(out_dir, "lexical", data_dir, to_dict(cfg), {
        "selected_C": best_c, "c_trials": trials, "n_features": feats.n_features, "n_train": len(tr),
        "fold_mode": train_ids is not None, "fit_seconds": round(fit_s, 1)})
    log.info("lexical: C=%g chosen on valid, %d features, fitted in %.0f s", best_c, feats.n_features, fit_s)
    return out_dir


def _load(run_dir: Path) -> tuple[LexicalFeatures, Any, LexicalConfig]:
    exp = read_exp_config(run_dir)
    if exp["model"] != "lexical":
        raise UserError(f"{run_dir} is a {exp['model']} run, not a lexical one")
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} has no {MODEL_FILE}; the lexical run did not finish")
    with open(path, "rb") as fh:
        bundle = pickle.load(fh)  # our own run dir: the pickle is as trusted as the code that wrote it
    cfg = LexicalConfig(**{k: v for k, v in exp["hyperparameters"].items() if hasattr(LexicalConfig, k)})
    return bundle["features"], bundle["classifier"], cfg


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None,
            _model: tuple[LexicalFeatures, Any] | None = None, _cfg: LexicalConfig | None = None) -> list[dict]:
    if _model is None:
        feats, clf, cfg = _load(run_dir)
    else:
        (feats, clf), cfg = _model, _cfg
    recs = read_split(Path(data_dir), split, ids=ids)
    x = feats.transform(texts(recs, Path(data_dir), split, cfg.code_source))
    return prediction_rows(recs, logits(clf, x))
