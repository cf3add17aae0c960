"""The transformer kind on real processed functions with a tiny model: run dir, export, resume, refusals."""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, RobertaConfig

from streamguard import cli
from streamguard.config import TransformerConfig
from streamguard.data.records import read_jsonl
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.features.tokenize import SafeTokenizer
from streamguard.provenance import sha256_file
from streamguard.rundir import read_metrics_csv
from streamguard.train import engine, registry
from streamguard.train import transformer as kind
from streamguard.train.predict import predict_run

CONTRACT = {"id", "label", "prob_vulnerable", "logits", "project"}


def tiny_cfg(**kw) -> TransformerConfig:
    base = {"model": "tiny", "tiny_layers": 1, "tiny_hidden": 32, "tiny_heads": 2, "tiny_intermediate": 64,
            "max_length": 96, "batch_size": 8, "epochs": 2, "lr": 1e-3, "patience": 5, "tracking_uri": "off",
            "threads": 1, "seed": 7}
    return TransformerConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(processed_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny_cfg()
    out = kind.train(processed_small, tmp_path_factory.mktemp("tf") / "run", cfg)
    assert cfg == tiny_cfg()  # the caller's config is left as given (the fusion keys its folds on it)
    return out


def test_run_dir_and_predictions_follow_the_contract(run: Path, processed_small: Path) -> None:
    exp = json.loads((run / "exp_config.json").read_text())
    assert exp["model"] == "transformer"
    assert exp["data_identity"] == ProcessedDir(processed_small).identity()
    raw = Path(json.loads((processed_small / "preprocessing_metadata.json").read_text())["raw_dir"])
    assert exp["raw_sha256"] == {s: sha256_file(raw / f"{s}.jsonl") for s in ("train", "valid", "test")}
    assert exp["hyperparameters"]["warmup_epochs"] == pytest.approx(0.2)  # 10% of 2 epochs
    assert exp["hyperparameters"]["precision"] == "32-true"
    assert [int(r["epoch"]) for r in read_metrics_csv(run)] == [0, 1]
    for split in ("valid", "test"):
        rows = read_jsonl(run / "predictions" / f"{split}.jsonl")
        records = read_jsonl(processed_small / f"{split}.jsonl")
        assert [r["id"] for r in rows] == [r["id"] for r in records]
        assert [r["label"] for r in rows] == [r["label"] for r in records]
        for r in rows:
            assert set(r) == CONTRACT and isinstance(r["project"], str)
            l0, l1 = r["logits"]
            assert r["prob_vulnerable"] == pytest.approx(1 / (1 + math.exp(l0 - l1)), abs=1e-5)
    # the generic entry point (what the fusion and `streamguard predict` call) gives the same rows
    again = registry.get("transformer").predict(run, processed_small, "test")
    assert [v for r in again for v in r["logits"]] == pytest.approx([v for r in rows for v in r["logits"]], abs=1e-4)


def test_export_loads_with_transformers_alone_and_gives_the_same_logits(run: Path, processed_small: Path) -> None:
    export = run / kind.EXPORT_DIR
    encoder = AutoModel.from_pretrained(str(export)).eval()
    assert AutoTokenizer.from_pretrained(str(export)).get_vocab() == \
        AutoTokenizer.from_pretrained(str(processed_small / "tokenizer")).get_vocab()
    from_ckpt, _ = kind.build_model(tiny_cfg(), processed_small)
    from_ckpt.load_state_dict(engine.best_state_dict(run / "checkpoints"))
    from_ckpt.eval()
    ds = kind.TokenDataset(processed_small / "test.jsonl", 1, 96)
    inputs = ds.collate(list(range(6)))["inputs"]
    loaded, _ = kind.load_export(export)
    with torch.no_grad():
        states = encoder(**inputs).last_hidden_state
        assert torch.allclose(states, from_ckpt.encoder(**inputs).last_hidden_state, atol=1e-5)
        assert torch.allclose(loaded(**inputs), from_ckpt(**inputs), atol=1e-5)


def test_resume_continues_an_interrupted_run(run: Path, tmp_path: Path, processed_small: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # As if the process died right after epoch 0 was saved.
    for name in ("checkpoints/last.ckpt", "checkpoints/epoch-001.ckpt", "train_summary.json"):
        (copy / name).unlink()
    shutil.rmtree(copy / "predictions")
    shutil.rmtree(copy / kind.EXPORT_DIR)
    kind.train(processed_small, copy, tiny_cfg())
    summary = json.loads((copy / "train_summary.json").read_text())
    assert summary["resumed_from"].endswith("epoch-000.ckpt")
    before, after = read_metrics_csv(run), read_metrics_csv(copy)
    assert [r["epoch"] for r in after] == [0, 1]
    # same data order, dropout and learning rates after the restart: epoch 1 is reproduced
    assert float(after[1]["val_loss"]) == pytest.approx(float(before[1]["val_loss"]), abs=1e-4)
    assert (copy / "predictions" / "test.jsonl").is_file() and (copy / kind.EXPORT_DIR / "config.json").is_file()


def test_length_grouped_training_resumes_exactly_and_pads_less(tmp_path: Path, processed_small: Path) -> None:
    cfg = tiny_cfg(group_by_length=True, batch_size=4)
    run = kind.train(processed_small, tmp_path / "grouped", cfg)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for name in ("checkpoints/last.ckpt", "checkpoints/epoch-001.ckpt", "train_summary.json"):
        (copy / name).unlink()
    kind.train(processed_small, copy, cfg)
    before, after = read_metrics_csv(run), read_metrics_csv(copy)
    assert float(after[1]["val_loss"]) == pytest.approx(float(before[1]["val_loss"]), abs=1e-4)
    # the training loader really groups: fewer padded tokens than the shuffle of an ungrouped run
    ds = kind.TokenDataset(processed_small / "train.jsonl", 1, 96)
    widths = {}
    for grouped in (False, True):
        loader = engine._loader(ds, 4, True, tiny_cfg(group_by_length=grouped))
        widths[grouped] = sum(b["inputs"]["input_ids"].numel() for b in loader)
    assert widths[True] < widths[False]


def test_local_model_dir_trains_with_accumulation(run: Path, tmp_path: Path, processed_small: Path) -> None:
    cfg = tiny_cfg(model=str(run / kind.EXPORT_DIR), epochs=1, accumulate=2)
    model, _ = kind.build_model(cfg, processed_small)
    assert all(m.training for m in model.modules())  # a loaded encoder trains with its dropout on
    out = kind.train(processed_small, tmp_path / "again", cfg)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    batches = math.ceil(len(read_jsonl(processed_small / "train.jsonl")) / 8)
    assert ckpt["global_step"] == math.ceil(batches / 2)  # one optimizer step per two batches


def _other_tokenizer_model(folder: Path) -> Path:
    texts = ["int main(void) { return 0; }", "char *p = malloc(n); free(p);"] * 50
    tok = SafeTokenizer.train_bpe(texts, 300, folder)
    config = RobertaConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=520, pad_token_id=1)
    AutoModel.from_config(config).save_pretrained(str(folder))
    return folder


def test_a_model_with_another_tokenizer_is_refused(tmp_path: Path, processed_small: Path, run: Path) -> None:
    model_dir = _other_tokenizer_model(tmp_path / "other")
    with pytest.raises(UserError, match="another tokenizer"):
        kind.train(processed_small, tmp_path / "refused", tiny_cfg(model=str(model_dir)))
    assert not (tmp_path / "refused" / "checkpoints").exists()
    # and a trained run refuses data encoded with another tokenizer
    data = tmp_path / "data"
    shutil.copytree(processed_small, data)
    meta = json.loads((data / "preprocessing_metadata.json").read_text())
    meta["tokenizer"]["sha256"] = "0" * 64
    (data / "preprocessing_metadata.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="another tokenizer"):
        predict_run(run, data, "test", tmp_path / "p.jsonl")


def test_unreachable_hub_fails_at_once_naming_the_offline_options(monkeypatch, tmp_path: Path,
                                                                   processed_small: Path) -> None:
    from huggingface_hub import constants
    monkeypatch.setattr(kind, "hub_reachable", lambda *a, **k: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        kind.train(processed_small, tmp_path / "run", tiny_cfg(model="streamguard-test/no-such-model"))
    assert time.monotonic() - start < 10
    msg = str(err.value)
    assert "--model tiny" in msg and "--model PATH" in msg and "\n" not in msg
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE


def test_cli_train_transformer(monkeypatch, tmp_path: Path, processed_small: Path, capsys) -> None:
    seen = {}
    monkeypatch.setattr(kind, "train", lambda data, out, cfg: seen.update(cfg=cfg) or out)
    argv = ["train", "transformer", "--data", str(processed_small), "--out", str(tmp_path / "r"), "--model", "tiny",
            "--accumulate", "4", "--epochs", "1", "--config", "configs/transformer-tiny.yaml"]
    assert cli.main(argv) == 0
    cfg = seen["cfg"]
    assert (cfg.model, cfg.accumulate, cfg.epochs, cfg.tiny_hidden) == ("tiny", 4, 1, 128)
    monkeypatch.undo()
    model_dir = _other_tokenizer_model(tmp_path / "other")
    argv[argv.index("tiny")] = str(model_dir)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another tokenizer" in err[0]
