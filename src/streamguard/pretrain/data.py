"""Pre-training data: the BPE (trained on the corpus plus Devign train), token ids cached as .npy, batches.

Batches are drawn from an endless stream of shuffled passes over the corpus, ``steps_per_epoch`` batches an
"epoch" (an epoch is a checkpoint and validation interval, not a pass), grouped by length so that a batch of
short functions is not padded to a long one. The order is a function of (seed, epoch) alone, so a run resumed
from a checkpoint draws the same batches as one that was never interrupted.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamguard.atomic import atomic_open
from streamguard.errors import UserError
from streamguard.features.tokenize import SafeTokenizer
from streamguard.train.batches import length_grouped_batches


def prepare_tokenizer(folder: Path, corpus_codes: list[str], devign_train: list[str], vocab_size: int) -> Any:
    """The run's tokenizer: trained once (BPE on corpus + Devign train), then reused so a resumed run matches."""
    if (folder / "tokenizer.json").is_file():
        return SafeTokenizer.load(folder).hf
    return SafeTokenizer.train_bpe(corpus_codes + devign_train, vocab_size, folder).hf


def encode_cached(tokenizer: Any, codes: list[str], max_length: int, cache: Path) -> list[np.ndarray]:
    """Token ids (with <s> ... </s>, cut to max_length) of each function, cached in one flat .npy + offsets."""
    ids_path, off_path = cache.with_suffix(".ids.npy"), cache.with_suffix(".offsets.npy")
    if ids_path.is_file() and off_path.is_file():
        flat, offsets = np.load(ids_path, allow_pickle=False), np.load(off_path, allow_pickle=False)
    else:
        rows: list[list[int]] = []
        for start in range(0, len(codes), 2000):
            rows += tokenizer(codes[start:start + 2000], truncation=True, max_length=max_length)["input_ids"]
        offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
        flat = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
        cache.parent.mkdir(parents=True, exist_ok=True)
        for path, arr in ((ids_path, flat), (off_path, offsets)):
            with atomic_open(path, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


class StreamBatches(torch.utils.data.Sampler[list[int]]):
    """``steps`` batches per epoch from consecutive shuffled passes, length-grouped within windows."""

    def __init__(self, lengths: list[int], batch_size: int, steps: int, seed: int, window: int = 50) -> None:
        if len(lengths) < batch_size:
            raise UserError(f"the corpus has {len(lengths)} functions, fewer than one batch ({batch_size})")
        self.lengths, self.batch_size, self.steps, self.seed, self.window = lengths, batch_size, steps, seed, window
        self.epoch = 0
        self.sampler = self  # Lightning calls set_epoch on batch_sampler.sampler

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pass(self, k: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + k)
        return torch.randperm(len(self.lengths), generator=g).tolist()

    def __iter__(self) -> Any:
        # A generator: nothing is drawn until the first batch is asked for. Lightning creates a resumed run's
        # iterator before it calls set_epoch, and an eager __iter__ would replay epoch 0's batches.
        n, per_epoch = len(self.lengths), self.steps * self.batch_size
        start = self.epoch * per_epoch
        first, offset = divmod(start, n)
        items: list[int] = []
        k = first
        while len(items) < offset + per_epoch:
            items += self._pass(k)
            k += 1
        items = items[offset:offset + per_epoch]
        yield from length_grouped_batches(items, self.lengths, self.batch_size, self.window,
                                          torch.Generator().manual_seed(self.seed + self.epoch))

    def __len__(self) -> int:
        return self.steps


class TokenRows(torch.utils.data.Dataset):
    def __init__(self, rows: list[np.ndarray]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[i].tolist()}


def fixed_masked_batches(collator: Any, rows: list[np.ndarray], batch_size: int, seed: int) -> list[dict]:
    """Held-out batches masked once with a fixed seed: every evaluation scores the very same masks."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return [dict(collator([{"input_ids": r.tolist()} for r in rows[i:i + batch_size]]))
                for i in range(0, len(rows), batch_size)]


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
