"""The ``streamguard`` command: parses arguments and dispatches to the stages; nothing else."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamguard import logs
from streamguard.data.data_cli import COLLECT_FORMATS, add_collect_commands, run_collect_import
from streamguard.errors import UserError


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import or download raw datasets").add_subparsers(dest="data_cmd",
                                                                                        required=True)
    imp = data.add_parser("import", help="import a raw dataset into CodeXGLUE-format jsonl + manifest")
    imp.add_argument("source_kind", choices=["codexglue", *COLLECT_FORMATS],
                     help="the input's format: codexglue (Devign), or a collector format (docs/data.md)")
    imp.add_argument("--source", required=True, type=Path,
                     help="folder with {train,valid,test}.jsonl, or Devign's function.json + train/valid/test.txt; "
                          "collector formats: a file (a folder for cdir)")
    imp.add_argument("--out", required=True, type=Path, help="raw dataset dir to write (jsonl splits + manifest)")
    imp.add_argument("--dedup", action="store_true", help="drop from train what also appears in valid/test")
    imp.set_defaults(func=_run_import)
    add_collect_commands(data, imp)
    dl = data.add_parser("download", help="fetch the public CodeXGLUE copy and verify its checksums")
    dl.add_argument("source_kind", choices=["codexglue"], help="the dataset to fetch")
    dl.add_argument("--out", required=True, type=Path, help="folder for the downloaded files")
    dl.add_argument("--url", default=None, help="base URL of the copy (default: the public one)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default %(default)s)")
    dl.set_defaults(func=_run_download)


def prepare_torch_cpu() -> None:
    """Call before torch starts its thread pool. OpenMP threads must not busy-wait (they thrash on shared
    cores), and denormal floats are flushed to zero: Adam's L2 decay drives the weights of dead ReLU units into
    the denormal range (a quarter to half of the GNN's hidden weights by epoch 5), which made every matrix
    product up to 10x slower (GNN epochs went from 58 s to 240 s). New threads inherit the floating-point mode
    of the thread that creates them, hence before the first parallel op."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_flush_denormal(True)


def _run_import(args: argparse.Namespace) -> None:
    if args.source_kind != "codexglue":
        return run_collect_import(args)
    from streamguard.data.ingest import import_codexglue
    import_codexglue(args.source, args.out, dedup=args.dedup)


def _run_download(args: argparse.Namespace) -> None:
    from streamguard.data.download import download_codexglue
    download_codexglue(args.out, base_url=args.url, timeout=args.timeout)


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="tokenize, trim, parse ASTs and write processed records")
    p.add_argument("--raw", required=True, type=Path, help="raw dataset dir (made by `data import`)")
    p.add_argument("--out", required=True, type=Path, help="processed dataset dir to write")
    p.add_argument("--config", type=Path, default=None, help="YAML preprocessing config (see configs/)")
    p.add_argument("--tokenizer", default=None, help="hub name, local directory, or 'bpe' (trained on train)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="token budget per function, special tokens included; risky lines are kept (default 512)")
    p.add_argument("--workers", type=int, default=None, help="processes (default 0: all cores)")
    p.add_argument("--quick-test", action="store_true", default=None,
                   help="only the first 100 functions of each split (a smoke test)")
    p.add_argument("--reuse-from", default=None, help="processed dir whose tokenizer and node vocabulary to use")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> None:
    from streamguard.config import PreprocessConfig, load_config
    from streamguard.data.preprocess import preprocess
    cfg = load_config(PreprocessConfig, args.config, {
        "tokenizer": args.tokenizer, "max_tokens": args.max_tokens, "workers": args.workers,
        "quick_test": args.quick_test, "reuse_from": args.reuse_from}, args.set)
    preprocess(args.raw, args.out, cfg)


def _add_pipeline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the whole job (a configs/pipeline-*.yaml), resuming finished steps")
    p.add_argument("--config", required=True, type=Path, help="pipeline YAML, e.g. configs/pipeline-demo.yaml")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override pipeline params")
    p.add_argument("--only", nargs="*", default=None, help="run only these steps")
    p.set_defaults(func=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> None:
    prepare_torch_cpu()
    from streamguard.pipeline import run_pipeline
    values = dict(item.split("=", 1) for item in args.set if "=" in item)
    run_pipeline(args.config, values, args.only)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics with bootstrap CIs, paired tests, peers, and reports")
    p.add_argument("--runs", required=True, nargs="+", metavar="[NAME=]RUN",
                   help="run dirs or globs; runs of one model with different seeds are grouped (see docs)")
    p.add_argument("--out", required=True, type=Path, help="report dir, e.g. reports/NAME")
    p.add_argument("--seeds", default=None, help="keep N lowest seeds per model, or a comma list of seeds")
    p.add_argument("--peers", default=None, help="comma list of static analysers: flawfinder,cppcheck")
    p.add_argument("--primary", default=None, metavar="ENTRY",
                   help="Holm's adjustment over the pairs with this entry only (e.g. fusion), not all pairs")
    p.add_argument("--data", type=Path, default=None, help="processed dir (peers and code examples need it)")
    p.add_argument("--config", type=Path, default=None, help="YAML evaluation config (see configs/)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from streamguard.config import EvaluateConfig, load_config
    from streamguard.evaluate.stage import evaluate
    cfg = load_config(EvaluateConfig, args.config, {"peers": args.peers, "primary": args.primary}, args.set)
    res = evaluate(args.runs, args.out, cfg, data_dir=args.data, seeds=args.seeds)
    print(f"evaluated {len(res['entries'])} entries on {res['test_items']} test items -> {args.out}/report.html")


def _log_info() -> None:
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def _add_train(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """``train KIND`` for every trainable kind of the registry, with the flags its entry declares."""
    from streamguard.train.registry import ENGINE_OPTIONS, KINDS

    train = sub.add_parser("train", help="train a model kind").add_subparsers(dest="train_kind", required=True)
    for kind in KINDS.values():
        if not kind.trainable:
            continue
        p = train.add_parser(kind.name, help=kind.help, description=kind.help)
        p.add_argument("--data", required=True, type=Path, help="processed dataset dir")
        p.add_argument("--out", required=True, type=Path, help="run dir to write (a rerun resumes it)")
        p.add_argument("--config", type=Path, default=None, help="YAML config (see configs/)")
        for opt in (ENGINE_OPTIONS if kind.neural else ()) + kind.options:
            if opt.type is bool:
                p.add_argument(opt.flag, dest=opt.key, action="store_true", default=None, help=opt.help)
            else:
                p.add_argument(opt.flag, dest=opt.key, type=opt.type, choices=opt.choices, default=None,
                               help=opt.help)
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
        p.set_defaults(func=_run_train, kind=kind)
    return train


def _run_train(args: argparse.Namespace) -> None:
    from streamguard.config import load_config
    from streamguard.train import registry
    from streamguard.train.registry import ENGINE_OPTIONS

    kind = args.kind
    if kind.neural:
        prepare_torch_cpu()
    _log_info()
    flags = (ENGINE_OPTIONS if kind.neural else ()) + kind.options
    cfg = load_config(registry.config_class(kind.name), args.config, {o.key: getattr(args, o.key) for o in flags},
                      args.set)
    print(f"run dir: {registry.get(kind.name).train(args.data, args.out, cfg)}")


def _add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="out-of-fold stacking of base models (no leakage into the weights)")
    p.add_argument("--models", default=None, help="comma-separated base kinds, e.g. gnn,lexical")
    p.add_argument("--data", required=True, type=Path, help="processed dataset dir")
    p.add_argument("--out", required=True, type=Path, help="fusion run dir to write (a rerun resumes it)")
    p.add_argument("--folds", type=int, default=None, help="folds of the out-of-fold logits (default 5)")
    p.add_argument("--method", choices=["weighted", "stacker"], default=None,
                   help="weighted: non-negative weights over the bases' log-odds (default); stacker: a logistic "
                        "regression on them (weights may be negative)")
    p.add_argument("--config", type=Path, default=None, help="YAML fusion config (see configs/)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=_run_fuse)


def _run_fuse(args: argparse.Namespace) -> None:
    prepare_torch_cpu()
    from streamguard.config import FuseConfig, load_config
    from streamguard.train.fuse import train
    _log_info()
    cfg = load_config(FuseConfig, args.config, {"models": args.models, "folds": args.folds,
                                                "method": args.method}, args.set)
    train(args.data, args.out, cfg)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="score a processed dataset with a trained run (any kind)")
    p.add_argument("--run", required=True, type=Path, help="a trained run dir")
    p.add_argument("--data", required=True, type=Path, help="processed with the run's tokenizer (--reuse-from)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="default %(default)s")
    p.add_argument("--out", required=True, type=Path, help="predictions jsonl to write")
    p.add_argument("--threshold", type=float, default=None,
                   help="probability cut for the verdict (default: the run's, chosen on valid)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> None:
    prepare_torch_cpu()
    from streamguard.predict import predict_run
    _log_info()
    predict_run(args.run, args.data, args.split, args.out, args.threshold)


def _add_scan(sub: argparse._SubParsersAction) -> None:
    from streamguard.scan.cli import add_parsers  # scan + export
    add_parsers(sub)


def _add_cloud(sub: argparse._SubParsersAction) -> None:
    from streamguard.cloud.cli import add_parsers  # cloud, models, and --register on training commands
    add_parsers(sub)


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    from streamguard.pretrain.cli import add_parser
    add_parser(sub)


def _add_phases(sub: argparse._SubParsersAction) -> None:
    from streamguard.phases_cli import add_parsers
    add_parsers(sub)  # denoise, compare


def _add_seeds(parsers: list[argparse.ArgumentParser]) -> None:
    from streamguard.train.seeds import add_seeds_option
    add_seeds_option(parsers)  # --seeds 1,2,3 on every training command: runs into OUT/seed-N


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamguard",
                                     description="Train and run detectors of vulnerable C functions.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data(sub)
    _add_preprocess(sub)
    _add_pipeline(sub)
    _add_evaluate(sub)
    train = _add_train(sub)
    _add_fuse(sub)
    _add_predict(sub)
    _add_scan(sub)
    _add_pretrain(sub)
    _add_phases(sub)
    _add_seeds([*train.choices.values(), sub.choices["fuse"]])
    _add_cloud(sub)
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


if __name__ == "__main__":
    sys.exit(main())
