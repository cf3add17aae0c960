"""The ``cloud`` commands (SageMaker jobs, estimates) and the ``models`` commands (the MLflow registry).

``--register NAME`` of ``train KIND`` and ``fuse`` is an option of those commands (streamguard.cli.train).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamguard import argtypes
from streamguard.cloud import spend
from streamguard.train import registry


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_cloud(sub)
    _add_models(sub)


def _add_cloud(sub: argparse._SubParsersAction) -> None:
    from streamguard.cloud.sagemaker import DEFAULT_INSTANCE as default_instance

    cloud = sub.add_parser("cloud", help="train on SageMaker; price a job").add_subparsers(dest="cloud_cmd",
                                                                                        required=True)
    sm = cloud.add_parser("sagemaker", help="SageMaker training jobs").add_subparsers(dest="sm_cmd", required=True)
    p = sm.add_parser("train", help="one SageMaker training job (managed spot, S3 checkpoints, resume)")
    p.add_argument("kind", choices=registry.known_kinds(), help="the model kind to train")
    p.add_argument("--data", required=True, help="S3 prefix of the processed dataset, s3://bucket/prefix")
    _add_job_options(p, default_instance)
    p.add_argument("--instance-count", type=argtypes.positive_int, default=1,
                   help=">1: DDP across instances (torchrun)")
    p.add_argument("--register", default=None, metavar="NAME", help="register the best model under NAME")
    p.set_defaults(func=_run_sagemaker_train, devign=None, init=None)
    p = sm.add_parser("pretrain", help="pre-train the C encoder as a SageMaker job (spot, S3 checkpoints, resume)")
    p.add_argument("--corpus", dest="data", required=True, metavar="S3",
                   help="S3 prefix of a corpus made by `streamguard corpus`, s3://bucket/prefix")
    p.add_argument("--devign", required=True,
                   help="S3 prefix of CodeXGLUE train/valid jsonl: train joins the BPE, valid is held out")
    p.add_argument("--init", default=None, help="S3 prefix of an exported encoder to continue from")
    _add_job_options(p, default_instance)
    p.set_defaults(func=_run_sagemaker_train, kind="pretrain", instance_count=1, register=None)
    spend.add_parsers(cloud, sm)  # sagemaker dashboard|status, cloud budget
    e = cloud.add_parser("estimate", help="hours and dollars of a job, from measured throughput")
    e.add_argument("kind", choices=[*registry.known_kinds(), "pretrain"], help="the model kind to price")
    e.add_argument("--data", type=Path, default=None, help="processed dataset dir (its train split is counted); "
                   "pretrain needs none")
    e.add_argument("--instance-count", type=argtypes.positive_int, default=1, help="instances of a DDP job (default 1)")
    e.add_argument("--config", type=Path, default=None, help="the YAML config the job would train with")
    e.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    e.add_argument("--instance-type", nargs="*", default=None, help="default: every priced instance type")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=_run_estimate)


def _add_job_options(p: argparse.ArgumentParser, default_instance: str) -> None:
    """What every SageMaker job takes: where outputs go, the config, the instance, spot and time limits."""
    p.add_argument("--output", required=True, help="S3 prefix for the job's checkpoints and outputs")
    p.add_argument("--config", type=Path, default=None, help="the YAML config the job trains with")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--spot", action=argparse.BooleanOptionalAction, default=True, help="managed spot (default)")
    p.add_argument("--instance-type", default=default_instance, help="SageMaker instance type (default %(default)s)")
    p.add_argument("--max-run", default="4h", help="stop the job after this long, e.g. 90m or 4h (default %(default)s)")
    p.add_argument("--max-wait", default="5h", help="spot: wait for capacity plus run time (>= --max-run)")
    p.add_argument("--image", default=None, help="training image URI (default: AWS's PyTorch training image)")
    p.add_argument("--role", default=None, help="SageMaker execution role ARN")
    p.add_argument("--region", default=None, help="AWS region (default: the AWS configuration's)")
    p.add_argument("--name", default=None, help="job name prefix; the same name resumes its checkpoints")
    p.add_argument("--allow-dirty", action="store_true", help="package a tree with uncommitted changes")
    p.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request; send nothing")
    spend.add_launch_options(p)  # --phase, --budget-usd, --over-budget, --dashboard, --ledger


def _run_sagemaker_train(args: argparse.Namespace) -> None:
    from streamguard.cloud.sagemaker import JobOptions
    from streamguard.cloud.spend import launch

    opts = JobOptions(kind=args.kind, data=args.data, output=args.output, role=args.role, region=args.region,
                      config=args.config, sets=tuple(args.set), spot=args.spot, instance_type=args.instance_type,
                      instance_count=args.instance_count, max_run=args.max_run, max_wait=args.max_wait,
                      image=args.image, name=args.name, register=args.register, allow_dirty=args.allow_dirty,
                      dry_run=args.dry_run, devign=args.devign, init=args.init)
    print(json.dumps(launch(opts, args), indent=2))


def _run_estimate(args: argparse.Namespace) -> None:
    from streamguard.cloud.estimate import as_json, estimate, render
    from streamguard.cloud.jobspec import config_class
    from streamguard.config import load_config

    cfg = load_config(config_class(args.kind), args.config, None, args.set)
    result = estimate(args.kind, args.data, cfg, args.instance_type, args.instance_count)
    print(as_json(result) if args.json else render(result))


def _add_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="the model registry (MLflow)").add_subparsers(dest="models_cmd",
                                                                                        required=True)
    lst = models.add_parser("list", help="registered models and their versions")
    lst.add_argument("--name", default=None, help="only this registered model")
    lst.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI, mlflow.db)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=_run_models_list)
    reg = models.add_parser("register", help="register a finished run as a new version of NAME")
    reg.add_argument("run", type=Path, help="a finished run dir")
    reg.add_argument("name", help="registered model name")
    reg.add_argument("--bundle", type=Path, default=None, help="an exported bundle to attach")
    reg.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI, mlflow.db)")
    reg.set_defaults(func=_run_models_register)
    load = models.add_parser("load", help="download a registered version as a run dir")
    load.add_argument("name", help="registered model name")
    load.add_argument("--version", default="latest", help="version number or latest (default)")
    load.add_argument("--out", required=True, type=Path, help="run dir to write")
    load.add_argument("--tracking-uri", default=None,
                      help="MLflow store (default: MLFLOW_TRACKING_URI, mlflow.db)")
    load.set_defaults(func=_run_models_load)


def _run_models_list(args: argparse.Namespace) -> None:
    from streamguard.cloud.model_registry import list_versions

    rows = list_versions(args.tracking_uri, args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no registered models")
    for r in rows:
        score = "-" if r["best_score"] is None else f"{r['best_score']:.4f}"
        print(f"{r['name']:<24} v{r['version']:<4} {r['kind'] or '-':<12} best {score:<8} commit {r['git_commit']}")


def _run_models_register(args: argparse.Namespace) -> None:
    from streamguard.cloud.model_registry import register_run

    version = register_run(args.run, args.name, args.tracking_uri, args.bundle)
    print(f"registered {args.name} version {version}")


def _run_models_load(args: argparse.Namespace) -> None:
    from streamguard.cloud.model_registry import load_version

    print(load_version(args.name, args.version, args.out, args.tracking_uri))
