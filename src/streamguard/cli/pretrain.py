"""The ``corpus`` and ``pretrain`` commands: a pre-training corpus, and the encoder's pre-training."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes


def add_parsers(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("corpus", help="extract, normalise and deduplicate C functions of a source tree for "
                                      "pre-training, dropping every Devign function")
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", type=Path, help="a C source tree, e.g. the Linux kernel")
    what.add_argument("--devign-train", action="store_true",
                      help="the text (no labels) of --devign's train split instead, for task-adaptive "
                           "pre-training; train functions also in valid or test are dropped")
    c.add_argument("--out", required=True, type=Path, help="corpus folder to write (functions + manifest)")
    c.add_argument("--devign", type=Path, default=Path("../shared/data/devign"),
                   help="CodeXGLUE {train,valid,test}.jsonl whose functions are dropped (default %(default)s)")
    c.add_argument("--no-devign", action="store_true", help="drop nothing (a corpus for other data)")
    c.add_argument("--subdirs", default=None, help="comma-separated folders of the source to take (default: all)")
    c.add_argument("--include", nargs="*", default=None, help="file patterns (default *.c)")
    c.add_argument("--exclude", nargs="*", default=None, help="file or folder patterns to skip")
    c.add_argument("--min-tokens", type=argtypes.non_negative_int, default=10,
                   help="drop shorter functions (default %(default)s)")
    c.set_defaults(func=_run_corpus)
    p = sub.add_parser("pretrain", help="masked-language-model pre-training of a C encoder on a corpus")
    p.add_argument("--corpus", required=True, type=Path, help="a folder made by `streamguard corpus`")
    p.add_argument("--out", required=True, type=Path, help="run folder; the encoder lands in OUT/encoder")
    p.add_argument("--config", type=Path, default=None, help="YAML config, e.g. configs/pretrain-kernel.yaml")
    p.add_argument("--devign", default=None, help="CodeXGLUE folder: train joins the BPE, valid is held out")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=_run_pretrain)


def _run_corpus(args: argparse.Namespace) -> None:
    from streamguard.data.corpus import build_corpus, build_devign_train_corpus
    if args.devign_train:
        build_devign_train_corpus(args.devign, args.out, args.min_tokens)
        return
    subdirs = [d for d in args.subdirs.split(",") if d] if args.subdirs else None
    build_corpus(args.source, args.out, None if args.no_devign else args.devign, subdirs, args.include,
                 args.exclude, args.min_tokens)


def _run_pretrain(args: argparse.Namespace) -> None:
    from streamguard.runtime import log_info, prepare_torch_cpu
    prepare_torch_cpu()
    from streamguard.config import load_config
    from streamguard.pretrain.train import PretrainConfig, check_config, pretrain
    log_info()
    cfg = load_config(PretrainConfig, args.config, {"devign": args.devign}, args.set)
    check_config(cfg)
    pretrain(args.corpus, args.out, cfg)
