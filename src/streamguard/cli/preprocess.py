"""``streamguard preprocess``: raw dataset -> processed records (tokens, trimmed code, ASTs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes
from streamguard.cli.common import add_config_options, hidden_alias


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="tokenize, trim, parse ASTs and write processed records")
    p.add_argument("--raw", required=True, type=Path, help="raw dataset dir (made by `data import`)")
    p.add_argument("--out", required=True, type=Path, help="processed dataset dir to write")
    p.add_argument("--tokenizer", default=None, help="hub name, local directory, or 'bpe' (trained on train)")
    hidden_alias(p.add_argument("--max-length", "--max-tokens", dest="max_length", type=argtypes.positive_int,
                                default=None,
                                help="token budget per function, special tokens included; risky lines are kept "
                                     "(default 512; config key max_length, formerly max_tokens)"))
    p.add_argument("--workers", type=argtypes.non_negative_int, default=None, help="processes (default 0: all cores)")
    p.add_argument("--quick-test", action="store_true", default=None,
                   help="only the first 100 functions of each split (a smoke test)")
    p.add_argument("--reuse-from", default=None, help="processed dir whose tokenizer and node vocabulary to use")
    add_config_options(p, "YAML preprocessing config (see configs/)")
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> None:
    from streamguard.config import PreprocessConfig, load_config
    from streamguard.features.preprocess import preprocess
    cfg = load_config(PreprocessConfig, args.config, {
        "tokenizer": args.tokenizer, "max_tokens": args.max_length, "workers": args.workers,
        "quick_test": args.quick_test, "reuse_from": args.reuse_from}, args.set)
    preprocess(args.raw, args.out, cfg)
