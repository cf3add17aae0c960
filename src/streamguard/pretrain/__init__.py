"""Masked-language-model pre-training of StreamGuard's own C encoder (docs/pretrain.md)."""
