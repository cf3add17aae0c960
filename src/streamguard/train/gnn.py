"""The ``gnn`` model kind: train and predict entry points (docs/contracts.md) over the cached AST graphs."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from streamguard.config import GNNConfig, load_config
from streamguard.data.graphs import GraphDataset, GraphOptions, load_split
from streamguard.data.processed import ProcessedDir
from streamguard.data.records import SPLITS
from streamguard.data.stats import recommended_batch_size
from streamguard.errors import UserError
from streamguard.models.gnn import GraphClassifier
from streamguard.rundir import read_exp_config
from streamguard.train import engine

log = logging.getLogger(__name__)
WEIGHTS = "gnn_weights.safetensors"  # an exported (bundle) GNN's weights


def build_model(cfg: GNNConfig) -> GraphClassifier:
    return GraphClassifier(vocab_size=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                           layers=cfg.layers, dropout=cfg.dropout, head_hidden=cfg.head_hidden, conv=cfg.conv,
                           residual=cfg.residual, norm=cfg.norm)


def graph_options(data: ProcessedDir, cfg: GNNConfig) -> GraphOptions:
    vocab = data.node_vocab
    if len(vocab["labels"]) > cfg.vocab_size:
        raise UserError(f"{data.vocab_path} has {len(vocab['labels'])} labels but vocab_size is {cfg.vocab_size}")
    return GraphOptions(ncs=cfg.ncs_edges, ident=cfg.ident_edges, unk_id=int(vocab["unk_id"]))


def auto_batch_size(data: ProcessedDir, cfg: GNNConfig) -> int:
    """The batch that fits ``memory_budget_gb`` for the train split's p95 graph (GraphStatistics), capped at
    ``max_batch_size``: the formula counts activations only, so on small graphs it would ask for thousands."""
    p95 = float(data.graph_stats()["p95_nodes"])
    size = min(recommended_batch_size(p95, cfg.memory_budget_gb, cfg.hidden), cfg.max_batch_size)
    log.warning("auto batch size: %d (p95 %.0f nodes, %.1f GB budget, cap %d)", size, p95, cfg.memory_budget_gb,
                cfg.max_batch_size)
    return size


def _datasets(data: ProcessedDir, cfg: GNNConfig, train_ids: set[str] | None) -> dict[str, GraphDataset]:
    opts = graph_options(data, cfg)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    weights = engine.load_sample_weights(cfg.sample_weights) if cfg.sample_weights else None
    out = {}
    for split in SPLITS:
        graphs = load_split(data.path, split, opts, cache)
        ids = train_ids if split == "train" else None
        if cfg.quick_test:
            ids = set(graphs["ids"][: cfg.quick_test_size]) if ids is None else \
                set(sorted(ids)[: cfg.quick_test_size])
        out[split] = GraphDataset(graphs, ids, weights if split == "train" else None)
    engine.check_training_set(out["train"], weights, cfg, data.path, "graphs")
    return out


def train(data_dir: Path, out_dir: Path, cfg: GNNConfig, train_ids: set[str] | None = None) -> Path:
    """Fit the GNN on the train split (only ``train_ids`` when given) and write the run dir."""
    data, out_dir = ProcessedDir(data_dir), Path(out_dir)
    if cfg.auto_batch_size:
        cfg = dataclasses.replace(cfg, batch_size=auto_batch_size(data, cfg))
    if cfg.quick_test:  # a setup check: a few graphs, two epochs
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 2))
    datasets = _datasets(data, cfg, train_ids)
    nodes = datasets["train"].num_nodes().float()
    extra: dict[str, Any] = {"graphs": {s: len(d) for s, d in datasets.items()},
                             "train_mean_nodes": round(float(nodes.mean()), 1),
                             "train_ids_given": train_ids is not None}
    engine.seed_all(cfg)
    return engine.fit(build_model(cfg), datasets, cfg, out_dir, "gnn", data.path, extra)


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    """Rows of the predictions contract for ``split`` of any dataset made with the run's vocabulary."""
    run_dir, data = Path(run_dir), ProcessedDir(data_dir)
    exp = read_exp_config(run_dir)
    if exp.get("model") != "gnn":
        raise UserError(f"{run_dir} is a {exp.get('model')} run, not a gnn run")
    data.check_compatible(exp.get("data_identity"), run_dir)
    cfg = load_config(GNNConfig, overrides={k: v for k, v in exp["hyperparameters"].items()
                                            if k in GNNConfig.__dataclass_fields__})
    model = build_model(cfg)
    model.load_state_dict(state_dict(run_dir))
    graphs = load_split(data.path, split, graph_options(data, cfg), Path(cfg.cache_dir) if cfg.cache_dir else None)
    ds = GraphDataset(graphs, ids)
    if ids is not None and len(ds) != len(ids):
        missing = sorted(ids - set(ds.ids))
        raise UserError(f"{len(missing)} requested id(s) are not in {data.split_path(split)}, e.g. {missing[0]}")
    return engine.predict_rows(model, ds, cfg.predict_batch_size)


def state_dict(run_dir: Path) -> dict[str, Any]:
    """The best weights: ``gnn_weights.safetensors`` in a bundle (no pickle at all), else best.ckpt."""
    path = Path(run_dir) / WEIGHTS
    if path.is_file():
        from safetensors.torch import load_file
        return load_file(str(path))
    return engine.best_state_dict(Path(run_dir) / "checkpoints")
