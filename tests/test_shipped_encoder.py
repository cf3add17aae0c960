"""The shipped encoder (models/streamguard-c-encoder): checksums, size, loading, and the full job using it."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch

from streamguard.config import TransformerConfig, load_config
from streamguard.pipeline import load_steps

ROOT = Path(__file__).resolve().parents[1]
ENCODER = ROOT / "models" / "streamguard-c-encoder"


def test_files_match_their_sha256_and_fit_25_mb() -> None:
    sums = [line.split("  ") for line in (ENCODER / "SHA256SUMS").read_text().splitlines()]
    assert {name for _, name in sums} >= {"model.safetensors", "config.json", "tokenizer.json", "README.md"}
    for digest, name in sums:
        assert hashlib.sha256((ENCODER / name).read_bytes()).hexdigest() == digest, name
    assert sum(p.stat().st_size for p in ENCODER.iterdir()) <= 25 * 2**20


def test_loads_in_fp32_with_its_tokenizer_and_fp16_weights() -> None:
    from safetensors import safe_open
    from transformers import AutoModel

    from streamguard.features.tokenize import SafeTokenizer
    with safe_open(str(ENCODER / "model.safetensors"), "pt") as fh:
        assert all(fh.get_slice(k).get_dtype() == "F16" for k in fh.keys())
    model = AutoModel.from_pretrained(str(ENCODER))
    assert next(model.parameters()).dtype == torch.float32
    tok = SafeTokenizer.load(ENCODER)
    assert tok.vocab_size == model.config.vocab_size and tok.hf.pad_token_id == model.config.pad_token_id
    ids, _ = tok.encode("static int f(AVCodecContext *avctx) { return av_malloc(16) != NULL; }")
    with torch.no_grad():
        states = model(input_ids=torch.tensor([[tok.cls_id, *ids, tok.sep_id]])).last_hidden_state
    assert torch.isfinite(states).all()


def test_the_pretrained_config_fine_tunes_it_and_the_full_job_does_not_yet() -> None:
    """Shipped and usable, not the job's default: the reduced ablation measured it behind training from scratch."""
    pre = load_config(TransformerConfig, ROOT / "configs" / "devign" / "transformer-pretrained.yaml")
    assert pre.model == "models/streamguard-c-encoder"
    tiny = load_config(TransformerConfig, ROOT / "configs" / "devign" / "transformer.yaml")
    assert dataclasses.replace(pre, model="tiny") == tiny  # the same fine-tuning, only the starting weights differ
    steps, _ = load_steps(ROOT / "configs" / "pipeline-devign.yaml", {})
    preprocess = next(s for s in steps if s["name"] == "preprocess")["args"]
    assert preprocess[preprocess.index("--tokenizer") + 1] == "bpe"
