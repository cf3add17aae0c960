"""MLM pre-training on the kernel fixture corpus: the held-out loss falls, the run resumes, the encoder exports
in Hugging Face format and fine-tunes with `train transformer --model PATH`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from streamguard.config import PreprocessConfig, TransformerConfig
from streamguard.data.corpus import build_corpus, devign_functions
from streamguard.pretrain.export import load_mlm, read_curve
from streamguard.pretrain.train import PretrainConfig, pretrain

KERNEL = Path(__file__).parent / "fixtures" / "kernel_c"


def small_cfg(devign: Path, **kw) -> PretrainConfig:
    base = {"devign": str(devign), "vocab_size": 700, "hidden": 32, "layers": 1, "heads": 2, "intermediate": 64,
            "max_length": 128, "steps_per_epoch": 6, "epochs": 3, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2,
            "valid_functions": 12, "tracking_uri": "off", "threads": 1, "seed": 3}
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def corpus(raw_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(KERNEL, out, raw_small)
    return out


@pytest.fixture(scope="module")
def run(corpus: Path, raw_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pretrain(corpus, tmp_path_factory.mktemp("pt") / "run", small_cfg(raw_small))


def test_a_few_steps_lower_the_heldout_mlm_loss(run: Path) -> None:
    summary = json.loads((run / "pretrain_summary.json").read_text())
    assert summary["steps"] == 18 and summary["tokens_seen"] > 18 * 8 * 10
    assert summary["heldout_mlm_loss_after"] < summary["heldout_mlm_loss_before"] - 0.3
    curve = read_curve(run / "loss_curve.csv")
    assert [int(r["step"]) for r in curve] == [6, 12, 18]
    assert float(curve[-1]["val_loss"]) < float(curve[0]["val_loss"])


def test_export_is_a_hugging_face_encoder_with_card_and_checksums(run: Path, raw_small: Path) -> None:
    from transformers import AutoModel, AutoTokenizer
    folder = run / "encoder"
    enc = AutoModel.from_pretrained(str(folder))
    assert next(enc.parameters()).dtype == torch.float32 and enc.config.hidden_size == 32
    assert len(AutoTokenizer.from_pretrained(str(folder))) == enc.config.vocab_size
    card = (folder / "README.md").read_text()
    assert "GPL-2.0" in card and "held-out MLM loss" in card and "| 2 | 18 |" in card
    sums = dict(reversed(line.split("  ")) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert {"model.safetensors", "config.json", "tokenizer.json", "mlm_head.safetensors"} <= sums.keys()
    # the shipped (fp16) weights reproduce the held-out loss the run measured
    from transformers import DataCollatorForLanguageModeling

    from streamguard.pretrain import data as pdata
    from streamguard.pretrain.train import heldout_loss
    tok = AutoTokenizer.from_pretrained(str(folder))
    rows = pdata.encode_cached(tok, devign_functions(raw_small, "valid", 12), 128, run / "cache" / "check")
    batches = pdata.fixed_masked_batches(DataCollatorForLanguageModeling(tok), rows, 8, 3)
    after = json.loads((run / "pretrain_summary.json").read_text())["heldout_mlm_loss_after"]
    assert heldout_loss(load_mlm(folder), batches) == pytest.approx(after, abs=0.02)


def test_rerun_resumes_from_the_last_checkpoint(corpus: Path, raw_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    pretrain(corpus, out, small_cfg(raw_small, epochs=1))
    pretrain(corpus, out, small_cfg(raw_small, epochs=2))
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert summary["resumed_from"].endswith(".ckpt") and summary["steps"] == 12
    assert [int(r["step"]) for r in read_curve(out / "loss_curve.csv")] == [6, 12]


def test_train_transformer_fine_tunes_the_pretrained_encoder(run: Path, raw_small: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from streamguard.data.ingest import import_codexglue
    from streamguard.features.preprocess import preprocess
    from streamguard.train import transformer as kind
    import_codexglue(raw_small, tmp_path / "raw")
    data = tmp_path / "processed"
    preprocess(tmp_path / "raw", data, PreprocessConfig(tokenizer=str(run / "encoder"), max_tokens=128, workers=1))
    cfg = TransformerConfig(model=str(run / "encoder"), max_length=128, batch_size=8, epochs=1, lr=1e-3,
                            tracking_uri="off", threads=1, seed=1, head_hidden=16)
    model, _ = kind.build_model(cfg, data)
    shipped = load_file(str(run / "encoder" / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight.detach(), shipped.float())
    out = kind.train(data, tmp_path / "ft", cfg)
    exp = json.loads((out / "exp_config.json").read_text())
    assert exp["encoder"]["hidden_size"] == 32 and (out / "predictions" / "test.jsonl").is_file()


def test_init_continues_an_exported_encoder_with_its_tokenizer(run: Path, corpus: Path, raw_small: Path,
                                                               tmp_path: Path) -> None:
    """Task-adaptive pre-training starts where the export left off: same vocabulary, same held-out loss."""
    first = json.loads((run / "pretrain_summary.json").read_text())
    out = tmp_path / "stage2"
    pretrain(corpus, out, small_cfg(raw_small, init=str(run / "encoder"), epochs=1))
    summary = json.loads((out / "pretrain_summary.json").read_text())
    # before = the exported (fp16) encoder's held-out loss, not a random model's
    assert summary["heldout_mlm_loss_before"] == pytest.approx(first["heldout_mlm_loss_after"], abs=0.02)
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (run / "encoder" / "tokenizer.json").read_bytes()
    assert "continued from the encoder" in (out / "encoder" / "README.md").read_text()


def test_init_with_another_shape_is_one_clear_error(run: Path, corpus: Path, raw_small: Path, tmp_path: Path) -> None:
    from streamguard.errors import UserError
    with pytest.raises(UserError, match="differs from the config"):
        pretrain(corpus, tmp_path / "bad", small_cfg(raw_small, init=str(run / "encoder"), hidden=64))
