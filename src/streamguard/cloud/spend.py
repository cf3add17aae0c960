"""The commands around what cloud jobs cost: the budget guard and ledger record of every launch, ``--dashboard``
on a launch, ``cloud sagemaker status JOB``, ``cloud sagemaker dashboard JOB`` and ``cloud budget``.

Module level imports stay light: the CLI parser is built from here on every command.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamguard import argtypes
from streamguard.cloud import ledger
from streamguard.errors import UserError

LEDGER_HELP = "the spend ledger (default: STREAMGUARD_LEDGER, else ./cloud-ledger.json)"


def add_launch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phase", default="unassigned", help="the budget phase this job counts against")
    p.add_argument("--budget-usd", default=None, help="the budget to check against (default: configured, $100)")
    p.add_argument("--over-budget", action="store_true", help="launch even if the estimate exceeds what is left")
    p.add_argument("--dashboard", action="store_true", help="also create the job's CloudWatch dashboard")
    p.add_argument("--ledger", default=None, help=LEDGER_HELP)


def add_parsers(cloud: argparse._SubParsersAction, sm: argparse._SubParsersAction) -> None:
    d = sm.add_parser("dashboard", help="a CloudWatch dashboard of a training job's metrics and instances")
    d.add_argument("job", help="the training job's name (as `cloud sagemaker train` printed it)")
    d.add_argument("--region", default=None, help="AWS region (default: the AWS configuration's)")
    d.add_argument("--instance-count", type=argtypes.positive_int, default=None,
                   help="dry run: instances to show (default 1)")
    d.add_argument("--dry-run", action="store_true", help="print the PutDashboard request; send nothing")
    d.set_defaults(func=run_dashboard)
    s = sm.add_parser("status", help="a job's state and, once finished, its cost (recorded in the ledger)")
    s.add_argument("job", help="the training job's name")
    s.add_argument("--region", default=None, help="AWS region (default: the ledger's, else the configuration's)")
    s.add_argument("--ledger", default=None, help=LEDGER_HELP)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run_status)
    b = cloud.add_parser("budget", help="spend by phase and job against the budget (refreshes unfinished jobs)")
    b.add_argument("--phase", default=None, help="only this phase's jobs")
    b.add_argument("--budget-usd", default=None, help="the budget (default: STREAMGUARD_BUDGET_USD, the "
                   "ledger's budget_usd, else $100)")
    b.add_argument("--save", action="store_true", help="store --budget-usd in the ledger as the configured one")
    b.add_argument("--offline", action="store_true", help="show the ledger as recorded; ask AWS nothing")
    b.add_argument("--ledger", default=None, help=LEDGER_HELP)
    b.add_argument("--json", action="store_true", help="print JSON")
    b.set_defaults(func=run_budget)


def launch(opts: Any, args: argparse.Namespace) -> dict[str, Any]:
    """A SageMaker launch with the budget guard, the ledger record and, with ``--dashboard``, the dashboard."""
    from streamguard.cloud import dashboard, sagemaker
    from streamguard.redact import redact

    path = ledger.ledger_path(getattr(args, "ledger", None))
    if opts.dry_run:
        request = redact(sagemaker.launch(opts))
        if not getattr(args, "dashboard", False):
            return request
        return {"CreateTrainingJob": request, "PutDashboard": dashboard.put(
            request["TrainingJobName"], opts.region, dry_run=True, instance_count=opts.instance_count)}
    max_run, _, region = sagemaker.validate(opts)
    estimate = ledger.launch_estimate(opts.instance_type, opts.instance_count, max_run, opts.spot)
    ledger.check_budget(path, estimate, getattr(args, "budget_usd", None), getattr(args, "over_budget", False))
    result = sagemaker.launch(opts)
    ledger.record_launch(path, {
        "job": result["TrainingJobName"], "kind": opts.kind, "phase": getattr(args, "phase", "unassigned"),
        "region": region, "instance_type": opts.instance_type, "instance_count": opts.instance_count,
        "spot": opts.spot, "max_run_s": max_run, "estimate_usd": estimate, "checkpoint_uri": result["CheckpointS3Uri"]})
    if getattr(args, "dashboard", False):
        result["Dashboard"] = dashboard.put(result["TrainingJobName"], region, instance_count=opts.instance_count)
    return result


def run_dashboard(args: argparse.Namespace) -> None:
    from streamguard.cloud import dashboard

    if args.instance_count is not None and args.instance_count < 1:
        raise UserError(f"--instance-count must be at least 1, got {args.instance_count}")
    print(json.dumps(dashboard.put(args.job, args.region, args.dry_run, args.instance_count), indent=2))


def _describe(job: str, region: str) -> dict[str, Any]:
    from streamguard.cloud import awsinput

    with awsinput.aws_errors(f"training job {job}"):
        return awsinput.client("sagemaker", region).describe_training_job(TrainingJobName=job)


def _checkpoint_bytes(uri: str, region: str) -> int:
    from streamguard.cloud import awsinput
    from streamguard.cloud.sagemaker import split_s3

    bucket, prefix = split_s3(uri, "checkpoint URI")
    total = 0
    with awsinput.aws_errors(f"checkpoints at {uri}"):
        pages = awsinput.client("s3", region).get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
        for page in pages:
            total += sum(int(o["Size"]) for o in page.get("Contents", []))
    return total


def _merge(path: Path, job: str, fields: dict[str, Any]) -> None:
    def apply(data: dict[str, Any]) -> None:
        for entry in data["jobs"]:
            if entry.get("job") == job:
                entry.update(fields)
    ledger.update(path, apply)


def run_status(args: argparse.Namespace) -> None:
    from streamguard.cloud import awsinput, dashboard

    dashboard.check_job_name(args.job)
    path = ledger.ledger_path(args.ledger)
    entry = next((j for j in ledger.load(path)["jobs"] if j.get("job") == args.job), None)
    region = awsinput.check_region(args.region or (entry or {}).get("region"))
    desc = _describe(args.job, region)
    base = entry or {"instance_type": desc.get("ResourceConfig", {}).get("InstanceType")}
    fields = ledger.finished_costs(base, desc)
    if entry is not None:
        _merge(path, args.job, fields)
    out = {"job": args.job, "in_ledger": entry is not None, **fields}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    line = f"{args.job}: {fields['status']} ({fields.get('secondary_status') or '-'})"
    if "billable_s" in fields:
        line += f"; training {fields['training_s']} s, billable {fields['billable_s']} s"
    if "cost_usd" in fields:
        line += f", cost ${fields['cost_usd']:.2f} (spot saved ${fields['spot_saving_usd']:.2f})"
    print(line + ("" if entry else "; not in the ledger (launched elsewhere)"))


def refresh(path: Path) -> None:
    """Ask AWS about every unfinished job and the size of every job's checkpoints; record the answers."""
    from streamguard.cloud.awsinput import check_region

    for entry in ledger.load(path)["jobs"]:
        fields: dict[str, Any] = {}
        if entry.get("status") not in ledger.FINISHED:
            region = check_region(entry.get("region"))
            fields.update(ledger.finished_costs(entry, _describe(entry["job"], region)))
        if entry.get("checkpoint_uri"):
            region = check_region(entry.get("region"))
            fields["checkpoint_bytes"] = _checkpoint_bytes(entry["checkpoint_uri"], region)
        _merge(path, entry["job"], fields)


def run_budget(args: argparse.Namespace) -> None:
    from streamguard.cloud.budget_report import render, summarise

    path = ledger.ledger_path(args.ledger)
    total = ledger.budget_usd(args.budget_usd, ledger.load(path))
    if args.save:
        if args.budget_usd is None:
            raise UserError("--save stores --budget-usd: give it")
        ledger.update(path, lambda data: data.update(budget_usd=total))
    if not args.offline:
        refresh(path)
    summary = summarise(ledger.load(path), total, args.phase)
    print(json.dumps(summary, indent=2) if args.json else render(summary))
