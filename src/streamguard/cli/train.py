"""``streamguard train KIND`` (every trainable kind of the registry) and ``streamguard fuse``.

Both take ``--seeds 1,2,3`` (one run per seed into OUT/seed-N, finished seeds skipped) and ``--register NAME``
(after training, the run goes into the MLflow model registry; with ``--seeds``, each seed's run is registered,
one version of NAME per seed, in seed order). The steps are explicit here: build the config, train (once or per
seed), register.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from streamguard import argtypes
from streamguard.cli.common import add_config_options
from streamguard.errors import UserError
from streamguard.rundir import SEED_PREFIX

SEEDS_HELP = f"train one run per seed into OUT/{SEED_PREFIX}N (finished seeds are skipped), e.g. 1,2,3"
REGISTER_HELP = ("register the trained run in the MLflow model registry under NAME (store: --tracking-uri, else "
                 "MLFLOW_TRACKING_URI, else mlflow.db); with --seeds, every seed's run, one version each")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from streamguard.train.registry import ENGINE_OPTIONS, KINDS

    train = sub.add_parser("train", help="train a model kind").add_subparsers(dest="train_kind", required=True)
    for kind in KINDS.values():
        if not kind.trainable:
            continue
        p = train.add_parser(kind.name, help=kind.help, description=kind.help)
        p.add_argument("--data", required=True, type=Path, help="processed dataset dir")
        p.add_argument("--out", required=True, type=Path, help="run dir to write (a rerun resumes it)")
        for opt in (ENGINE_OPTIONS if kind.neural else ()) + kind.options:
            if opt.type is bool:
                p.add_argument(opt.flag, dest=opt.key, action="store_true", default=None, help=opt.help)
            else:
                p.add_argument(opt.flag, dest=opt.key, type=opt.type, choices=opt.choices, default=None,
                               help=opt.help)
        _add_run_options(p)
        p.set_defaults(func=_run_train, kind=kind)
    p = sub.add_parser("fuse", help="out-of-fold stacking of base models (no leakage into the weights)")
    p.add_argument("--models", default=None, help="comma-separated base kinds, e.g. gnn,lexical")
    p.add_argument("--data", required=True, type=Path, help="processed dataset dir")
    p.add_argument("--out", required=True, type=Path, help="fusion run dir to write (a rerun resumes it)")
    p.add_argument("--folds", type=argtypes.int_at_least(2), default=None,
                   help="folds of the out-of-fold logits (default 5)")
    p.add_argument("--method", choices=["weighted", "stacker"], default=None,
                   help="weighted: non-negative weights over the bases' log-odds (default); stacker: a logistic "
                        "regression on them (weights may be negative)")
    _add_run_options(p, "YAML fusion config (see configs/)")
    p.set_defaults(func=_run_fuse)


def _add_run_options(p: argparse.ArgumentParser, config_help: str = "YAML config (see configs/)") -> None:
    add_config_options(p, config_help)
    p.add_argument("--seeds", default=None, metavar="1,2,3", help=SEEDS_HELP)
    p.add_argument("--register", default=None, metavar="NAME", help=REGISTER_HELP)


def _run_train(args: argparse.Namespace) -> None:
    from streamguard.config import load_config
    from streamguard.runtime import log_info, prepare_torch_cpu
    from streamguard.train import registry
    from streamguard.train.registry import ENGINE_OPTIONS

    kind = args.kind
    if kind.neural:
        prepare_torch_cpu()
    log_info()
    flags = (ENGINE_OPTIONS if kind.neural else ()) + kind.options
    cfg = load_config(registry.config_class(kind.name), args.config, {o.key: getattr(args, o.key) for o in flags},
                      args.set)
    runs = _train(args, cfg, registry.get(kind.name).train)
    _register(args, runs, getattr(cfg, "tracking_uri", None))


def _run_fuse(args: argparse.Namespace) -> None:
    from streamguard.config import FuseConfig, load_config
    from streamguard.runtime import log_info, prepare_torch_cpu
    prepare_torch_cpu()
    from streamguard.train.fuse import train
    log_info()
    cfg = load_config(FuseConfig, args.config, {"models": args.models, "folds": args.folds,
                                                "method": args.method}, args.set)
    runs = _train(args, cfg, train)
    _register(args, runs, None)


def _train(args: argparse.Namespace, cfg: Any, train: Any) -> list[Path]:
    """One run into --out, or with --seeds one per seed into OUT/seed-N; the run dirs, in seed order."""
    if not args.seeds:
        print(f"run dir: {train(args.data, args.out, cfg)}")
        return [Path(args.out)]
    from streamguard.train.seeds import run_seeds
    if getattr(args, "seed", None) is not None or any(s.split("=", 1)[0].strip() == "seed" for s in args.set):
        raise UserError("give --seed or --seeds, not both")
    runs = run_seeds(args.seeds, args.out, lambda s, run: train(args.data, run, dataclasses.replace(cfg, seed=s)))
    print(f"seed runs: {args.out}/{SEED_PREFIX}{{{','.join(r.name[len(SEED_PREFIX):] for r in runs)}}}")
    return runs


def _register(args: argparse.Namespace, runs: list[Path], uri: str | None) -> None:
    if not args.register:
        return
    from streamguard.cloud.model_registry import register_run
    for run in runs:
        version = register_run(run, args.register, uri)
        print(f"registered {args.register} version {version} ({run})")
