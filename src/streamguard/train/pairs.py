"""Training on fix pairs: a vulnerable function and its fixed version (``pair_id`` in the raw rows: Big-Vul, the
Debian pool, a ``data merge`` of them) should be told apart by the model, whatever else they share.

Beside the classification loss, every neural kind can add a pairwise margin ranking loss on the vulnerable-margin
logit ``z = l1 - l0``: for each (vulnerable, fixed) pair in a batch, ``max(0, margin - (z_v - z_f))``, averaged
over the batch's pairs and weighted by ``EngineConfig.pair_loss_weight`` (0, the default, leaves training exactly
as without it). The batches keep the members of a pair together (``batches.paired_batches``). The lexical kind
adds the same preference as difference rows to its logistic regression (``train.lexical``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields
from streamguard.train.batches import paired_batches

log = logging.getLogger(__name__)


def pair_groups(data_dir: Path, records: list[dict[str, Any]], split: str = "train") -> np.ndarray:
    """Per record, the index of its fix pair (-1: none): records sharing a raw ``pair_id`` among which both a
    vulnerable and a fixed one are present (``records`` need ``id``, ``label`` and ``metadata``)."""
    ids = raw_fields(Path(data_dir), split, records, fields=("pair_id",))
    by_pair: dict[str, list[int]] = {}
    for k, rec in enumerate(records):
        pid = ids[rec["id"]]["pair_id"]
        if pid:
            by_pair.setdefault(str(pid), []).append(k)
    groups = np.full(len(records), -1, dtype=np.int64)
    n = 0
    for members in by_pair.values():
        if {records[k]["label"] for k in members} == {0, 1}:
            groups[members] = n
            n += 1
    return groups


def dataset_groups(data_dir: Path, ids: Sequence[str]) -> np.ndarray:
    """``pair_groups`` of a training dataset's items, in the dataset's order."""
    recs = {r["id"]: r for r in ProcessedDir(data_dir).read_split("train", keep=("id", "label", "metadata"))}
    groups = pair_groups(data_dir, [recs[i] for i in ids])
    log.warning("pair loss: %d fix pairs among %d training items", int(groups.max(initial=-1)) + 1, len(ids))
    return groups


def pair_margin_loss(logits: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                     margin: float) -> torch.Tensor | None:
    """Mean hinge ``max(0, margin - (z_v - z_f))`` over every (vulnerable, fixed) pair of one group in the batch;
    None when the batch holds no pair."""
    z = logits[:, 1] - logits[:, 0]
    same = (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)
    pairs = same & (labels[:, None] == 1) & (labels[None, :] == 0)
    if not bool(pairs.any()):
        return None
    v, f = pairs.nonzero(as_tuple=True)
    return torch.relu(margin - (z[v] - z[f])).mean()


class PairBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches that keep fix pairs together; like ``engine.EpochSampler`` a function of (seed, epoch) alone."""

    POOL_BATCHES = 50

    def __init__(self, groups: np.ndarray, seed: int, batch_size: int, lengths: list[int] | None = None) -> None:
        self.groups, self.seed, self.epoch = groups.tolist(), seed, 0
        self.batch_size, self.lengths = batch_size, lengths

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at the start of every epoch
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.groups), generator=g).tolist()
        return paired_batches(order, self.groups, self.lengths, self.batch_size, self.POOL_BATCHES, g)

    def __iter__(self) -> Any:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def with_difference_rows(x: Any, y: np.ndarray, weights: np.ndarray | None, groups: np.ndarray,
                         pair_weight: float) -> tuple[Any, np.ndarray, np.ndarray]:
    """The lexical kind's pairwise term: for every (vulnerable, fixed) pair of a group, the rows ``x_v - x_f``
    (label 1) and ``x_f - x_v`` (label 0), each of weight ``pair_weight``, after the items' own rows. A linear
    model's logistic loss on them is the pairwise logistic (RankNet) loss on ``w.x_v - w.x_f`` (the mirrored rows
    pull the intercept towards 0, which the threshold chosen on valid absorbs)."""
    from scipy import sparse
    v_rows, f_rows = [], []
    for g in np.unique(groups[groups >= 0]):
        members = np.flatnonzero(groups == g)
        for v in members[y[members] == 1]:
            for f in members[y[members] == 0]:
                v_rows.append(v)
                f_rows.append(f)
    base = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if not v_rows:
        log.warning("pair loss: the training items hold no fix pair; trained without the pairwise term")
        return x, y, base
    diff = x[v_rows] - x[f_rows]
    n = len(v_rows)
    log.warning("pair loss: %d fix pairs added as %d difference rows of weight %g", n, 2 * n, pair_weight)
    return (sparse.vstack([x, diff, -diff], format="csr"), np.concatenate([y, np.ones(n, int), np.zeros(n, int)]),
            np.concatenate([base, np.full(2 * n, pair_weight)]))
