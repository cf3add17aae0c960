"""The transformer model: attention pooling ignores padding, and the model can fit a small batch."""
from __future__ import annotations

import torch
from transformers import AutoModel, RobertaConfig

from streamguard.features.processed import ProcessedDir
from streamguard.models.transformer import AttentionPooling, TransformerClassifier
from streamguard.train.transformer import TokenDataset

PAD = 1


def _model(pooling: str = "attention", vocab: int = 60) -> TransformerClassifier:
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=40, pad_token_id=PAD, type_vocab_size=1)
    return TransformerClassifier(AutoModel.from_config(cfg), 32, head_hidden=16, pooling=pooling).eval()


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[0, 7, 8, 9, 10, 2], [0, 11, 12, 2, PAD, PAD]])
    mask = (ids != PAD).long()
    return ids, mask


def test_attention_pooling_gives_padded_states_no_weight() -> None:
    pool = AttentionPooling(8)
    states = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = states.clone()
    changed[0, 3:] = 1e4 * torch.randn(2, 8)
    assert torch.allclose(pool(states, mask), pool(changed, mask))
    # and the padded row pools exactly as its unpadded prefix alone
    assert torch.allclose(pool(states, mask)[0], pool(states[:1, :3], mask[:1, :3])[0], atol=1e-6)


def test_padding_content_does_not_change_logits() -> None:
    for pooling in ("attention", "cls"):
        model = _model(pooling)
        ids, mask = _padded_batch()
        with torch.no_grad():
            base = model(ids, mask)
            other = ids.clone()
            other[1, 4:] = torch.tensor([33, 44])  # any token under the mask
            changed = model(other, mask)
            alone = model(ids[1:, :4], mask[1:, :4])  # the same function with no padding at all
        assert torch.allclose(base, changed, atol=1e-6), pooling
        assert torch.allclose(base[1], alone[0], atol=1e-5), pooling


def test_attention_pooling_is_not_plain_cls() -> None:
    # Guards the test above from passing trivially: the two poolings see different states.
    ids, mask = _padded_batch()
    att, cls = _model("attention"), _model("cls")
    with torch.no_grad():
        assert not torch.allclose(att.pooled(ids, mask), cls.pooled(ids, mask))


def test_loss_falls_when_overfitting_a_small_batch(processed_small) -> None:
    meta = ProcessedDir(processed_small).tokenizer_meta
    ds = TokenDataset(processed_small / "train.jsonl", int(meta["pad_id"]), 64)
    batch = ds.collate(list(range(8)))
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=int(meta["vocab_size"]), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=70,
                        pad_token_id=int(meta["pad_id"]), type_vocab_size=1)
    model = TransformerClassifier(AutoModel.from_config(cfg), 32, head_hidden=16).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(**batch["inputs"]), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert len(set(batch["label"].tolist())) == 2, "the batch should hold both classes"
    assert losses[-1] < 0.2 < losses[0], losses[::8]
