"""``cloud budget``'s summary of the ledger: spend by phase and job against the budget."""
from __future__ import annotations

from typing import Any

from streamguard.cloud import ledger
from streamguard.errors import UserError


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    finished = entry.get("status") in ledger.FINISHED
    return {"job": entry["job"], "kind": entry.get("kind"), "phase": entry.get("phase") or "unassigned",
            "instance": f"{entry.get('instance_count', 1)} x {entry.get('instance_type')}",
            "spot": bool(entry.get("spot")), "status": entry.get("status"),
            "estimate_usd": entry.get("estimate_usd"), "cost_usd": entry.get("cost_usd") if finished else None,
            "spot_saving_usd": entry.get("spot_saving_usd") if finished else None,
            "billable_s": entry.get("billable_s"), "training_s": entry.get("training_s"),
            "storage_usd": ledger.storage_usd(entry), "counted_usd": round(ledger.spent(entry), 4)}


def summarise(data: dict[str, Any], budget: float, phase: str | None = None) -> dict[str, Any]:
    rows = [_row(j) for j in data["jobs"]]
    phases: dict[str, float] = {}
    for r in rows:
        phases[r["phase"]] = round(phases.get(r["phase"], 0.0) + r["counted_usd"], 4)
    if phase is not None and phase not in phases:
        raise UserError(f"no job in phase {phase!r} (phases: {', '.join(sorted(phases)) or 'none yet'})")
    spent = round(sum(phases.values()), 4)
    return {"budget_usd": budget, "spent_usd": spent, "left_usd": round(budget - spent, 4), "by_phase": phases,
            "phase": phase, "jobs": [r for r in rows if phase is None or r["phase"] == phase]}


def _usd(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(summary: dict[str, Any]) -> str:
    lines = [f"budget ${summary['budget_usd']:.2f}: spent or reserved ${summary['spent_usd']:.2f}, "
             f"left ${summary['left_usd']:.2f}",
             "by phase: " + (", ".join(f"{k} ${v:.2f}" for k, v in sorted(summary["by_phase"].items())) or "none")]
    if summary["phase"]:
        lines.append(f"phase {summary['phase']}:")
    lines.append(f"{'job':<40}{'phase':<12}{'instance':<22}{'spot':<6}{'status':<12}{'estimate':>9}{'cost':>8}"
                 f"{'saved':>8}{'S3':>7}")
    for r in summary["jobs"]:
        lines.append(f"{r['job']:<40}{r['phase']:<12}{r['instance']:<22}{'yes' if r['spot'] else 'no':<6}"
                     f"{r['status'] or '-':<12}{_usd(r['estimate_usd']):>9}{_usd(r['cost_usd']):>8}"
                     f"{_usd(r['spot_saving_usd']):>8}{_usd(r['storage_usd']):>7}")
    if not summary["jobs"]:
        lines.append("(no jobs recorded)")
    lines.append("cost: a finished job's billable time at the price table's rates; estimate: an unfinished job's "
                 "ceiling, counted until it ends; S3: its checkpoints at $0.023/GB-month")
    return "\n".join(lines)
