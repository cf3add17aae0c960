"""The GNN kind: model maths against PyG, the graph cache, and `streamguard train gnn` end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch_geometric.nn import GCNConv

from streamguard.features import graphs
from streamguard.features.graphs import GraphDataset, GraphOptions, load_split, normalised_graph
from streamguard.models.gnn import GraphClassifier, csr_adjacency, dropout, propagate
from streamguard.train.tracking import LINE_RE, parse_line

DATA = Path(__file__).parent / "fixtures" / "gnn_processed"  # 48/24/24 real records of data/processed/sample
SMALL = ["hidden=32", "embed_dim=16", "head_hidden=32", "layers=2", "batch_size=8"]


def run_train(out: Path, cache: Path, *extra: str, timeout: int = 240) -> subprocess.CompletedProcess:
    flags = [a for a in extra if "=" not in a]
    sets = [a for a in extra if "=" in a]
    cmd = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
           *flags, "--set", f"cache_dir={cache}", *SMALL, *sets]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env)


def test_propagation_equals_pyg_gcnconv() -> None:
    torch.manual_seed(0)
    nodes = list(range(30))
    edges = [[i // 2, i] for i in range(1, 30)]  # a tree, as the AST is
    conv = GCNConv(8, 4)
    x = torch.randn(30, 8)
    undirected = torch.tensor(edges).t()
    ref = conv(x, torch.cat([undirected, undirected.flip(0)], 1))
    ei, w = normalised_graph(nodes, edges, GraphOptions())
    ours = propagate(csr_adjacency(ei, w, 30), conv.lin(x)) + conv.bias
    assert torch.allclose(ours, ref, atol=1e-5)


def test_symmetric_backward_equals_dense_gradient() -> None:
    torch.manual_seed(1)
    ei, w = normalised_graph(list(range(12)), [[0, i] for i in range(1, 12)], GraphOptions(ncs=True))
    adj = csr_adjacency(ei, w, 12)
    h = torch.randn(12, 5, requires_grad=True)
    (propagate(adj, h) ** 2).sum().backward()
    h2 = h.detach().clone().requires_grad_(True)
    ((adj.to_dense() @ h2) ** 2).sum().backward()
    assert torch.allclose(h.grad, h2.grad, atol=1e-5)


def test_dropout_keeps_expected_share_and_scales() -> None:
    torch.manual_seed(2)
    h = torch.ones(400, 256)
    out = dropout(h, 0.3, training=True)
    kept = (out != 0).float().mean().item()
    assert abs(kept - 179 / 256) < 0.01
    assert torch.allclose(out[out != 0], torch.tensor(256 / 179))
    assert abs(out.mean().item() - 1.0) < 0.02
    assert dropout(h, 0.3, training=False) is h


def test_extra_edges_follow_leaves_in_order() -> None:
    # pre-order: 0 -> (1 -> (2, 3), 4); leaves in source order 2, 3, 4 with labels 7, 8, 7
    nodes, edges = [5, 6, 7, 8, 7], [[0, 1], [1, 2], [1, 3], [0, 4]]
    e = graphs.graph_edges(nodes, edges, GraphOptions(ncs=True, ident=True)).t().tolist()
    assert e[:4] == edges
    assert e[4:6] == [[2, 3], [3, 4]]  # natural code sequence
    assert e[6:] == [[2, 4]]           # the same label used twice
    assert graphs.graph_edges(nodes, edges, GraphOptions()).t().tolist() == edges


def test_cache_built_once_and_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "valid.jsonl").write_bytes((DATA / "valid.jsonl").read_bytes())
    first = load_split(data_dir, "valid", GraphOptions(), tmp_path / "cache")
    assert len(first["ids"]) == 24 and len(list((tmp_path / "cache").iterdir())) == 1

    def no_build(*a: object) -> None:
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(graphs, "build_cache", no_build)
    again = load_split(data_dir, "valid", GraphOptions(), tmp_path / "cache")
    assert torch.equal(again["x"], first["x"]) and again["ids"] == first["ids"]
    monkeypatch.undo()
    lines = (DATA / "valid.jsonl").read_text().splitlines()
    (data_dir / "valid.jsonl").write_text("\n".join(lines[:10]) + "\n")  # changed content -> new cache
    assert len(load_split(data_dir, "valid", GraphOptions(), tmp_path / "cache")["ids"]) == 10
    files = sorted((tmp_path / "cache").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(files) == 2
    cache_file = files[-1]
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # truncated by a crash: rebuilt, not trusted
    assert len(load_split(data_dir, "valid", GraphOptions(), tmp_path / "cache")["ids"]) == 10


def test_collate_builds_one_disjoint_graph(tmp_path: Path) -> None:
    ds = GraphDataset(load_split(DATA, "train", GraphOptions(), tmp_path), weights={"CODEXGLUE-TRAIN-3": 2.5})
    batch = ds.collate([0, 1, 2])
    inp = batch["inputs"]
    sizes = ds.num_nodes()[:3]
    assert inp["x"].numel() == int(sizes.sum()) and inp["num_graphs"] == 3
    assert torch.equal(torch.bincount(inp["batch"]), sizes)
    rows = inp["edge_index"][0]
    assert torch.all(rows[1:] >= rows[:-1])  # CSR needs rows sorted
    assert batch["weight"].tolist() == [float(2.5 if ds.ids[i] == "CODEXGLUE-TRAIN-3" else 1.0) for i in range(3)]
    logits = GraphClassifier(hidden=16, embed_dim=8, head_hidden=8, layers=2)(**inp)
    assert logits.shape == (3, 2)


def test_ggnn_residual_norm_variants_run() -> None:
    ei, w = normalised_graph([1, 2, 3], [[0, 1], [0, 2]], GraphOptions())
    for kw in ({"conv": "ggnn"}, {"residual": True, "norm": True}):
        model = GraphClassifier(hidden=16, embed_dim=8, head_hidden=8, layers=3, **kw)
        out = model(torch.tensor([1, 2, 3]), ei, w, torch.zeros(3, dtype=torch.long), 1)
        out.sum().backward()
        assert out.shape == (1, 2) and model.embed.weight.grad is not None


def test_train_gnn_cli_writes_the_run_contract(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_train(out, tmp_path / "cache", "--epochs", "2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch=")]
    assert len(lines) == 2 and all(LINE_RE.match(ln) for ln in lines)
    for noise in ("GPU available", "Tip:", "Creating initial MLflow", "not found. Creating it", "LeafSpec"):
        assert noise not in proc.stdout + proc.stderr, noise  # silenced at its source (streamguard/logs.py)
    assert set(parse_line(lines[0])) == {"epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_vulnerable",
                                         "val_roc_auc", "lr"}
    names = {p.name for p in (out / "checkpoints").iterdir()}
    assert {"best.ckpt", "last.ckpt", "epoch-000.ckpt", "epoch-001.ckpt"} <= names
    exp = json.loads((out / "exp_config.json").read_text())
    assert exp["model"] == "gnn" and exp["seed"] == 3 and exp["hyperparameters"]["hidden"] == 32
    assert set(exp["data_sha256"]) >= {"train.jsonl", "valid.jsonl", "test.jsonl"}
    assert exp["git"]["commit"] and exp["packages"]["torch"] and exp["device"]["accelerator"] == "auto"
    csv_rows = (out / "metrics.csv").read_text().splitlines()
    assert csv_rows[0] == "epoch,train_loss,val_loss,val_accuracy,val_f1_vulnerable,val_roc_auc,lr"
    assert len(csv_rows) == 3 and not (out / "mlflow.db").exists()  # the workspace's one store, not the run's
    run = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run((out / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FINISHED" and run.data.params["hidden"] == "32" and "val_roc_auc" in run.data.metrics
    for split, n in (("valid", 24), ("test", 24)):
        rows = [json.loads(ln) for ln in (out / "predictions" / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == n and set(rows[0]) == {"id", "label", "prob_vulnerable", "logits", "project"}
        assert all(abs(r["prob_vulnerable"] - torch.softmax(torch.tensor(r["logits"]), 0)[1].item()) < 1e-5
                   for r in rows)
        assert rows[0]["project"] in {"FFmpeg", "qemu"}
    from streamguard.train.gnn import predict
    again = predict(out, DATA, "test")
    assert [r["id"] for r in again] == [r["id"] for r in rows]
    assert max(abs(a["prob_vulnerable"] - b["prob_vulnerable"]) for a, b in zip(again, rows)) < 1e-5


def test_sample_weights_multiply_the_loss(tmp_path: Path) -> None:
    weights = tmp_path / "w.json"
    ids = [json.loads(ln)["id"] for ln in (DATA / "train.jsonl").read_text().splitlines()]
    weights.write_text(json.dumps({k: 0.0 for k in ids}))
    proc = run_train(tmp_path / "run", tmp_path / "cache", "--epochs", "1", "--sample-weights", str(weights),
                     "--tracking-uri", "off")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("epoch="))
    assert parse_line(line)["train_loss"] == 0.0
    weights.write_text(json.dumps({ids[0]: -1}))
    bad = run_train(tmp_path / "run2", tmp_path / "cache", "--epochs", "1", "--sample-weights", str(weights))
    assert bad.returncode == 2 and "finite number >= 0" in bad.stderr


def test_auto_batch_size_monitor_switch_and_quick_test(tmp_path: Path) -> None:
    proc = run_train(tmp_path / "run", tmp_path / "cache", "--auto-batch-size", "--monitor", "val_accuracy",
                     "--tracking-uri", "off", "--quick-test", "quick_test_size=10", "memory_budget_gb=0.01")
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = json.loads((tmp_path / "run" / "exp_config.json").read_text())
    assert exp["graphs"] == {"train": 10, "valid": 10, "test": 10} and exp["hyperparameters"]["epochs"] == 2
    assert len((tmp_path / "run" / "predictions" / "test.jsonl").read_text().splitlines()) == 10
    p95 = json.loads((DATA / "preprocessing_metadata.json").read_text())["graph_stats"]["p95_nodes"]
    hidden = exp["hyperparameters"]["hidden"]  # 10 MB for p95 graphs of `hidden` floats a node, half kept free
    assert exp["hyperparameters"]["batch_size"] == int(0.01 * 1024**3 * 0.5 // (p95 * hidden * 4)) < 512
    assert exp["hyperparameters"]["monitor"] == "val_accuracy"


def test_auto_batch_size_is_capped(tmp_path: Path) -> None:
    from streamguard.config import GNNConfig
    from streamguard.features.processed import ProcessedDir
    from streamguard.train.gnn import auto_batch_size

    data = ProcessedDir(DATA)
    assert auto_batch_size(data, GNNConfig(memory_budget_gb=16.0)) == 512  # the formula alone says thousands
    assert auto_batch_size(data, GNNConfig(memory_budget_gb=16.0, max_batch_size=64)) == 64
