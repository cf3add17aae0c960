"""The spend ledger: every launched SageMaker job, what it was expected to cost, and what it did cost.

A small JSON file in the workspace (``cloud-ledger.json`` beside ``mlflow.db``; ``--ledger`` or
``STREAMGUARD_LEDGER`` for another), not the MLflow store: the budget guard must read it before a launch with no
server and no MLflow import, a job's record changes in place when it finishes (MLflow runs are logged, not
edited), and a person can read and back it up as one file. Writes are atomic, under a file lock, so two launches
never lose each other's record.

Costs use the price table of ``cloud estimate`` (``estimate.INSTANCES``). SageMaker reports a finished job's
``TrainingTimeInSeconds`` and ``BillableTimeInSeconds`` per instance; managed spot bills only the billable part,
so cost = billable s x instances x the on-demand rate, and the spot saving is (training - billable) s x
instances x that rate (AWS's own definition of the saving).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from streamguard.errors import UserError

DEFAULT_FILE = "cloud-ledger.json"
DEFAULT_BUDGET_USD = 100.0          # the project's total for cloud training (docs/cloud-cost.md)
S3_USD_PER_GB_MONTH = 0.023         # S3 Standard, us-east-1, first 50 TB (list price as recorded)
HOURS_PER_MONTH = 730
FINISHED = ("Completed", "Failed", "Stopped")


def ledger_path(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get("STREAMGUARD_LEDGER") or Path.cwd() / DEFAULT_FILE)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"jobs": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"ledger {path} is not readable JSON ({type(exc).__name__}); fix or move it") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise UserError(f"ledger {path} has no 'jobs' list; fix or move it")
    for i, job in enumerate(data["jobs"]):
        if not isinstance(job, dict) or not isinstance(job.get("job"), str):
            raise UserError(f"ledger {path}: entry {i} names no job; fix or move it")
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    from streamguard.atomic import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


def _lock(path: Path) -> Any:
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(f".{path.name}.lock")), timeout=30)


def update(path: Path, change: Any) -> dict[str, Any]:
    """Apply ``change(data)`` to the ledger under its lock and write it back atomically."""
    with _lock(path):
        data = load(path)
        change(data)
        _save(path, data)
        return data


def rate(instance_type: str) -> float | None:
    from streamguard.cloud.prices import INSTANCES

    inst = INSTANCES.get(instance_type)
    return inst.on_demand_usd_h if inst else None


def launch_estimate(instance_type: str, count: int, max_run_s: int, spot: bool) -> float | None:
    """What a job can bill at most, at the price table's rates: the stopping condition's MaxRuntime on every
    instance (spot at the table's typical discount, as ``cloud estimate`` prices it). None: no price."""
    from streamguard.cloud.prices import SPOT_DISCOUNT

    usd_h = rate(instance_type)
    if usd_h is None:
        return None
    return round(max_run_s / 3600 * count * usd_h * ((1 - SPOT_DISCOUNT) if spot else 1.0), 4)


def record_launch(path: Path, entry: dict[str, Any]) -> None:
    def add(data: dict[str, Any]) -> None:
        data["jobs"] = [j for j in data["jobs"] if j.get("job") != entry["job"]] + [
            {**entry, "launched": _now(), "status": "InProgress"}]
    update(path, add)


def finished_costs(entry: dict[str, Any], desc: dict[str, Any]) -> dict[str, Any]:
    """The ledger fields of a job from its DescribeTrainingJob answer."""
    status = desc.get("TrainingJobStatus", "Unknown")
    out: dict[str, Any] = {"status": status, "secondary_status": desc.get("SecondaryStatus")}
    if status not in FINISHED:
        return out
    count = int(desc.get("ResourceConfig", {}).get("InstanceCount") or entry.get("instance_count") or 1)
    training = int(desc.get("TrainingTimeInSeconds") or 0)
    billable = int(desc.get("BillableTimeInSeconds") or 0)
    usd_h = rate(entry.get("instance_type") or desc.get("ResourceConfig", {}).get("InstanceType", ""))
    out.update(training_s=training, billable_s=billable, finished=_now())
    if usd_h is not None:
        out["cost_usd"] = round(billable / 3600 * count * usd_h, 4)
        out["spot_saving_usd"] = round(max(training - billable, 0) / 3600 * count * usd_h, 4)
    return out


def storage_usd(entry: dict[str, Any]) -> float:
    """Checkpoints kept in S3 since the launch, at the listed rate: the size last seen held for the whole time
    (an upper bound: the checkpoints grew during the job)."""
    size = int(entry.get("checkpoint_bytes") or 0)
    try:
        launched = dt.datetime.fromisoformat(str(entry.get("launched")))
    except ValueError:
        return 0.0
    if not size or launched.tzinfo is None:
        return 0.0
    held_h = (dt.datetime.now(dt.UTC) - launched).total_seconds() / 3600
    return round(size / 2**30 * S3_USD_PER_GB_MONTH * max(held_h, 0) / HOURS_PER_MONTH, 4)


def spent(entry: dict[str, Any]) -> float:
    """A finished job's cost, or an unfinished (or unpriced) job's estimate, held against the budget."""
    compute = entry.get("cost_usd") if entry.get("status") in FINISHED else None
    if compute is None:
        compute = entry.get("estimate_usd") or 0.0
    return float(compute) + storage_usd(entry)


def budget_usd(explicit: float | None, data: dict[str, Any]) -> float:
    """``--budget-usd`` > ``STREAMGUARD_BUDGET_USD`` > the ledger's ``budget_usd`` > $100."""
    raw: Any = explicit
    if raw is None:
        raw = os.environ.get("STREAMGUARD_BUDGET_USD") or data.get("budget_usd") or DEFAULT_BUDGET_USD
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UserError(f"budget {raw!r} is not a number of dollars") from None
    if not value >= 0 or value == float("inf"):
        raise UserError(f"the budget must be a finite amount of dollars, zero or more; got {raw}")
    return value


def check_budget(path: Path, estimate: float | None, budget: float | None, over_budget: bool) -> None:
    """Refuse, in one line, a launch whose estimate exceeds what is left of the budget."""
    data = load(path)
    total = budget_usd(budget, data)
    if over_budget:
        return
    if estimate is None:
        raise UserError("launch refused: the instance type has no price in the table, so the budget cannot be "
                        "checked (see docs/cloud-cost.md); --over-budget launches it anyway")
    used = sum(spent(j) for j in data["jobs"])
    left = total - used
    if estimate > left:
        raise UserError(f"launch refused: its estimate ${estimate:.2f} exceeds the ${max(left, 0):.2f} left of the "
                        f"${total:.2f} budget (${used:.2f} spent or reserved, {path}); lower --max-run, or give "
                        "--over-budget")
