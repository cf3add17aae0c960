"""The encoder to pre-train (a RoBERTa sized to the budget) and its masked-language-model loss.

The loss runs the output layer only on the masked positions (15% of the tokens): over a 16k vocabulary that
layer costs more than the whole small encoder, so projecting every position would waste most of a CPU step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderShape:
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    intermediate: int = 512
    max_length: int = 512  # positions the encoder supports (fine-tuning uses up to this many tokens)
    dropout: float = 0.1


def roberta_config(shape: EncoderShape, tokenizer: Any) -> Any:
    """A RobertaConfig numbered like CodeBERT's: positions start at pad_id + 1."""
    from transformers import RobertaConfig
    pad = tokenizer.pad_token_id
    return RobertaConfig(vocab_size=len(tokenizer), hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                         num_attention_heads=shape.heads, intermediate_size=shape.intermediate,
                         hidden_dropout_prob=shape.dropout, attention_probs_dropout_prob=shape.dropout,
                         type_vocab_size=1, max_position_embeddings=shape.max_length + pad + 1,
                         pad_token_id=pad, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)


class MaskedLM(nn.Module):
    """``RobertaForMaskedLM`` whose loss projects only the masked positions onto the vocabulary."""

    def __init__(self, mlm: nn.Module) -> None:
        super().__init__()
        self.mlm = mlm

    @classmethod
    def fresh(cls, shape: EncoderShape, tokenizer: Any) -> MaskedLM:
        from transformers import RobertaForMaskedLM
        return cls(RobertaForMaskedLM(roberta_config(shape, tokenizer)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        states = self.mlm.roberta(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        picked = labels != -100
        logits = self.mlm.lm_head(states[picked]).float()
        return nn.functional.cross_entropy(logits, labels[picked])

    @property
    def encoder(self) -> nn.Module:
        return self.mlm.roberta

    def parameter_count(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.mlm.roberta.parameters())
        emb = sum(p.numel() for p in self.mlm.roberta.embeddings.parameters())
        return {"encoder": total, "embeddings": emb, "transformer_layers": total - emb}
