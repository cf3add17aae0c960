"""Fusion with the real GNN kind as a base model (a tiny GNN, one epoch): the folds reach the GNN's fits."""
from __future__ import annotations

import json

import pytest
from processed_fixture import make_processed

from streamguard.config import FuseConfig
from streamguard.features.processed import ProcessedDir
from streamguard.train import fuse

pytest.importorskip("streamguard.train.gnn")


@pytest.mark.slow
def test_fuse_gnn_and_lexical(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    data = make_processed(tmp_path, sizes={"train": 60, "valid": 20, "test": 20})
    (tmp_path / "gnn.yaml").write_text("embed_dim: 8\nhidden: 8\nlayers: 1\nhead_hidden: 8\nbatch_size: 32\n"
                                       f"cache_dir: {tmp_path / 'cache'}\n")
    (tmp_path / "lex.yaml").write_text("ngram_min: 3\nngram_max: 3\nmax_features: 5000\nc_grid: [1.0]\n")
    out = tmp_path / "fus"
    fuse.train(data, out, FuseConfig(models=["gnn", "lexical"], folds=2, fold_epochs=1,
                                     base_configs=[f"gnn={tmp_path / 'gnn.yaml'}", f"lexical={tmp_path / 'lex.yaml'}"]))
    train_ids = {r["id"] for r in ProcessedDir(data).read_split("train", keep=("id", "label"))}
    oof = [json.loads(line) for line in (out / "oof" / "gnn.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in oof) == sorted(train_ids)
    for i in range(2):
        exp = json.loads((out / "folds" / "gnn" / f"fold-{i}" / "exp_config.json").read_text())
        held = sum(r["fold"] == i for r in oof)
        assert exp["train_ids_given"] and exp["graphs"]["train"] == len(train_ids) - held
        assert exp["hyperparameters"]["epochs"] == 1
    meta = json.loads((out / "fusion.json").read_text())
    assert meta["models"] == ["gnn", "lexical"] and all(w >= 0 for w in meta["weights"])
    rows = [json.loads(line) for line in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 20


@pytest.mark.slow
def test_seed_ensemble_base_model_bundles_and_predicts_the_same(tmp_path, monkeypatch) -> None:
    """base_seeds=[1, 2]: the GNN base model is two seeds averaged; the exported bundle keeps both seeds and its
    fusion predicts exactly what the run predicted."""
    from streamguard.scan.bundle import export_run
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    data = make_processed(tmp_path, sizes={"train": 40, "valid": 16, "test": 16})
    (tmp_path / "gnn.yaml").write_text("embed_dim: 8\nhidden: 8\nlayers: 1\nhead_hidden: 8\nbatch_size: 32\n"
                                       f"cache_dir: {tmp_path / 'cache'}\n")
    (tmp_path / "lex.yaml").write_text("ngram_min: 3\nngram_max: 3\nmax_features: 5000\nc_grid: [1.0]\n")
    out = tmp_path / "fus"
    fuse.train(data, out, FuseConfig(models=["gnn", "lexical"], folds=2, fold_epochs=1, base_seeds=[1, 2],
                                     base_configs=[f"gnn={tmp_path / 'gnn.yaml'}", f"lexical={tmp_path / 'lex.yaml'}"]))
    for seed in (1, 2):
        assert json.loads((out / "base" / "gnn" / f"seed-{seed}" / "exp_config.json").read_text())["seed"] == seed
    run_rows = [json.loads(line) for line in (out / "predictions" / "test.jsonl").read_text().splitlines()]
    from streamguard.features.tokenize import SafeTokenizer  # a bundle carries the data's tokenizer folder
    SafeTokenizer.train_bpe([r["code"] for r in ProcessedDir(data).read_split("train")], 300, data / "tokenizer")
    bundle = export_run(out, tmp_path / "bundle", data)
    assert sorted(p.name for p in (bundle / "model" / "base" / "gnn").iterdir()) == ["seed-1", "seed-2"]
    bundle_rows = fuse.predict(bundle / "model", data, "test")
    assert [r["id"] for r in bundle_rows] == [r["id"] for r in run_rows]
    assert all(a["logits"] == pytest.approx(b["logits"], abs=1e-5) for a, b in zip(bundle_rows, run_rows))
