"""Transformer classifier: any Hugging Face encoder, attention pooling over its token states, a small head.

The specified model is CodeBERT (hidden 768) with a head hidden -> 384 -> 2 and dropout 0.1, pooling the
token states with learned attention weights (CLS pooling as an option). Tensors in, logits out: the encoder
is built (downloaded, loaded or configured) by the caller, never here.
"""
from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("attention", "cls")


class AttentionPooling(nn.Module):
    """A learned score per token, softmax over the real (unmasked) tokens, weighted sum of the states."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(states).squeeze(-1).float()
        # Padding gets exactly zero weight: masked_fill, not adding a large negative number, so that
        # whatever the padded states hold cannot leak into the result.
        scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # an all-padding row (never in practice) pools to zero
        return torch.einsum("bt,bth->bh", weights.to(states.dtype), states)


class TransformerClassifier(nn.Module):
    """``encoder(input_ids, attention_mask).last_hidden_state`` -> pooling -> hidden -> head_hidden -> 2."""

    def __init__(self, encoder: nn.Module, hidden: int, head_hidden: int = 384, dropout: float = 0.1,
                 pooling: str = "attention") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.pool = AttentionPooling(hidden) if pooling == "attention" else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, head_hidden), nn.GELU(),
                                  nn.Dropout(dropout), nn.Linear(head_hidden, 2))

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pool is None:
            return states[:, 0]  # the CLS (<s>) token every processed record starts with
        return self.pool(states, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(input_ids, attention_mask))

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights outside the encoder (pooling + head): what the Hugging Face export stores beside it."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
