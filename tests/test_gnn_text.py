"""The GNN's node text features (ReGVD-style): each leaf's text in the records, its sub-token ids in the graph
cache and the batches, and the sub-token table started from the shipped encoder's input embeddings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from streamguard.config import GNNConfig
from streamguard.features.graphs import GraphDataset, load_split
from streamguard.features.processed import ProcessedDir
from streamguard.train import engine, gnn

ROOT = Path(__file__).resolve().parents[1]
ENCODER = ROOT / "models" / "streamguard-c-encoder"
OLD_DATA = Path(__file__).parent / "fixtures" / "gnn_processed"  # preprocessed before ast_text existed


def test_records_hold_each_leafs_own_text(processed_small) -> None:
    for rec in ProcessedDir(processed_small).read_split("train", keep=("code", "ast_nodes", "ast_text")):
        assert len(rec["ast_text"]) == len(rec["ast_nodes"])
        pos = 0
        for text in filter(None, rec["ast_text"]):  # leaves come in source order, each found after the last
            pos = rec["code"].index(text, pos) + len(text)
    first = ProcessedDir(processed_small).read_split("train", keep=("code", "ast_text"))[0]
    identifiers = {t for t in first["ast_text"] if t.isidentifier()}
    assert identifiers and all(t in first["code"] for t in identifiers)


def test_batches_carry_every_nodes_subtokens(processed_small, tmp_path) -> None:
    data = ProcessedDir(processed_small)
    cfg = GNNConfig(node_text=True)
    opts = gnn.graph_options(data, cfg, gnn.training_text_tokenizer(cfg, data))
    graphs = load_split(data.path, "valid", opts, tmp_path)
    records = data.read_split("valid", keep=("id", "ast_text"))
    tok = Tokenizer.from_file(str(data.tokenizer_dir / "tokenizer.json"))
    ds = GraphDataset(graphs)
    batch = ds.collate([2, 0])["inputs"]  # out of order, so offsets must follow the batch, not the file
    texts = records[2]["ast_text"] + records[0]["ast_text"]
    assert batch["text_offsets"].numel() == batch["x"].numel() == len(texts)
    ends = torch.cat([batch["text_offsets"][1:], torch.tensor([batch["text_ids"].numel()])])
    for text, start, end in zip(texts, batch["text_offsets"].tolist(), ends.tolist()):
        expected = tok.encode(" " + text, add_special_tokens=False).ids if text else []
        assert batch["text_ids"][start:end].tolist() == expected


def test_table_and_tokenizer_come_from_the_encoder(processed_small, tmp_path, monkeypatch) -> None:
    """The data's own tokenizer (a 2,000-token BPE) plays no part: leaves are split by the encoder's tokenizer,
    which the run keeps for predict, and the table starts as the encoder's input embeddings."""
    captured = {}
    monkeypatch.setattr(engine, "fit", lambda model, datasets, *a, **k: captured.update(model=model, data=datasets))
    cfg = GNNConfig(node_text_init=str(ENCODER), epochs=1, tracking_uri="off", cache_dir=str(tmp_path))
    gnn.train(processed_small, tmp_path / "run", cfg)
    table = load_file(str(ENCODER / "model.safetensors"))["embeddings.word_embeddings.weight"].float()
    model = captured["model"]
    assert model.text_embed.weight.shape == table.shape  # the encoder's width, not node_text_dim's default
    assert torch.equal(model.text_embed.weight.detach(), table)
    kept = tmp_path / "run" / gnn.TEXT_TOKENIZER
    assert kept.read_bytes() == (ENCODER / "tokenizer.json").read_bytes()
    batch = captured["data"]["train"].collate([0])["inputs"]
    assert int(batch["text_ids"].max()) >= 2000  # ids only the encoder's 16,000-token vocabulary has


@pytest.mark.parametrize("data,sets,message", [
    ("processed_small", ["node_text_init=tests/fixtures"], "is not an exported encoder"),
    ("old", ["node_text=true"], "preprocess the data again"),
])
def test_refused_in_one_line(data, sets, message, request, tmp_path) -> None:
    path = OLD_DATA if data == "old" else request.getfixturevalue(data)
    cmd = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(path), "--out",
           str(tmp_path / "run"), "--set", f"cache_dir={tmp_path}", "tracking_uri=off", *sets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode != 0 and message in lines[-1] and "Traceback" not in proc.stderr


def test_old_data_still_trains_without_text(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "fit", lambda model, *a, **k: model)
    model = gnn.train(OLD_DATA, tmp_path / "run", GNNConfig(tracking_uri="off", cache_dir=str(tmp_path)))
    assert model.text_embed is None and model.text_proj is None
