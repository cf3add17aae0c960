"""The ``gnn`` model kind: train and predict entry points (docs/contracts.md) over the cached AST graphs."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamguard.atomic import atomic_open, make_dir
from streamguard.config import GNNConfig
from streamguard.data.records import SPLITS
from streamguard.data.stats import recommended_batch_size
from streamguard.errors import UserError
from streamguard.features.graphs import RELATIONS, GraphDataset, GraphOptions, load_split
from streamguard.features.processed import ProcessedDir
from streamguard.features.taintflow import FLAGS
from streamguard.models.gnn import GraphClassifier
from streamguard.rundir import read_exp_config
from streamguard.train import engine, kinds
from streamguard.train.evidence import line_of

log = logging.getLogger(__name__)
WEIGHTS = "gnn_weights.safetensors"  # an exported (bundle) GNN's weights
TEXT_TOKENIZER = "node_text_tokenizer.json"  # a node-text run's sub-token tokenizer
CONFIG = GNNConfig
BUNDLE_FILES = (WEIGHTS,)  # (+ TEXT_TOKENIZER for a node-text run)
FLAG_VALUES = 2 * max(FLAGS.values())  # every combination of the taint-flow node flags
# line evidence of a taint-flow model: sinks and the conditions guarding them weigh this much more than other
# nodes with the same attribution (the flow that mattered; docs/models.md)
FLOW_WEIGHT = 2.0
TAINT_MODEL = {"relations": len(RELATIONS), "flag_values": FLAG_VALUES}


def build_model(cfg: GNNConfig, text_tokenizer: Path | None = None) -> GraphClassifier:
    """The configured model; with node text, its sub-token table has a row per token of ``text_tokenizer``."""
    text_vocab = _tokenizer(text_tokenizer).get_vocab_size() if text_tokenizer else 0
    return GraphClassifier(vocab_size=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden=cfg.hidden,
                           layers=cfg.layers, dropout=cfg.dropout, head_hidden=cfg.head_hidden, conv=cfg.conv,
                           residual=cfg.residual, norm=cfg.norm, text_vocab=text_vocab, text_dim=cfg.node_text_dim,
                           **(TAINT_MODEL if cfg.graph == "taint" else {}))


def graph_options(data: ProcessedDir, cfg: GNNConfig, text_tokenizer: Path | None = None) -> GraphOptions:
    vocab = data.node_vocab
    if len(vocab["labels"]) > cfg.vocab_size:
        raise UserError(f"{data.vocab_path} has {len(vocab['labels'])} labels but vocab_size is {cfg.vocab_size}")
    return GraphOptions(ncs=cfg.ncs_edges, ident=cfg.ident_edges, unk_id=int(vocab["unk_id"]),
                        text=str(text_tokenizer) if text_tokenizer else None, taint=cfg.graph == "taint")


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


def config_from_run(exp: dict[str, Any]) -> GNNConfig:
    return kinds.config_from_run(GNNConfig, exp)


def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
    """Rows of the predictions contract for ``split`` of any dataset made with the run's vocabulary."""
    exp, data = kinds.open_run(run_dir, data_dir, "gnn")
    cfg = config_from_run(exp)
    text_tokenizer = run_text_tokenizer(run_dir, cfg)
    model = build_model(cfg, text_tokenizer)
    model.load_state_dict(state_dict(run_dir))
    graphs = load_split(data.path, split, graph_options(data, cfg, text_tokenizer),
                        Path(cfg.cache_dir) if cfg.cache_dir else None)
    ds = GraphDataset(graphs, ids)
    kinds.check_ids(ds.ids, ids, data.split_path(split))
    return engine.predict_rows(model, ds, cfg.predict_batch_size)


def state_dict(run_dir: Path) -> dict[str, Any]:
    """The best weights: ``gnn_weights.safetensors`` in a bundle (no pickle at all), else best.ckpt."""
    path = Path(run_dir) / WEIGHTS
    if path.is_file():
        from safetensors.torch import load_file
        return load_file(str(path))
    return engine.best_state_dict(Path(run_dir) / "checkpoints")


# --- the rest of the kind contract (streamguard.train.kinds) -------------------------------------------------

def export_files(run: Path, dst: Path) -> None:
    """The best weights as safetensors (no pickle in a bundle), and a node-text run's tokenizer."""
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state_dict(run).items()}, str(dst / WEIGHTS))
    if (run / TEXT_TOKENIZER).is_file():  # a node-text GNN splits leaves with its own tokenizer
        kinds.copy_files(run, dst, [TEXT_TOKENIZER], "gnn")


