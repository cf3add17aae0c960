"""The transformer kind's dataset: token ids of one processed split, padded per batch (as ``GraphDataset`` is the
GNN's)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from streamguard.data.records import RecordError, read_jsonl_lines
from streamguard.errors import UserError


class TokenDataset(Dataset):
    """Token ids of one processed split (optionally a subset of ids) with per-sample loss weights."""

    def __init__(self, path: Path, pad_id: int, max_length: int, ids: set[str] | None = None,
                 weights: dict[str, float] | None = None) -> None:
        if not path.is_file():
            raise UserError(f"processed split not found: {path}")
        self.pad_id, self.ids, self.projects = pad_id, [], []
        self.tokens: list[torch.Tensor] = []
        labels = []
        for lineno, rec in read_jsonl_lines(path):
            if isinstance(rec, RecordError):
                raise UserError(f"{path}:{lineno}: {rec}")
            try:
                rid, toks, label = str(rec["id"]), rec["tokens"], int(rec["label"])
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f"{path}:{lineno}: not a processed record ({exc!r})") from None
            if ids is not None and rid not in ids:
                continue
            if len(toks) < 2:
                raise UserError(f"{path}:{lineno}: record {rid} has fewer than 2 tokens (needs <s> ... </s>)")
            if len(toks) > max_length:  # keep the CLS at the start and the SEP at the end
                toks = toks[: max_length - 1] + toks[-1:]
            self.ids.append(rid)
            self.projects.append(str((rec.get("metadata") or {}).get("project") or ""))
            self.tokens.append(torch.tensor(toks, dtype=torch.int32))  # int32: half the memory of int64
            labels.append(label)
        self.labels = torch.tensor(labels, dtype=torch.int64)
        w = weights or {}
        self.weights = torch.tensor([float(w.get(k, 1.0)) for k in self.ids], dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        """Tokens per item: the engine groups batches by it (padding is to the batch's longest)."""
        return [len(t) for t in self.tokens]

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, items: list[int]) -> dict[str, Any]:
        """Pad to the longest sequence of the batch, not to max_length: short functions cost less."""
        width = max(len(self.tokens[i]) for i in items)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(items), width), dtype=torch.int64)
        for row, i in enumerate(items):
            n = len(self.tokens[i])
            input_ids[row, :n] = self.tokens[i]
            mask[row, :n] = 1
        idx = torch.tensor(items, dtype=torch.int64)
        return {"inputs": {"input_ids": input_ids, "attention_mask": mask}, "label": self.labels[idx],
                "weight": self.weights[idx], "index": idx}
