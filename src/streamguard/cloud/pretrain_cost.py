"""``cloud estimate pretrain``: hours and dollars of an encoder pre-training job from its measured throughput.

A pre-training job runs a fixed number of optimiser steps (``epochs x steps_per_epoch``, or ``max_steps``), not
passes over its corpus, so its size does not enter. Figures (benchmarks/results/pretrain/, a test keeps them
equal to the files):
- the kernel run: ``tokens_seen`` over ``wall_s_this_process`` of the whole job (BPE, data, held-out evaluation
  every epoch included) for the default shape h128-l2, batch 16, on 2 vCPUs; its tokens per sequence
  (``tokens_seen / steps / batch``) are taken for any config (capped at ``max_length``);
- other shapes: that rate x the shape's training-step tokens/s over h128-l2's (``throughput_cpu.jsonl``).
CPU instances scale linearly with vCPUs (optimistic). No pre-training was measured on a GPU: a GPU row is bounded
by ``max_minutes`` where the config sets one, and says "not measured" otherwise.
"""
from __future__ import annotations

import math
from typing import Any

from streamguard.errors import UserError

RUN = {"tokens_seen": 8389148, "wall_s": 3194.6, "steps": 2500, "batch": 16, "shape": "h128-l2",
       "cite": "benchmarks/results/pretrain/pretrain_summary.json tokens_seen / wall_s_this_process "
               "(h128-l2, batch 16, 2 vCPUs, whole job)"}
# shape -> (hidden, layers, heads, intermediate, training-step tokens/s on 2 threads)
SHAPES = {"h128-l2": (128, 2, 2, 512, 6897), "h128-l4": (128, 4, 2, 512, 4419),
          "h192-l3": (192, 3, 3, 768, 3070), "h256-l4": (256, 4, 4, 1024, 1477)}
SHAPES_CITE = "benchmarks/results/pretrain/throughput_cpu.jsonl tokens_per_s"


def _shape(cfg: Any) -> str | None:
    for name, (hidden, layers, heads, inter, _) in SHAPES.items():
        if (cfg.hidden, cfg.layers, cfg.heads, cfg.intermediate) == (hidden, layers, heads, inter):
            return name
    return None


def tokens_per_s(shape: str) -> float:
    run_rate = RUN["tokens_seen"] / RUN["wall_s"]
    return run_rate * SHAPES[shape][4] / SHAPES[RUN["shape"]][4]


def steps(cfg: Any) -> int:
    total = int(cfg.epochs) * int(cfg.steps_per_epoch)
    return min(total, int(cfg.max_steps)) if cfg.max_steps else total


def _row(cfg: Any, inst: Any, shape: str | None, count: int) -> dict[str, Any]:
    from streamguard.cloud.prices import MEASURED_VCPUS, SPOT_DISCOUNT, START_OVERHEAD_H

    cap_s = cfg.max_minutes * 60 if cfg.max_minutes and cfg.max_minutes > 0 else math.inf
    seq = min(RUN["tokens_seen"] / RUN["steps"] / RUN["batch"], cfg.max_length)
    work = steps(cfg) * cfg.batch_size * seq
    if inst.gpu is None and shape is not None:
        per_s = tokens_per_s(shape) * inst.vcpus / MEASURED_VCPUS
        seconds, note = min(work / per_s, cap_s), f"{RUN['cite']} x {SHAPES_CITE} ratio x {inst.vcpus}/2 vCPUs"
    elif math.isfinite(cap_s):
        per_s, seconds, note = None, cap_s, "no GPU pre-training measured: bounded by the config's max_minutes"
    else:
        what = "on a GPU" if inst.gpu else f"for shape h{cfg.hidden}-l{cfg.layers}"
        return {"instance": inst.name, "hours": None, "note": f"no pre-training throughput measured {what}"}
    hours = seconds / 3600 + START_OVERHEAD_H
    usd = hours * inst.on_demand_usd_h * count
    return {"instance": inst.name, "items_per_s": None if per_s is None else round(per_s / seq, 1),
            "hours": round(hours, 2), "on_demand_usd": round(usd, 2),
            "spot_usd": round(usd * (1 - SPOT_DISCOUNT), 2), "sources": [note]}


def estimate_pretrain(cfg: Any, instance_types: list[str] | None, count: int = 1) -> dict[str, Any]:
    """One row per instance type, as ``estimate.estimate`` makes them; items are sequences (functions)."""
    from streamguard.cloud.prices import INSTANCES

    if count != 1:
        raise UserError("a pretrain job runs on one instance (--instance-count 1)")
    shape = _shape(cfg)
    rows = []
    for name in instance_types or list(INSTANCES):
        if name not in INSTANCES:
            raise UserError(f"no price for {name}; known: {', '.join(INSTANCES)}")
        rows.append(_row(cfg, INSTANCES[name], shape, count))
    return {"kind": "pretrain", "train_items": steps(cfg) * cfg.batch_size, "instance_count": count,
            "passes": {"pretrain steps": float(steps(cfg))}, "rows": rows}
