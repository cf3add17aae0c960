"""The ``gnn`` model kind: train and predict entry points (docs/contracts.md) over the cached AST graphs."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from streamguard.atomic import atomic_open, make_dir
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
TEXT_TOKENIZER = "node_text_tokenizer.json"  # a node-text run's sub-token tokenizer


def build_model(cfg: GNNConfig, text_tokenizer: Path | None = None) -> GraphClassifier:
    """The configured model; with node text, its sub-token table has a row per token of ``text_tokenizer``."""
    text_vocab = _tokenizer(text_tokenizer).get_vocab_size() if text_tokenizer else 0
    return GraphClassifier(vocab_size=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                           layers=cfg.layers, dropout=cfg.dropout, head_hidden=cfg.head_hidden, conv=cfg.conv,
                           residual=cfg.residual, norm=cfg.norm, text_vocab=text_vocab, text_dim=cfg.node_text_dim)


def graph_options(data: ProcessedDir, cfg: GNNConfig, text_tokenizer: Path | None = None) -> GraphOptions:
    vocab = data.node_vocab
    if len(vocab["labels"]) > cfg.vocab_size:
        raise UserError(f"{data.vocab_path} has {len(vocab['labels'])} labels but vocab_size is {cfg.vocab_size}")
    return GraphOptions(ncs=cfg.ncs_edges, ident=cfg.ident_edges, unk_id=int(vocab["unk_id"]),
                        text=str(text_tokenizer) if text_tokenizer else None)


def _tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(path))


def training_text_tokenizer(cfg: GNNConfig, data: ProcessedDir) -> Path | None:
    """What splits a leaf's text into sub-tokens while training: the encoder's tokenizer with
    ``node_text_init`` (its embedding rows are that tokenizer's ids), else the data's; None without node text."""
    if cfg.node_text_init:
        return Path(cfg.node_text_init) / "tokenizer.json"
    return data.tokenizer_dir / "tokenizer.json" if cfg.node_text else None


def run_text_tokenizer(run_dir: Path, cfg: GNNConfig) -> Path | None:
    """The tokenizer a node-text run was trained with, kept in the run (and its bundle) beside the weights."""
    if not cfg.node_text:
        return None
    path = Path(run_dir) / TEXT_TOKENIZER
    if not path.is_file():
        raise UserError(f"{run_dir} reads node text but has no {TEXT_TOKENIZER}; train it again")
    return path


def encoder_token_embeddings(encoder: Path) -> torch.Tensor:
    """The input (word) embeddings of an exported encoder: row i belongs to token id i of its tokenizer."""
    from safetensors import safe_open
    weights, tok = encoder / "model.safetensors", encoder / "tokenizer.json"
    if not weights.is_file() or not tok.is_file():
        raise UserError(f"node_text_init: {encoder} is not an exported encoder (model.safetensors and "
                        "tokenizer.json)")
    with safe_open(str(weights), "pt") as fh:
        names = [k for k in fh.keys() if k.endswith("embeddings.word_embeddings.weight")]
        if len(names) != 1:
            raise UserError(f"node_text_init: {weights} has no single word_embeddings table")
        table = fh.get_tensor(names[0]).float()
    tokens = _tokenizer(tok).get_vocab_size()
    if table.shape[0] != tokens:
        raise UserError(f"node_text_init: {weights} has {table.shape[0]} embedding rows for {tokens} tokens")
    return table


def auto_batch_size(data: ProcessedDir, cfg: GNNConfig) -> int:
    """The batch that fits ``memory_budget_gb`` for the train split's p95 graph (GraphStatistics), capped at
    ``max_batch_size``: the formula counts activations only, so on small graphs it would ask for thousands."""
    p95 = float(data.graph_stats()["p95_nodes"])
    size = min(recommended_batch_size(p95, cfg.memory_budget_gb, cfg.hidden), cfg.max_batch_size)
    log.warning("auto batch size: %d (p95 %.0f nodes, %.1f GB budget, cap %d)", size, p95, cfg.memory_budget_gb,
                cfg.max_batch_size)
    return size


def _datasets(data: ProcessedDir, cfg: GNNConfig, train_ids: set[str] | None,
              text_tokenizer: Path | None) -> dict[str, GraphDataset]:
    opts = graph_options(data, cfg, text_tokenizer)
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
    text_init = None
    if cfg.node_text_init:  # implies node_text, as wide as the encoder
        text_init = encoder_token_embeddings(Path(cfg.node_text_init))
        cfg = dataclasses.replace(cfg, node_text=True, node_text_dim=int(text_init.shape[1]))
    text_tokenizer = training_text_tokenizer(cfg, data)
    datasets = _datasets(data, cfg, train_ids, text_tokenizer)
    nodes = datasets["train"].num_nodes().float()
    extra: dict[str, Any] = {"graphs": {s: len(d) for s, d in datasets.items()},
                             "train_mean_nodes": round(float(nodes.mean()), 1),
                             "train_ids_given": train_ids is not None}
    engine.seed_all(cfg)
    model = build_model(cfg, text_tokenizer)
    if text_init is not None and model.text_embed is not None:
        with torch.no_grad():
            model.text_embed.weight.copy_(text_init)
    if text_tokenizer:  # predict, scan and bundles split leaves exactly as training did
        make_dir(out_dir, "run directory")
        with atomic_open(out_dir / TEXT_TOKENIZER, "wb") as fh:
            fh.write(text_tokenizer.read_bytes())
    return engine.fit(model, datasets, cfg, out_dir, "gnn", data.path, extra)


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    """Rows of the predictions contract for ``split`` of any dataset made with the run's vocabulary."""
    run_dir, data = Path(run_dir), ProcessedDir(data_dir)
    exp = read_exp_config(run_dir)
    if exp.get("model") != "gnn":
        raise UserError(f"{run_dir} is a {exp.get('model')} run, not a gnn run")
    data.check_compatible(exp.get("data_identity"), run_dir)
    cfg = load_config(GNNConfig, overrides={k: v for k, v in exp["hyperparameters"].items()
                                            if k in GNNConfig.__dataclass_fields__})
    text_tokenizer = run_text_tokenizer(run_dir, cfg)
    model = build_model(cfg, text_tokenizer)
    model.load_state_dict(state_dict(run_dir))
    graphs = load_split(data.path, split, graph_options(data, cfg, text_tokenizer),
                        Path(cfg.cache_dir) if cfg.cache_dir else None)
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
