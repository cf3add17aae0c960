"""Argument parsing of ``denoise`` and ``compare`` (phase 1 vs phase 2); the work is imported only when run."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denoise", help="confident learning on out-of-fold probabilities -> sample weights")
    p.add_argument("--run", required=True, type=Path, help="a run with oof/*.jsonl (a fusion run)")
    p.add_argument("--out", required=True, type=Path, help="folder for the weights (or kept ids) and the report")
    p.add_argument("--mode", choices=["weight", "drop"], default="weight",
                   help="flagged items weigh their self-confidence (weight) or 0 (drop)")
    p.add_argument("--hard-below", type=argtypes.probability, default=0.25,
                   help="self-confidence under which an item is 'hard'")
    p.add_argument("--data", type=Path, default=None, help="processed dir (default: the run's data_dir)")
    p.set_defaults(func=_run_denoise)
    c = sub.add_parser("compare", help="phase 1 vs phase 2: per-metric differences over seeds and items")
    c.add_argument("--a", required=True, help="phase-1 runs: a glob or dir of seed-N runs (e.g. runs/p1/lexical)")
    c.add_argument("--b", required=True, help="phase-2 runs, the same seeds")
    c.add_argument("--heldout", type=Path, default=None,
                   help="processed held-out collected data (preprocess OUT/heldout --reuse-from)")
    c.add_argument("--heldout-b", type=Path, default=None,
                   help="the held-out data processed with phase 2's tokenizer (default: --heldout)")
    c.add_argument("--out", required=True, type=Path, help="report folder")
    c.add_argument("--names", default=("phase1", "phase2"), type=argtypes.two_names,
                   help="the two phases' names in the report (default phase1,phase2)")
    c.add_argument("--bootstrap", type=argtypes.positive_int, default=1000,
                   help="bootstrap resamples (default %(default)s)")
    c.set_defaults(func=_run_compare)


def _run_denoise(args: argparse.Namespace) -> None:
    from streamguard.train.denoise import denoise
    denoise(args.run, args.out, args.mode, args.hard_below, args.data)


def _run_compare(args: argparse.Namespace) -> None:
    from streamguard.runtime import prepare_torch_cpu
    prepare_torch_cpu()
    from streamguard.evaluate.compare import compare
    compare(args.a, args.b, args.out, heldout=args.heldout, heldout_b=args.heldout_b,
            names=tuple(args.names), n_boot=args.bootstrap)
