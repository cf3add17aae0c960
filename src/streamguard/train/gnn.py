"""The ``gnn`` model kind: train and predict entry points (docs/contracts.md) over the cached AST graphs."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from streamguard.config import GNNConfig, load_config
from streamguard.data.graphs import GraphDataset, GraphOptions, load_split
from streamguard.errors import UserError
from streamguard.models.gnn import GraphClassifier
from streamguard.train import engine
from streamguard.train.registry import check_compatible, data_identity
from streamguard.train.rundir import read_exp_config

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")
WEIGHTS = "gnn_weights.safetensors"  # an exported (bundle) GNN's weights


def build_model(cfg: GNNConfig) -> GraphClassifier:
    return GraphClassifier(vocab_size=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                           layers=cfg.layers, dropout=cfg.dropout, head_hidden=cfg.head_hidden, conv=cfg.conv,
                           residual=cfg.residual, norm=cfg.norm)


def graph_options(data_dir: Path, cfg: GNNConfig) -> GraphOptions:
    vocab_path = data_dir / "node_vocab.json"
    unk = 0
    if vocab_path.is_file():
        vocab = json.loads(vocab_path.read_text())
        unk = int(vocab.get("unk_id", 0))
        if len(vocab.get("labels", [])) > cfg.vocab_size:
            raise UserError(f"{vocab_path} has {len(vocab['labels'])} labels but vocab_size is {cfg.vocab_size}")
    return GraphOptions(ncs=cfg.ncs_edges, ident=cfg.ident_edges, unk_id=unk)


def _auto_batch_size(data_dir: Path, cfg: GNNConfig) -> int:
    meta_path = data_dir / "preprocessing_metadata.json"
    try:
        size = int(json.loads(meta_path.read_text())["graph_stats"]["recommended_batch_size"])
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"--auto-batch-size needs graph_stats.recommended_batch_size in {meta_path} ({exc!r})") \
            from None
    log.warning("auto batch size: %d (GraphStatistics, memory budget in preprocessing_metadata.json)", size)
    return max(1, size)


def _datasets(data_dir: Path, cfg: GNNConfig, train_ids: set[str] | None) -> dict[str, GraphDataset]:
    opts = graph_options(data_dir, cfg)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else None
    weights = engine.load_sample_weights(cfg.sample_weights) if cfg.sample_weights else None
    out = {}
    for split in SPLITS:
        data = load_split(data_dir, split, opts, cache)
        ids = train_ids if split == "train" else None
        if cfg.quick_test:
            ids = set(data["ids"][: cfg.quick_test_size]) if ids is None else \
                set(sorted(ids)[: cfg.quick_test_size])
        out[split] = GraphDataset(data, ids, weights if split == "train" else None)
    engine.check_training_set(out["train"], weights, cfg, data_dir, "graphs")
    return out


def train(data_dir: Path, out_dir: Path, cfg: GNNConfig, train_ids: set[str] | None = None) -> Path:
    """Fit the GNN on the train split (only ``train_ids`` when given) and write the run dir."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if cfg.auto_batch_size:
        cfg.batch_size = _auto_batch_size(data_dir, cfg)
    if cfg.quick_test:  # a setup check: a few graphs, two epochs
        cfg.epochs = min(cfg.epochs, 2)
    datasets = _datasets(data_dir, cfg, train_ids)
    files = [data_dir / f"{s}.jsonl" for s in SPLITS] + [data_dir / "node_vocab.json",
                                                          data_dir / "preprocessing_metadata.json"]
    if cfg.sample_weights:
        files.append(Path(cfg.sample_weights))
    nodes = datasets["train"].num_nodes().float()
    extra: dict[str, Any] = {"data_dir": str(data_dir), "data_identity": _identity(data_dir),
                             "graphs": {s: len(d) for s, d in datasets.items()},
                             "train_mean_nodes": round(float(nodes.mean()), 1),
                             "train_ids_given": train_ids is not None}
    engine.seed_all(cfg)
    return engine.fit(build_model(cfg), datasets, cfg, out_dir, "gnn", files, extra)


def _identity(data_dir: Path) -> dict[str, Any] | None:
    try:
        return data_identity(data_dir)
    except UserError as exc:  # fixtures without a tokenizer record still train; predict will refuse them
        log.warning("no data identity recorded: %s", exc)
        return None


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    """Rows of the predictions contract for ``split`` of any dataset made with the run's vocabulary."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    exp = read_exp_config(run_dir)
    if exp.get("model") != "gnn":
        raise UserError(f"{run_dir} is a {exp.get('model')} run, not a gnn run")
    if exp.get("data_identity") is not None:
        check_compatible(exp["data_identity"], data_dir, run_dir)
    cfg = load_config(GNNConfig, overrides={k: v for k, v in exp["hyperparameters"].items()
                                            if k in GNNConfig.__dataclass_fields__})
    model = build_model(cfg)
    model.load_state_dict(state_dict(run_dir))
    data = load_split(data_dir, split, graph_options(data_dir, cfg), Path(cfg.cache_dir) if cfg.cache_dir else None)
    ds = GraphDataset(data, ids)
    if ids is not None and len(ds) != len(ids):
        missing = sorted(ids - set(ds.ids))
        raise UserError(f"{len(missing)} requested id(s) are not in {data_dir}/{split}.jsonl, e.g. {missing[0]}")
    return engine.predict_rows(model, ds, cfg.predict_batch_size)


def state_dict(run_dir: Path) -> dict[str, Any]:
    """The best weights: ``gnn_weights.safetensors`` in a bundle (no pickle at all), else best.ckpt."""
    path = Path(run_dir) / WEIGHTS
    if path.is_file():
        from safetensors.torch import load_file
        return load_file(str(path))
    return engine.best_state_dict(Path(run_dir) / "checkpoints")


def load_gnn_config(path: Path | None, overrides: dict[str, Any], extra: list[str]) -> GNNConfig:
    return load_config(GNNConfig, path, overrides, extra)
