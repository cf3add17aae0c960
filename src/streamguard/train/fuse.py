"""The fusion stage (``streamguard fuse``) and the fusion kind's ``predict``.

No leakage by construction: K stratified folds over train; each base model is trained on K-1 folds and
predicts the held-out fold (``streamguard.train.oof``), so every train function gets an out-of-fold logit from a
model that never saw it.
The fusion is fit on those logits only. Base models retrained on all of train give valid and test logits;
valid only picks the decision threshold; test is only predicted. With ``base_seeds`` a neural base model is a
seed ensemble: every fold and full model is trained once per seed, and the seeds' log-odds are averaged.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from streamguard import atomic
from streamguard.config import FuseConfig, to_dict
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.models import fusion as fusion_model
from streamguard.rundir import RunDir, logit_margin, prediction_rows
from streamguard.runlock import locked
from streamguard.thresholds import choose_threshold, write_predictions
from streamguard.train import kinds, mlflow_store, registry, seeds
from streamguard.train.evidence import empty_scores
from streamguard.train.oof import base_config, kind_seeds, make_folds, out_of_fold, read_oof, seeded  # noqa: F401 (read_oof: denoise)

log = logging.getLogger(__name__)
FUSION_FILE = "fusion.json"
CONFIG = FuseConfig
BUNDLE_FILES = (FUSION_FILE,)


def _check_models(models: list[str], folds: int) -> None:
    if not models:
        raise UserError("fuse: --models names no base model")
    if len(set(models)) != len(models):
        raise UserError(f"fuse: a base model is named twice in {','.join(models)}")
    if "fusion" in models:
        raise UserError("fuse: a fusion cannot be a base model of another fusion")
    for kind in models:
        registry.get(kind)  # fail before hours of fold training, not after


def reused_base_runs(cfg: FuseConfig, data_dir: Path) -> dict[str, Path]:
    """The finished full-train runs named in ``base_runs``, checked: right kind, same data, not a fold model."""
    runs: dict[str, Path] = {}
    for item in cfg.base_runs:
        kind, sep, path = item.partition("=")
        if not sep or kind not in cfg.models:
            raise UserError(f"fuse: base_runs entries must look like kind=run_dir with a kind of --models, "
                            f"got {item!r}")
        for run in seeds.seed_runs(Path(path)):  # a `--seeds` folder: every seed run is checked
            _check_base_run(run, kind, data_dir)
        got, want = seeds.member_seeds(Path(path)), kind_seeds(kind, cfg)
        if got != (want if want == [None] else sorted(want)):
            raise UserError(f"fuse: {path} holds seeds {got}, but the fold models use {kind_seeds(kind, cfg)} "
                            "(base_seeds): the full model must be the same ensemble as the fold models")
        runs[kind] = Path(path)
    return runs


def _check_base_run(run: Path, kind: str, data_dir: Path) -> None:
    exp = RunDir(run).read_exp()
    if exp["model"] != kind:
        raise UserError(f"fuse: {run} is a {exp['model']} run, not {kind}")
    if exp.get("fold_mode") or exp.get("train_ids_given"):
        raise UserError(f"fuse: {run} was trained on a subset of train; a base run must use all of it")
    if not RunDir(run).has_predictions("valid"):
        raise UserError(f"fuse: {run} did not finish (no {RunDir(run).predictions_path('valid')})")
    ProcessedDir(data_dir).check_compatible(exp.get("data_identity"), run)


def _matrix(per_kind: dict[str, list[dict]], ids: list[str]) -> np.ndarray:
    cols = []
    for kind, rows in per_kind.items():
        by_id = {r["id"]: r for r in rows}
        col = logit_margin(by_id[i] for i in ids)
        if not np.all(np.isfinite(col)):  # a NaN/inf logit (a diverged model, a damaged file) would poison the fit
            bad = ids[int(np.flatnonzero(~np.isfinite(col))[0])]
            raise UserError(f"fuse: {kind} gave a non-finite logit for {bad}; retrain that base model")
        cols.append(col)
    return np.stack(cols, axis=1)


def train(data_dir: Path, out_dir: Path, cfg: FuseConfig | None = None,
          train_ids: set[str] | None = None) -> Path:
    with locked(out_dir, "run directory"):  # one writer; the fold runs inside lock their own folders
        return _train(Path(data_dir), Path(out_dir), cfg or FuseConfig(), train_ids)


def _train(data_dir: Path, out_dir: Path, cfg: FuseConfig, train_ids: set[str] | None) -> Path:
    _check_models(cfg.models, cfg.folds)
    out_dir.mkdir(parents=True, exist_ok=True)
    mlflow_store.start_run(out_dir, "fusion", to_dict(cfg))  # first, so that the fold runs nest under it
    tr = sorted(ProcessedDir(data_dir).read_split("train", ids=train_ids, keep=("id", "label")),
                key=lambda r: r["id"])
    ids, y = [r["id"] for r in tr], np.array([r["label"] for r in tr])
    folds = make_folds(ids, y.tolist(), cfg.folds, cfg.seed)
    per_kind, run_dir = {}, RunDir(out_dir)
    for kind in cfg.models:
        per_kind[kind] = out_of_fold(kind, data_dir, out_dir, folds, base_config(kind, cfg), kind_seeds(kind, cfg))
        run_dir.write_oof(kind, per_kind[kind])
    fus = fusion_model.fit(_matrix(per_kind, ids), y, cfg.method, cfg.seed)
    reused = reused_base_runs(cfg, data_dir) if train_ids is None else {}
    for kind in (k for k in cfg.models if k not in reused):
        for seed in kind_seeds(kind, cfg):
            run, bcfg = seeded(run_dir.base_dir(kind), base_config(kind, cfg), seed)
            registry.get(kind).train(data_dir, run, bcfg, train_ids=train_ids)
    for kind, run in reused.items():
        _copy_base_run(run, run_dir.base_dir(kind))
    base_runs = {k: RunDir.base_rel(k) for k in cfg.models}
    fus_meta = {"models": cfg.models, "base_runs": base_runs, **asdict(fus)}
    va = _base_predictions(out_dir, fus_meta, data_dir, "valid")
    fus.threshold = choose_threshold([r["label"] for r in va[0]], fus.margin(va[1]), cfg.threshold_metric,
                                     neutral=0.0)
    fus_meta.update(asdict(fus))
    atomic.write_json(out_dir / FUSION_FILE, fus_meta)
    write_predictions(run_dir.path, "valid", prediction_rows(va[0], fus.logits(va[1])))
    if (data_dir / "test.jsonl").is_file():
        write_predictions(run_dir.path, "test", _predict_with(fus_meta, out_dir, data_dir, "test"))
    run_dir.write_exp("fusion", data_dir, to_dict(cfg), {
        "base_models": cfg.models, "folds": cfg.folds, "fold_epochs": cfg.fold_epochs,
        "base_seeds": {k: kind_seeds(k, cfg) for k in cfg.models},
        "fusion": fus_meta, "n_oof": len(ids)})
    mlflow_store.record_run(out_dir, "fusion", to_dict(cfg), mlflow_store.fusion_metrics(cfg.models, fus_meta))
    log.info("fuse: weights %s bias %.3f threshold %.3f", fus.weights, fus.bias, fus.threshold)
    return out_dir


# Not needed to predict: resumable epochs, the tracking store. (The GNN falls back to last.ckpt without best.ckpt.)
_NOT_COPIED = ("epoch-*.ckpt", "mlflow.db", "mlruns", "*.tmp")


def _copy_base_run(src: Path, dst: Path) -> None:
    """A reused base run is copied into the fusion's run dir, so the fusion dir is self-contained and never
    points outside itself (a shared fusion dir could otherwise make predict load any directory)."""
    if Path(src).resolve() == dst.resolve():
        return
    tmp = dst.with_name(dst.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    ignore = shutil.ignore_patterns(*_NOT_COPIED)
    shutil.copytree(src, tmp, ignore=lambda d, names: set(ignore(d, names)) | (
        {"last.ckpt"} if "best.ckpt" in names else set()))
    shutil.rmtree(dst, ignore_errors=True)
    atomic.promote(tmp, dst)


def base_run_dir(run_dir: Path, rel: str) -> Path:
    """The base run ``rel`` of the fusion in ``run_dir``; refused when it lies outside (``..``, absolute, link)."""
    root = Path(run_dir).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path == root:
        raise UserError(f"{run_dir}: fusion base run {rel!r} lies outside the fusion's run directory; refused "
                        "(a fusion dir must hold its base runs; retrain or re-fuse it with this version)")
    return path


def _base_predictions(run_dir: Path, meta: dict, data_dir: Path, split: str,
                      ids: set[str] | None = None) -> tuple[list[dict], np.ndarray]:
    """Records (id, label, project) and the (n, k) log-odds of the base models, aligned by id."""
    per_kind = {}
    for kind in meta["models"]:
        per_kind[kind] = seeds.predict_ensemble(kind, base_run_dir(run_dir, meta["base_runs"][kind]), data_dir,
                                                split, ids)
    first = per_kind[meta["models"][0]]
    recs = [{"id": r["id"], "label": r["label"], "metadata": {"project": r.get("project", "")}} for r in first]
    return recs, _matrix(per_kind, [r["id"] for r in first])


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    kinds.open_run(run_dir, data_dir, "fusion")
    return _predict_with(_meta(Path(run_dir)), Path(run_dir), Path(data_dir), split, ids)


def _meta(run_dir: Path) -> dict[str, Any]:
    path = run_dir / FUSION_FILE
    if not path.is_file():
        raise UserError(f"{run_dir} has no {FUSION_FILE}; the fusion run did not finish")
    return json.loads(path.read_text())


def _predict_with(meta: dict, run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    # A base model with weight 0 adds exactly 0 to every margin: it is not run (it may be the slowest).
    used = [i for i, w in enumerate(meta["weights"]) if w != 0] or [0]
    meta = {**meta, "models": [meta["models"][i] for i in used], "weights": [meta["weights"][i] for i in used]}
    fus = fusion_model.Fusion(meta["method"], meta["weights"], meta["bias"], meta["threshold"])
    recs, z = _base_predictions(run_dir, meta, data_dir, split, ids)
    return prediction_rows(recs, fus.logits(z))


# --- the rest of the kind contract (streamguard.train.kinds) -------------------------------------------------

def config_from_run(exp: dict[str, Any]) -> FuseConfig:
    return kinds.config_from_run(FuseConfig, exp)


def export_files(run: Path, dst: Path) -> None:
    """fusion.json, and each base run exported beside it (a seed ensemble keeps its seed-N layout)."""
    meta = _meta(run)
    for base_kind in meta["models"]:
        base = base_run_dir(run, meta["base_runs"][base_kind])
        for member in seeds.seed_runs(base):
            registry.export_model(member, dst / "base" / base_kind / member.relative_to(base), base_kind)
        meta["base_runs"][base_kind] = f"base/{base_kind}"
    (dst / FUSION_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def uses_torch(model_dir: Path) -> bool:
    return True  # scan records a forward-pass precision for every fusion


def reads_features(model_dir: Path) -> bool:
    return True  # its functions are the fully preprocessed ones, whatever its bases read


def line_scores(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Each base model's line scores (a seed ensemble: its seeds' mean), normalised to unit L1, weighted by its
    fusion weight, summed."""
    meta = _meta(Path(model_dir))
    total = [empty_scores(c) for c in codes]
    for kind, weight in zip(meta["models"], meta["weights"]):
        if weight == 0:
            continue
        members = seeds.seed_runs(base_run_dir(model_dir, meta["base_runs"][kind]))
        per_seed = [registry.line_scores(kind, run, prep_dir, codes) for run in members]
        base = [np.mean(scores, axis=0) for scores in zip(*per_seed)]
        for acc, s in zip(total, base):
            norm = np.abs(s).sum()
            if norm > 0:
                acc += weight * s / norm
    return total
