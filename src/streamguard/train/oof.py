"""The out-of-fold half of the fusion: every train function gets a base model's logit from a model that never
saw it.

K stratified folds over train; each base kind is trained on K-1 folds and predicts the held-out fold (once per
seed of a seed ensemble, log-odds averaged). Fold results are kept per fold and seed, keyed by kind, fold ids
and config, so a rerun skips finished folds. ``streamguard.train.fuse`` fits the fusion on these logits (and
re-exports this module's names: ``fuse.read_oof`` is what the noise-reduction step reads).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from streamguard.config import FuseConfig, load_config, to_dict
from streamguard.data.records import check_prediction
from streamguard.errors import UserError
from streamguard.rundir import RunDir
from streamguard.train import registry, seeds

log = logging.getLogger(__name__)


def base_config(kind: str, cfg: FuseConfig) -> Any:
    """A base kind's config: its YAML from ``base_configs`` if given, the fold epoch budget, the fusion seed.
    Fold and full models share the budget so that the OOF logits the weights are fit on look like the full
    models' logits they are applied to."""
    paths = dict(item.split("=", 1) for item in cfg.base_configs if "=" in item)
    bad = [item for item in cfg.base_configs if "=" not in item]
    if bad:
        raise UserError(f"fuse: base_configs entries must look like kind=path.yaml, got {bad[0]!r}")
    base = load_config(registry.config_class(kind), paths.get(kind))
    if hasattr(base, "epochs") and cfg.fold_epochs > 0:  # 0: each kind's own epochs (from its YAML)
        base = dataclasses.replace(base, epochs=cfg.fold_epochs)
    return dataclasses.replace(base, seed=cfg.seed) if hasattr(base, "seed") else base


def kind_seeds(kind: str, cfg: FuseConfig) -> list[int | None]:
    """The seeds of ``kind``'s ensemble: ``base_seeds`` for a neural kind, else one model (None: its own seed)."""
    return list(cfg.base_seeds) if cfg.base_seeds and registry.entry(kind).neural else [None]


def seeded(run: Path, bcfg: Any, seed: int | None) -> tuple[Path, Any]:
    if seed is None:
        return run, bcfg
    return seeds.seed_dir(run, seed), dataclasses.replace(bcfg, seed=seed)


def make_folds(ids: list[str], labels: list[int], k: int, seed: int) -> list[set[str]]:
    if min(sum(labels), len(labels) - sum(labels)) < k:
        raise UserError(f"fuse: each class needs at least {k} training items for {k} folds")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [{ids[i] for i in held} for _, held in skf.split(np.zeros(len(ids)), labels)]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def out_of_fold(kind: str, data_dir: Path, out_dir: Path, folds: list[set[str]], bcfg: Any,
                members: list[int | None] | None = None) -> list[dict]:
    """Train ``kind`` on K-1 folds and predict the held-out one, for each fold (once per seed of ``members``,
    log-odds averaged); resumable per fold and seed."""
    all_ids, oof = set().union(*folds), []
    for i, held in enumerate(folds):
        per_seed = []
        for seed in members or [None]:
            run, cfg = seeded(RunDir(out_dir).folds_dir(kind), bcfg, seed)
            per_seed.append(_fold(kind, data_dir, RunDir.fold_dir(run, i), held, all_ids, cfg, i))
        rows = seeds.average_logits(per_seed, f"fuse: {kind} fold {i}")
        oof.extend({**r, "fold": i, "kind": kind} for r in rows)
        log.info("fuse: %s fold %d/%d done", kind, i + 1, len(folds))
    return sorted(oof, key=lambda r: r["id"])


def _fold(kind: str, data_dir: Path, run: Path, held: set[str], all_ids: set[str], bcfg: Any, i: int) -> list[dict]:
    key = _digest(kind, sorted(held), sorted(all_ids), to_dict(bcfg))
    rows = RunDir(run).fold_part(key)
    if rows is not None:
        for n, row in enumerate(rows, start=1):
            check_prediction(row, f"{run}:{n}")
        return rows
    mod = registry.get(kind)
    mod.train(data_dir, run, bcfg, train_ids=all_ids - held)
    rows = mod.predict(run, data_dir, "train", ids=held)
    if {r["id"] for r in rows} != held or len(rows) != len(held):
        raise UserError(f"fuse: {kind} fold {i} returned predictions for other ids than its held-out fold")
    rows = [{**r, "fold": i, "kind": kind} for r in rows]
    RunDir(run).write_fold_part(rows, key)
    return rows


def read_oof(run_dir: Path, kind: str) -> list[dict]:
    """The out-of-fold predictions of one base model (for noise reduction)."""
    run = RunDir(run_dir)
    run.read_exp()
    return run.read_oof(kind)
