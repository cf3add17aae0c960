"""``streamguard cloud estimate``: hours and dollars of a job from measured throughput and instance prices.

Throughput figures are the project's own measurements (benchmarks/results/, cited per figure; a test keeps
them equal to the files). Moving a figure from the device it was measured on to another instance uses a
stated scaling rule, not a measurement: GPU memory bandwidth relative to the H100's 3,350 GB/s for GPU
figures, vCPUs relative to the 2 of the measuring machine for CPU figures. Prices are list prices of
SageMaker training in us-east-1 (docs/cloud-cost.md); spot is a typical discount, not a quote.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamguard.cloud.prices import (  # noqa: F401 (re-exported: the estimate's public constants)
    H100_BANDWIDTH_GBS,
    INSTANCES,
    MEASURED_VCPUS,
    SPOT_DISCOUNT,
    START_OVERHEAD_H,
    Instance,
)
from streamguard.errors import UserError

# (kind, variant, device) -> samples per second through training (validation included where the source says)
THROUGHPUT: dict[tuple[str, str, str], dict[str, Any]] = {
    ("gnn", "default", "cpu"): {"per_s": 350.1, "cite": "benchmarks/results/gnn_compaction_compact.json "
                                "train_graphs_per_s_incl_validation (2 vCPUs, full Devign)"},
    # The GNN is small: its GPU rate was bound by the input pipeline on a host shared by 7 runs, not by the
    # H100, so it is not scaled by GPU bandwidth (scale "none").
    ("gnn", "default", "gpu"): {"per_s": round(21854 / 12.7, 1), "scale": "none",
                                "cite": "benchmarks/results/gnn_gpu_sweep.json variant 'edges' s_per_epoch 12.7 "
                                "over 21,854 train graphs (H100, 7 runs sharing it)"},
    ("transformer", "codebert", "gpu"): {"per_s": 501.18, "cite": "benchmarks/results/gpu_transformer_throughput"
                                         ".json results.16-mixed.samples_per_s (H100, 512 tokens, batch 16)"},
    ("transformer", "tiny", "cpu"): {"per_s": 10.54, "cite": "benchmarks/results/transformer_cpu.json "
                                     "throughput_samples_per_s_at_512 (2 vCPUs)"},
    ("lexical", "default", "cpu"): {"per_s": round(21854 / 382.4, 1), "cite": "benchmarks/results/lexical_devign"
                                    ".json train_seconds_incl_c_grid 382.4 for 21,854 train functions (2 vCPUs)"},
}


def _variant(kind: str, cfg: Any) -> str:
    if kind == "transformer":
        return "tiny" if getattr(cfg, "model", "") == "tiny" else "codebert"
    return "default"


def samples_per_s(kind: str, variant: str, inst: Instance) -> tuple[float, str] | None:
    """Throughput on ``inst`` by the scaling rule, with its citation; None where nothing was measured."""
    if inst.gpu:
        fig = THROUGHPUT.get((kind, variant, "gpu"))
        if fig and fig.get("scale") == "none":
            return fig["per_s"] * inst.gpus, f"{fig['cite']} x {inst.gpus} ({inst.gpus} {inst.gpu}, not scaled)"
        if fig:
            scale = inst.gpu_bandwidth_gbs / H100_BANDWIDTH_GBS * inst.gpus
            return fig["per_s"] * scale, f"{fig['cite']} x {scale:.3f} ({inst.gpus} {inst.gpu} bandwidth / H100's)"
    fig = THROUGHPUT.get((kind, variant, "cpu"))
    if fig:
        scale = inst.vcpus / MEASURED_VCPUS
        return fig["per_s"] * scale, (f"{fig['cite']} x {scale:.1f} ({inst.vcpus} vCPUs / {MEASURED_VCPUS}; "
                                      "linear in vCPUs, optimistic)")
    return None


def count_train(data_dir: Path) -> int:
    path = Path(data_dir) / "train.jsonl"
    if not path.is_file():
        raise UserError(f"{data_dir} is not a processed dataset: train.jsonl is missing")
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def passes(kind: str, cfg: Any) -> list[tuple[str, Any, float]]:
    """(kind, its config, training passes over the train split) of what the job trains. Neural kinds: every
    epoch of the budget (early stopping may end sooner); lexical: one fit; fusion: each base's fold models on
    (k-1)/k of train plus its full model."""
    if kind != "fusion":
        return [(kind, cfg, float(getattr(cfg, "epochs", 1)))]
    from streamguard.train import registry

    out = []
    for base in cfg.models:
        base_cfg = registry.config_class(base)()
        full = float(getattr(base_cfg, "epochs", 1))
        fold = float(cfg.fold_epochs or full) if hasattr(base_cfg, "epochs") else 1.0
        out.append((base, base_cfg, cfg.folds * fold * (cfg.folds - 1) / cfg.folds + full))
    return out


def estimate(kind: str, data_dir: Path | None, cfg: Any, instance_types: list[str] | None = None,
             instance_count: int = 1) -> dict[str, Any]:
    """One row per instance type: hours (an upper bound), on-demand and spot dollars, and the sources.
    ``instance_count`` > 1: a DDP job whose instances split the samples evenly (linear: gradient exchange
    between instances is not measured, so optimistic), billed for every instance."""
    if instance_count < 1:
        raise UserError(f"--instance-count must be at least 1, got {instance_count}")
    if kind == "pretrain":
        from streamguard.cloud.pretrain_cost import estimate_pretrain
        return estimate_pretrain(cfg, instance_types, instance_count)
    if data_dir is None:
        raise UserError(f"--data is required to price {kind}: the processed dataset whose train split is counted")
    n = count_train(data_dir)
    plan = passes(kind, cfg)
    rows = []
    for name in instance_types or list(INSTANCES):
        inst = INSTANCES.get(name)
        if inst is None:
            raise UserError(f"no price for {name}; known: {', '.join(INSTANCES)}")
        seconds, cites, missing = 0.0, [], []
        for base, base_cfg, count in plan:
            got = samples_per_s(base, _variant(base, base_cfg), inst)
            if got is None:
                missing.append(f"{base} ({_variant(base, base_cfg)})")
                continue
            seconds += n * count / got[0]
            cites.append(got[1])
        if missing:
            rows.append({"instance": name, "hours": None, "note": f"no throughput measured for {', '.join(missing)}"
                         " on this kind of device"})
            continue
        hours = seconds / instance_count / 3600 + START_OVERHEAD_H
        usd = hours * inst.on_demand_usd_h * instance_count
        rows.append({"instance": name, "items_per_s": round(n * sum(p[2] for p in plan) / seconds * instance_count, 1),
                     "hours": round(hours, 2), "on_demand_usd": round(usd, 2),
                     "spot_usd": round(usd * (1 - SPOT_DISCOUNT), 2), "sources": cites})
    return {"kind": kind, "train_items": n, "instance_count": instance_count,
            "passes": {b: c for b, _, c in plan}, "rows": rows}


def render(result: dict[str, Any]) -> str:
    plan = ", ".join(f"{k} {v:g}" for k, v in result["passes"].items())
    count = result.get("instance_count", 1)
    head = (f"pretrain: {result['passes']['pretrain steps']:g} steps of {result['train_items']} sequences in all "
            "(the config's epochs x steps_per_epoch; max_minutes bounds it)") if result["kind"] == "pretrain" else (
        f"{result['kind']}: {result['train_items']} train items; passes over them: {plan} "
        "(an upper bound: early stopping ends sooner)")
    if count > 1:
        head += f"; {count} instances, linear speed-up assumed, dollars for all of them"
    lines = [head, f"{'instance':<18}{'items/s':>10}{'hours':>8}{'on-demand $':>13}{'spot $':>9}"]
    for r in result["rows"]:
        if r["hours"] is None:
            lines.append(f"{r['instance']:<18}{'-':>10}  {r['note']}")
        elif r["items_per_s"] is None:
            lines.append(f"{r['instance']:<18}{'-':>10}{r['hours']:>8}{r['on_demand_usd']:>13}{r['spot_usd']:>9}")
        else:
            lines.append(f"{r['instance']:<18}{r['items_per_s']:>10}{r['hours']:>8}{r['on_demand_usd']:>13}"
                         f"{r['spot_usd']:>9}")
    lines.append("sources (figure x scaling rule):")
    lines += [f"  {c}" for c in sorted({c for r in result["rows"] for c in r.get("sources", [])})]
    return "\n".join(lines)


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
