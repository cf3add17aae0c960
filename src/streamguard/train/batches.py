"""Length-grouped batches: each batch is padded to its longest item, so batches of similar lengths cost less.

One rule for fine-tuning (``engine.EpochSampler``) and pre-training (``pretrain.data.StreamBatches``): take a
shuffled order, sort each window of ``window`` batches by length, cut it into batches, shuffle the batches.
Within a window the lengths are close; across windows and epochs the order stays random.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def length_grouped_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, window: int,
                           generator: torch.Generator) -> list[list[int]]:
    """Batches of ``order``'s items, grouped by ``lengths``, full batches in shuffled order, short ones last.

    Short batches (at most one per window) go last so that a ``DataLoader(batch_size=...)`` reading the
    flattened order cuts exactly these batches.
    """
    span = window * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lengths.__getitem__)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]
    return [full[i] for i in torch.randperm(len(full), generator=generator).tolist()] + short


def paired_batches(order: Sequence[int], groups: Sequence[int], lengths: Sequence[int] | None, batch_size: int,
                   window: int, generator: torch.Generator) -> list[list[int]]:
    """Batches of ``order``'s items in which the items of one group (a fix pair: ``groups[i] >= 0``) always sit
    together, so a pairwise loss sees both sides. A group is a unit placed where its first member falls in
    ``order``; units are packed into batches of at most ``batch_size`` items (a unit larger than that is a batch of
    its own). With ``lengths``, units are grouped by their longest item like ``length_grouped_batches`` and the
    batches are then shuffled."""
    units: list[list[int]] = []
    at: dict[int, int] = {}
    for i in order:
        g = groups[i]
        if g < 0:
            units.append([i])
        elif g in at:
            units[at[g]].append(i)
        else:
            at[g] = len(units)
            units.append([i])
    if lengths is not None:
        span = window * batch_size
        grouped: list[list[int]] = []
        start = size = 0
        for k, unit in enumerate(units + [[]]):  # windows of about ``span`` items, each sorted by length
            if size >= span or k == len(units):
                grouped += sorted(units[start:k], key=lambda u: max(lengths[i] for i in u))
                start, size = k, 0
            size += len(unit)
        units = grouped
    batches: list[list[int]] = []
    for unit in units:
        if batches and len(batches[-1]) + len(unit) <= batch_size:
            batches[-1].extend(unit)
        else:
            batches.append(list(unit))
    if lengths is None:
        return batches
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
