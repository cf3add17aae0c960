"""The ``streamguard`` command: parses arguments and dispatches to the stages; nothing else.

One module per command group builds its parsers (``add_parsers(sub)``) and holds the small functions that turn
parsed arguments into a call of a stage; the work itself lives in the stage's package. Nothing outside this
package imports it (tests/test_architecture.py checks): a stage that needs process set-up uses
``streamguard.runtime``.
"""
from __future__ import annotations

import argparse
import os
import sys

from streamguard import logs
from streamguard.cli import cloud, data, evaluate, phases, pipeline, preprocess, pretrain, scan, train
from streamguard.errors import UserError
from streamguard.runtime import prepare_torch_cpu

__all__ = ["build_parser", "main", "prepare_torch_cpu"]

GROUPS = (data, preprocess, pipeline, evaluate, train, scan, pretrain, phases, cloud)  # the order of --help


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamguard",
                                     description="Train and run detectors of vulnerable C functions.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    # a pipeline's steps are command lines of this CLI: handed down, so that cli.pipeline needs no import of it
    sub.choices["pipeline"].set_defaults(run_command=main)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logs.configure()  # once per process: a pipeline calls main again for each step
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except UserError as exc:
        print(f"streamguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamguard: interrupted", file=sys.stderr)
        return 130
    return rc if isinstance(rc, int) else 0  # scan: 1 when findings reach --fail-on
