"""``streamguard evaluate`` (metrics, tests, reports over runs) and ``streamguard predict`` (one run's scores)."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes
from streamguard.cli.common import add_config_options


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="metrics with bootstrap CIs, paired tests, peers, and reports")
    p.add_argument("--runs", required=True, nargs="+", metavar="[NAME=]RUN",
                   help="run dirs or globs; runs of one model with different seeds are grouped (see docs)")
    p.add_argument("--out", required=True, type=Path, help="report dir, e.g. reports/NAME")
    p.add_argument("--seeds", default=None, help="keep N lowest seeds per model, or a comma list of seeds")
    p.add_argument("--peers", default=None, help="comma list of static analysers: flawfinder,cppcheck")
    p.add_argument("--primary", default=None, metavar="ENTRY",
                   help="Holm's adjustment over the pairs with this entry only (e.g. fusion), not all pairs")
    p.add_argument("--data", type=Path, default=None, help="processed dir (peers and code examples need it)")
    add_config_options(p, "YAML evaluation config (see configs/)")
    p.set_defaults(func=_run_evaluate)
    p = sub.add_parser("predict", help="score a processed dataset with a trained run (any kind)")
    p.add_argument("--run", required=True, type=Path, help="a trained run dir")
    p.add_argument("--data", required=True, type=Path, help="processed with the run's tokenizer (--reuse-from)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="default %(default)s")
    p.add_argument("--out", required=True, type=Path, help="predictions jsonl to write")
    p.add_argument("--threshold", type=argtypes.probability, default=None,
                   help="probability cut for the verdict (default: the run's, chosen on valid)")
    p.set_defaults(func=_run_predict)


def _run_evaluate(args: argparse.Namespace) -> None:
    from streamguard.config import EvaluateConfig, load_config
    from streamguard.evaluate.stage import evaluate
    cfg = load_config(EvaluateConfig, args.config, {"peers": args.peers, "primary": args.primary}, args.set)
    res = evaluate(args.runs, args.out, cfg, data_dir=args.data, seeds=args.seeds)
    print(f"evaluated {len(res['entries'])} entries on {res['test_items']} test items -> {args.out}/report.html")


def _run_predict(args: argparse.Namespace) -> None:
    from streamguard.runtime import log_info, prepare_torch_cpu
    prepare_torch_cpu()
    from streamguard.train.predict import predict_run
    log_info()
    predict_run(args.run, args.data, args.split, args.out, args.threshold)
