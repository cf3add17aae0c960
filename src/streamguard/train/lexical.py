"""The lexical kind's entry points: fit TF-IDF + logistic regression on train, choose C on valid, write the run.

The processed ``code`` is trimmed to the transformer's 512-token budget; a lexical model does better on the
whole function, so by default the text comes from the raw split the dataset was preprocessed from.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.atomic import make_dir
from streamguard.config import LexicalConfig, to_dict
from streamguard.errors import UserError
from streamguard.features.normalise import normaliser
from streamguard.features.processed import ProcessedDir
from streamguard.models import loaded
from streamguard.models.lexical import LexicalFeatures, fit_classifier, logits, normalise_with_map, occurrences
from streamguard.models.lexical_store import ARRAYS, PARAMS, load_lexical, save_lexical
from streamguard.rundir import prediction_rows, read_exp_config, write_exp_config
from streamguard.runlock import locked
from streamguard.thresholds import write_predictions
from streamguard.train import kinds, mlflow_store
from streamguard.train.evidence import line_of

log = logging.getLogger(__name__)
MODEL_FILE = PARAMS  # the run is finished once this (written last) exists
CONFIG = LexicalConfig
BUNDLE_FILES = (PARAMS, ARRAYS)


def texts(records: list[dict[str, Any]], data: ProcessedDir, split: str, source: str) -> list[str]:
    """Whole raw functions (``source`` raw) where the raw row still holds the kept code, else the processed
    (trimmed) code; normalised (``features.normalise``) where the dataset was preprocessed so."""
    if source == "processed":
        return [r["code"] for r in records]
    norm = normaliser(data.path)
    funcs = [norm(f) for f in data.raw_functions(split, records)]
    out, fallback = [], 0
    for rec, func in zip(records, funcs):
        # The kept code is a window of the raw function; anything else means the raw file changed. (A scan's
        # record holds the code as found: normalised here, if the model reads normalised code.)
        if rec["code"].strip() in func or norm(rec["code"]).strip() in func:
            out.append(func)
        else:
            out.append(norm(rec["code"]))
            fallback += 1
    if fallback:
        log.warning("lexical: %d of %d %s records did not match their raw row; used the processed code",
                    fallback, len(records), split)
    return out


def _metrics(y: np.ndarray, margin: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score  # not on a scan's path
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
    out_dir = Path(out_dir)
    make_dir(out_dir, "run directory")
    with locked(out_dir, "run directory"):  # one writer: a second training into the same dir is refused
        return _train(ProcessedDir(data_dir), out_dir, cfg or LexicalConfig(), train_ids)


def _train(data: ProcessedDir, out_dir: Path, cfg: LexicalConfig, train_ids: set[str] | None) -> Path:
    t0 = time.perf_counter()
    tr = data.read_split("train", ids=train_ids)
    va = data.read_split("valid")
    if len({r["label"] for r in tr}) < 2:
        raise UserError("lexical: the training items hold only one class")
    feats = LexicalFeatures(cfg.analyzer, cfg.ngram_min, cfg.ngram_max, cfg.max_features, cfg.strip_comments,
                            cfg.collapse_blank_lines)
    x = feats.fit_transform(texts(tr, data, "train", cfg.code_source))
    xv = feats.transform(texts(va, data, "valid", cfg.code_source))
    y, yv = np.array([r["label"] for r in tr]), np.array([r["label"] for r in va])
    weights = _weights(tr, cfg)
    if cfg.pair_loss_weight > 0:  # fix pairs (raw pair_id) as difference rows: the vulnerable side ranks higher
        from streamguard.train.pairs import pair_groups, with_difference_rows
        x, y, weights = with_difference_rows(x, y, weights, pair_groups(data.path, tr), cfg.pair_loss_weight)
    clf, best_c, trials = _select_c(x, y, xv, yv, cfg, weights)
    fit_s = time.perf_counter() - t0
    save_lexical(out_dir, feats, clf)
    write_predictions(out_dir, "valid", prediction_rows(va, logits(clf, xv)))
    if data.has_split("test"):
        write_predictions(out_dir, "test", predict(out_dir, data.path, "test", _model=(feats, clf), _cfg=cfg))
    write_exp_config(out_dir, "lexical", data.path, to_dict(cfg), {
        "selected_C": best_c, "c_trials": trials, "n_features": feats.n_features, "n_train": len(tr),
        "fold_mode": train_ids is not None, "fit_seconds": round(fit_s, 1)})
    mlflow_store.record_run(out_dir, "lexical", {**to_dict(cfg), "selected_C": best_c}, {"features": feats.n_features})
    log.info("lexical: C=%g chosen on valid, %d features, fitted in %.0f s", best_c, feats.n_features, fit_s)
    return out_dir


def loaded_model(model_dir: Path) -> tuple[LexicalFeatures, Any]:
    """The fitted features and classifier, read once per process (a scan predicts chunk after chunk, then
    explains); arrays + JSON: loading never runs code."""
    model_dir = Path(model_dir)
    return loaded.cached("lexical", model_dir, lambda: load_lexical(model_dir), BUNDLE_FILES)


def config_from_run(exp: dict[str, Any]) -> LexicalConfig:
    return kinds.config_from_run(LexicalConfig, exp)


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None,
            _model: tuple[LexicalFeatures, Any] | None = None, _cfg: LexicalConfig | None = None) -> list[dict]:
    if _model is None:
        exp, data = kinds.open_run(run_dir, data_dir, "lexical")
        (feats, clf), cfg = loaded_model(run_dir), config_from_run(exp)
    else:  # while training: the run has no exp_config.json yet
        (feats, clf), cfg, data = _model, _cfg, ProcessedDir(data_dir)
    recs = data.read_split(split, ids=ids)
    x = feats.transform(texts(recs, data, split, cfg.code_source))
    return prediction_rows(recs, logits(clf, x))


def score_texts(model_dir: Path, codes: Sequence[str], prep_dir: Path | None = None) -> np.ndarray | None:
    """P(vulnerable) of raw function texts, as ``predict`` gives them, through the numpy scorer where the model
    allows (models/lexical_fast.py: no scikit-learn import for a scan); None when ``predict`` reads processed code
    or the model is not one the numpy scorer reproduces. ``prep_dir``: the model's processed data (or a bundle's
    ``preprocess/``), whose normalisation ``texts`` applies."""
    from streamguard.models.lexical_fast import FastLexicalScorer
    model_dir = Path(model_dir)
    if config_from_run(read_exp_config(model_dir)).code_source != "raw":
        return None
    fast = loaded.cached("lexical-fast", model_dir, lambda: FastLexicalScorer.open(model_dir), BUNDLE_FILES)
    if fast is None:
        return None
    if prep_dir is not None:
        norm = normaliser(prep_dir)
        codes = [norm(c) for c in codes]
    probs = fast.probabilities(codes)
    slow = [i for i, p in enumerate(probs) if p is None]
    if slow:  # beyond Latin-1: scikit-learn's own counting
        feats, clf = loaded_model(model_dir)
        x = feats.transform([codes[i] for i in slow])
        rows = prediction_rows([{"id": "", "label": 0}] * len(slow), logits(clf, x))
        for i, row in zip(slow, rows):
            probs[i] = row["prob_vulnerable"]
    return np.array(probs, dtype=np.float64)


# --- the rest of the kind contract (streamguard.train.kinds) -------------------------------------------------

def export_files(run: Path, dst: Path) -> None:
    kinds.copy_files(run, dst, BUNDLE_FILES, "lexical")


def uses_torch(model_dir: Path) -> bool:
    return False  # scan must not import torch for it


def reads_features(model_dir: Path) -> bool:
    """Only with ``code_source: processed``: by default ``predict`` takes the text from the raw rows."""
    return config_from_run(read_exp_config(model_dir)).code_source != "raw"


def line_scores(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Each n-gram's coefficient x its tf-idf value, shared among its occurrences, spread over their characters,
    summed per line: exact, the line scores add up to the decision value minus the intercept."""
    feats, clf = loaded_model(model_dir)  # the model the scan scored with, not a second copy
    x = feats.transform(list(codes)).tocsr()
    coef = np.asarray(clf.coef_[0], dtype=np.float64)
    results = []
    for row, code in enumerate(codes):
        lines = line_of(code)
        scores = np.zeros(int(lines[-1]) + 1)
        text, idx = normalise_with_map(code, feats.strip_comments, feats.collapse_blank_lines)
        start, end = x.indptr[row], x.indptr[row + 1]
        value = dict(zip(x.indices[start:end].tolist(), x.data[start:end].tolist()))  # this row's tf-idf
        offset = 0
        for vec in feats.vectorizers:
            occ = occurrences(vec, text, idx)
            cols = [vec.vocabulary_.get(term) for term, _ in occ]
            counts: dict[int, int] = {}
            for c in cols:
                if c is not None:
                    counts[c] = counts.get(c, 0) + 1
            for (_, chars), c in zip(occ, cols):
                if c is None or not chars:
                    continue
                share = coef[offset + c] * value.get(offset + c, 0.0) / counts[c]
                np.add.at(scores, lines[chars], share / len(chars))
            offset += len(vec.vocabulary_)
        results.append(scores)
    return results
