"""Length-grouped batches (train.batches) on the token lengths of real Devign functions."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamguard.train.batches import length_grouped_batches
from streamguard.train.engine import EpochSampler
from streamguard.train.transformer import TokenDataset


@pytest.fixture(scope="module")
def lengths(processed_small: Path) -> list[int]:
    return TokenDataset(processed_small / "train.jsonl", 1, 512).lengths


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    """What a batch padded to its longest item costs, summed over the batches."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_every_item_once_and_only_the_last_batches_short(lengths: list[int]) -> None:
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    batches = length_grouped_batches(order, lengths, 3, 4, torch.Generator().manual_seed(1))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    sizes = [len(b) for b in batches]
    assert all(s == 3 for s in sizes[:-1]) and 0 < sizes[-1] <= 3  # 40 items, windows of 12: one short batch
    # within a window the batches are sorted slices: a batch's items are neighbours in length
    for window_start in range(0, len(order), 12):
        window = sorted(order[window_start:window_start + 12], key=lengths.__getitem__)
        cuts = [sorted(window[i:i + 3]) for i in range(0, len(window), 3)]
        assert all(c in [sorted(b) for b in batches] for c in cuts)


def test_grouping_pads_less_than_random_batches(lengths: list[int]) -> None:
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = length_grouped_batches(order, lengths, 4, 10, torch.Generator().manual_seed(1))
    random = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert padded_tokens(grouped, lengths) < 0.8 * padded_tokens(random, lengths)
    assert padded_tokens(grouped, lengths) >= sum(lengths)


def test_the_batch_order_is_a_function_of_the_generator(lengths: list[int]) -> None:
    order = list(range(len(lengths)))
    draw = [length_grouped_batches(order, lengths, 4, 10, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert draw[0] == draw[1] and draw[0] != draw[2]


def test_the_sampler_yields_batches_that_a_dataloader_cuts_whole(lengths: list[int]) -> None:
    sampler = EpochSampler(len(lengths), seed=7, lengths=lengths, batch_size=4)
    loader = torch.utils.data.DataLoader(range(len(lengths)), batch_size=4, sampler=sampler)
    epoch0 = [b.tolist() for b in loader]
    assert epoch0 == [b.tolist() for b in loader]  # a resumed run draws the same epoch
    sampler.set_epoch(1)
    assert [b.tolist() for b in loader] != epoch0
    random = [list(range(len(lengths)))[i:i + 4] for i in range(0, len(lengths), 4)]
    assert padded_tokens(epoch0, lengths) < padded_tokens(random, lengths)
    assert sorted(i for b in epoch0 for i in b) == list(range(len(lengths)))