def uses_torch(model_dir: Path) -> bool:
    return True


def reads_features(model_dir: Path) -> bool:
    return True


def node_spans(code: str, graph: Any) -> list[tuple[int, int] | None]:
    """Character span of each graph node: text leaves found in the code in order (nodes are in pre-order, so
    leaves come in source order); every other node spans its descendants' leaves."""
    from streamguard.features.ast import strip_directives
    text = strip_directives(code)
    spans: list[tuple[int, int] | None] = [None] * len(graph.labels)
    pos = 0
    children: dict[int, list[int]] = {}
    for a, b in graph.edges:
        children.setdefault(a, []).append(b)
    for i, (label, is_text) in enumerate(zip(graph.labels, graph.leaf_text)):
        if is_text and i not in children:
            j = text.find(label, pos)
            if j >= 0:
                spans[i] = (j, j + len(label))
                pos = j + len(label)
    for i in reversed(range(len(spans))):  # children come after their parent in pre-order
        kids = [spans[c] for c in children.get(i, []) if spans[c] is not None]
        if spans[i] is None and kids:
            spans[i] = (min(s for s, _ in kids), max(e for _, e in kids))
    return spans


def _graph_inputs(model_dir: Path, prep_dir: Path) -> tuple[GraphClassifier, Callable[[str], tuple[Any, tuple, dict]]]:
    """The run's model (eval mode) and a function from code to (graph, model inputs), as the graph cache would
    hold them: the scan's tokenizer, vocabulary and AST options."""
    from streamguard.features import preprocess as prep
    from streamguard.features.featurize import Featurizer
    from streamguard.features.graphs import normalised_graph, relational_graph, text_subtokens
    cfg = config_from_run(read_exp_config(model_dir))
    text_tokenizer = run_text_tokenizer(model_dir, cfg)
    model = build_model(cfg, text_tokenizer).eval()
    model.load_state_dict(state_dict(model_dir))
    init = prep.featurizer_init(prep_dir)
    feat = Featurizer.from_dir(Path(init[0]), init[1], init[2], init[3], init[4])
    opts = graph_options(ProcessedDir(prep_dir), cfg, text_tokenizer)
    text_tok = _tokenizer(text_tokenizer) if text_tokenizer else None  # once, not per function

    def inputs(code: str) -> tuple[Any, tuple, dict[str, Any]]:
        graph = feat.labels(code)
        nodes = feat.node_ids(graph)
        text: dict[str, Any] = {}
        if opts.taint:
            ei, w, et, fl = relational_graph(nodes, graph.edges, feat.taint_of(graph), opts)
            text.update(edge_type=et.long(), flags=fl.long())
        else:
            ei, w = normalised_graph(nodes, graph.edges, opts)
        if text_tok is not None:
            sub = text_subtokens([feat.node_texts(graph)], text_tok)
            text.update(text_ids=sub["text_ids"].long(), text_offsets=sub["text_ptr"][:-1])
        return graph, (torch.tensor(nodes), ei, w.float(), torch.zeros(len(nodes), dtype=torch.int64), 1), text
    return model, inputs


def line_scores(model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Gradient x input on the node features (the first layer's node states), each node's attribution spread
    over the lines its source span covers (leaves are located in the code in order; inner nodes span their
    leaves). A taint-flow model's sink and guard nodes weigh ``FLOW_WEIGHT`` times more."""
    model, inputs = _graph_inputs(Path(model_dir), Path(prep_dir))
    captured: dict[str, torch.Tensor] = {}
    first = model.node_states

    def hooked(x: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor] | None,
               flags: torch.Tensor | None) -> torch.Tensor:
        z = first(x, text, flags)
        z.retain_grad()
        captured["z"] = z
        return z

    model.node_states = hooked
    flow = FLAGS["sink"] | FLAGS["guard"]
    results = []
    for code in codes:
        lines = line_of(code)
        scores = np.zeros(int(lines[-1]) + 1)
        graph, args, text = inputs(code)
        out = model(*args, **text)
        (out[0, 1] - out[0, 0]).backward()
        z = captured["z"]
        per_node = (z * z.grad).sum(-1).detach().numpy()
        if "flags" in text:
            per_node = np.where((text["flags"].numpy() & flow) > 0, FLOW_WEIGHT * per_node, per_node)
        for a, span in zip(per_node, node_spans(code, graph)):
            if span is not None:
                covered = np.unique(lines[span[0]:max(span[1], span[0] + 1)])
                scores[covered] += float(a) / len(covered)
        results.append(scores)
    return results
