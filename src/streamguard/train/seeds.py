"""Multi-seed training as a first-class option: ``--seeds 1,2,3`` trains one run per seed into ``OUT/seed-N``.

``evaluate --runs NAME='OUT/seed-*'`` groups them (docs/evaluation.md). A seed whose run already holds
``predictions/test.jsonl`` is not trained again, so a rerun resumes. Two entry points, one loop (``run_seeds``):
``train_seeds`` for Python callers (any kind of the registry) and the ``--seeds`` option of ``train KIND`` and
``fuse`` (streamguard.cli.train), which builds the config once and trains a copy with each seed.

A folder of seed runs is also one model, a seed ensemble: ``predict_ensemble`` averages its seeds' log-odds
(the fusion's ``base_seeds`` uses that as one base model; a plain run is its own one-member ensemble).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.errors import UserError
from streamguard.rundir import RunDir

log = logging.getLogger(__name__)


def parse_seeds(spec: str | Iterable[int]) -> list[int]:
    """'1,2,3' (or a list of ints) -> [1, 2, 3]; distinct non-negative integers."""
    items = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    try:
        seeds = [int(s) for s in items]
    except (TypeError, ValueError):
        raise UserError(f"--seeds must be comma-separated integers, got {spec!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise UserError(f"--seeds must list distinct non-negative integers, got {spec!r}")
    return seeds


def seed_dir(out: Path, seed: int) -> Path:
    return RunDir(out).seed_dir(seed)


def seed_runs(run: Path) -> list[Path]:
    """The runs of a seed ensemble (its ``seed-N`` folders, by seed), or ``[run]`` for a plain run."""
    rd = RunDir(run)
    if rd.is_run():
        return [rd.path]
    return list(rd.seed_members().values()) or [rd.path]


def member_seeds(run: Path) -> list[int | None]:
    """The seeds of a seed ensemble, in order; ``[None]`` for a plain run (it keeps its own seed)."""
    rd = RunDir(run)
    members = {} if rd.is_run() else rd.seed_members()
    return list(members) or [None]


def average_logits(per_seed: list[list[dict[str, Any]]], what: str = "seed ensemble") -> list[dict[str, Any]]:
    """Prediction rows whose log-odds are the mean of the members' (rows aligned by id; the first's order)."""
    from streamguard.rundir import logit_margin, prediction_rows
    if len(per_seed) == 1:
        return per_seed[0]
    first = per_seed[0]
    order = [r["id"] for r in first]
    margins = []
    for rows in per_seed:
        by_id = {r["id"]: r for r in rows}
        if len(rows) != len(order) or by_id.keys() != set(order):
            raise UserError(f"{what}: its members predicted different functions")
        margins.append(logit_margin(by_id[i] for i in order))
    m = np.mean(margins, axis=0)
    recs = [{"id": r["id"], "label": r["label"], "metadata": {"project": r.get("project", "")}} for r in first]
    return prediction_rows(recs, np.stack([-m / 2.0, m / 2.0], axis=1))


def predict_ensemble(kind: str, run: Path, data_dir: Path, split: str,
                     ids: set[str] | None = None) -> list[dict[str, Any]]:
    """``kind``'s predict of ``run``; for a seed ensemble, its seeds' log-odds averaged."""
    from streamguard.train import registry
    module = registry.get(kind)
    return average_logits([module.predict(r, data_dir, split, ids) for r in seed_runs(run)], f"{run}")


def finished(run: Path) -> bool:
    return RunDir(run).has_predictions("test")


def run_seeds(seeds: Iterable[int], out: Path, train_one: Callable[[int, Path], Any]) -> list[Path]:
    """Call ``train_one(seed, OUT/seed-N)`` for every seed whose run is not finished; return the run dirs."""
    runs = []
    todo = parse_seeds(seeds)
    for k, seed in enumerate(todo, 1):
        run = seed_dir(out, seed)
        # progress, not a warning: the console shows INFO alone, and a pipeline step keeps it in its log file
        if finished(run):
            log.info("seed %d (%d of %d): %s is finished already", seed, k, len(todo), run)
        else:
            log.info("seed %d (%d of %d) -> %s", seed, k, len(todo), run)
            train_one(seed, run)
        runs.append(run)
    return runs


def train_seeds(kind: str, data_dir: Path, out: Path, cfg: Any, seeds: Iterable[int]) -> list[Path]:
    """Train ``kind`` once per seed with ``cfg`` (never mutated: each seed gets a copy with its seed)."""
    from streamguard.train import registry
    module = registry.get(kind)
    return run_seeds(seeds, out, lambda s, run: module.train(data_dir, run, dataclasses.replace(cfg, seed=s)))
