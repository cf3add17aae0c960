"""Multi-seed training as a first-class option: ``--seeds 1,2,3`` trains one run per seed into ``OUT/seed-N``.

``evaluate --runs NAME='OUT/seed-*'`` groups them (docs/evaluation.md). A seed whose run already holds
``predictions/test.jsonl`` is not trained again, so a rerun resumes. Two entry points, one loop (``run_seeds``):
``train_seeds`` for Python callers (any kind of the registry) and ``add_seeds_option`` for the CLI, which wraps
each training command's own function and passes ``--set seed=N`` and ``--out OUT/seed-N`` to it, so every kind's
config handling stays where it is.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from streamguard.errors import UserError

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
    return Path(out) / f"seed-{seed}"


def finished(run: Path) -> bool:
    return (Path(run) / "predictions" / "test.jsonl").is_file()


def run_seeds(seeds: Iterable[int], out: Path, train_one: Callable[[int, Path], Any]) -> list[Path]:
    """Call ``train_one(seed, OUT/seed-N)`` for every seed whose run is not finished; return the run dirs."""
    runs = []
    for seed in parse_seeds(seeds):
        run = seed_dir(out, seed)
        if finished(run):
            log.warning("seed %d: %s is finished already", seed, run)
        else:
            log.warning("seed %d -> %s", seed, run)
            train_one(seed, run)
        runs.append(run)
    return runs


def train_seeds(kind: str, data_dir: Path, out: Path, cfg: Any, seeds: Iterable[int]) -> list[Path]:
    """Train ``kind`` once per seed with ``cfg`` (never mutated: each seed gets a copy with its seed)."""
    from streamguard.train import registry
    module = registry.get(kind)
    return run_seeds(seeds, out, lambda s, run: module.train(data_dir, run, dataclasses.replace(cfg, seed=s)))


def _per_seed(func: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], Any]:
    def run(args: argparse.Namespace) -> Any:
        if not getattr(args, "seeds", None):
            return func(args)
        if getattr(args, "seed", None) is not None:
            raise UserError("give --seed or --seeds, not both")
        overrides = list(getattr(args, "set", None) or [])
        return run_seeds(args.seeds, args.out, lambda s, run: func(argparse.Namespace(
            **{**vars(args), "out": run, "seeds": None, "set": [*overrides, f"seed={s}"]})))
    return run


def add_seeds_option(parsers: Iterable[argparse.ArgumentParser]) -> None:
    """Give each training command ``--seeds``; its function then runs once per seed into OUT/seed-N."""
    for p in parsers:
        p.add_argument("--seeds", default=None, metavar="1,2,3",
                       help="train one run per seed into OUT/seed-N (finished seeds are skipped)")
        p.set_defaults(func=_per_seed(p.get_default("func")))
