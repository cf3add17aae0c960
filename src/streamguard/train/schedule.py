"""The learning-rate schedule as a pure function of the step, so that a resumed run and an uninterrupted
one compute the same rate from the global step alone (and it can be tested without training)."""
from __future__ import annotations


def lr_scale(step: int, warmup_steps: int, total_steps: int, scheduler: str) -> float | None:
    """The factor on the base learning rate at optimiser step ``step`` (0-based).

    Linear warm-up over ``warmup_steps`` for every scheduler; then ``linear`` decays to 0 at ``total_steps``.
    ``None`` means "leave the rate alone" (after warm-up the plateau scheduler, or none, owns it).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if scheduler == "linear":
        total = max(warmup_steps + 1, total_steps)
        return max(0.0, (total - step) / max(1, total - warmup_steps))
    return None
