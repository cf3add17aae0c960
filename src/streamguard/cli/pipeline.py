"""``streamguard pipeline``: the whole job of a configs/pipeline-*.yaml; the runner is streamguard.pipeline."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the whole job (a configs/pipeline-*.yaml), resuming finished steps")
    p.add_argument("--config", required=True, type=Path, help="pipeline YAML, e.g. configs/pipeline-demo.yaml")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override pipeline params")
    p.add_argument("--only", nargs="*", default=None, help="run only these steps")
    p.set_defaults(func=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> None:
    from streamguard.pipeline import run_pipeline
    from streamguard.runtime import prepare_torch_cpu
    prepare_torch_cpu()
    values = dict(item.split("=", 1) for item in args.set if "=" in item)
    run_pipeline(args.config, values, args.only, main=args.run_command)
