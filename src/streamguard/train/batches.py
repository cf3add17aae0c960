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
