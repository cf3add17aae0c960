"""AST graphs as a cached PyTorch dataset for the GNN.

Each processed split is converted once into flat tensors (node ids, normalised edges, per-graph offsets and,
when asked, the sub-token ids of each leaf's text) and saved with ``torch.save`` under a name keyed by the
jsonl's sha256 and the options, so epochs never re-read JSON and a changed file never reuses a stale cache.
Loading uses ``weights_only=True``.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from streamguard.atomic import atomic_open
from streamguard.data.records import RecordError, read_jsonl_lines
from streamguard.errors import UserError
from streamguard.provenance import sha256_file

log = logging.getLogger(__name__)
CACHE_VERSION = 1
EDGE_KINDS = ("ast", "ncs", "ident")
RELATIONS = ("ast", "cfg", "def_use", "guard")  # a taint-flow graph's edge types (ncs/ident edges join ast's)


@dataclass(frozen=True)
class GraphOptions:
    """Which edges a graph carries besides the AST's, made undirected, with self-loops."""
    ncs: bool = False    # natural code sequence: consecutive leaves, as in Devign
    ident: bool = False  # consecutive occurrences of the same leaf label: a cheap data-flow proxy
    unk_id: int = 0
    text: str | None = None  # a tokenizer.json: carry the sub-token ids of each node's ``ast_text``
    taint: bool = False  # the records' taint-flow edges as typed relations, and node flags (features/taintflow.py)

    def key(self) -> str:
        text = f"+text{sha256_file(Path(self.text))[:12]}" if self.text else ""
        return "ast" + ("+ncs" if self.ncs else "") + ("+ident" if self.ident else "") + text + \
            ("+taint" if self.taint else "")


def graph_edges(nodes: Sequence[int], edges: Sequence[Sequence[int]], opts: GraphOptions) -> torch.Tensor:
    """Directed edge pairs (2, E): AST parent->child edges plus the optional extra kinds."""
    n = len(nodes)
    src = [int(e[0]) for e in edges]
    dst = [int(e[1]) for e in edges]
    if opts.ncs or opts.ident:
        has_child = set(src)
        # Nodes are listed in pre-order, so leaves appear in source order.
        leaves = [i for i in range(n) if i not in has_child]
        if opts.ncs:
            src += leaves[:-1]
            dst += leaves[1:]
        if opts.ident:
            last: dict[int, int] = {}
            for leaf in leaves:
                label = int(nodes[leaf])
                if label != opts.unk_id and label in last:
                    src.append(last[label])
                    dst.append(leaf)
                last[label] = leaf
    return torch.tensor([src, dst], dtype=torch.int64).reshape(2, -1)


def normalised_graph(nodes: Sequence[int], edges: Sequence[Sequence[int]],
                     opts: GraphOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric GCN normalisation of the undirected graph with self-loops, rows = targets, sorted by row."""
    n = len(nodes)
    directed = graph_edges(nodes, edges, opts)
    both = torch.cat([directed, directed.flip(0)], 1)
    ei, w = gcn_norm(both, None, n, add_self_loops=True)
    ei = ei.flip(0)  # GCNConv aggregates into the target: the target is the CSR row
    order = torch.argsort(ei[0] * n + ei[1])
    return ei[:, order], w[order]


def relational_graph(nodes: Sequence[int], edges: Sequence[Sequence[int]], taint: dict[str, Any] | None,
                     opts: GraphOptions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges, weights and types (``RELATIONS``) of a taint-flow graph, each type normalised on its own and
    sorted by (type, row); and each node's flags. Self-loops go with the ``ast`` type only. Without a usable
    taint part (its ``status`` says why) the graph is the AST's alone, with no flags."""
    n = len(nodes)
    ei, w = normalised_graph(nodes, edges, opts)
    parts, weights, types = [ei], [w], [torch.zeros(ei.shape[1], dtype=torch.int8)]
    flags = torch.zeros(n, dtype=torch.int8)
    ok = isinstance(taint, dict) and taint.get("status") == "ok"
    for r, name in enumerate(RELATIONS[1:], 1):
        pairs = taint["edges"].get(name, []) if ok else []
        if not pairs:
            continue
        directed = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2).t()
        if int(directed.min()) < 0 or int(directed.max()) >= n:
            raise ValueError(f"{name} edge endpoint outside the node range")
        both = torch.cat([directed, directed.flip(0)], 1).unique(dim=1)
        rei, rw = gcn_norm(both, None, n, add_self_loops=False)
        rei = rei.flip(0)
        order = torch.argsort(rei[0] * n + rei[1])
        parts.append(rei[:, order])
        weights.append(rw[order])
        types.append(torch.full((rei.shape[1],), r, dtype=torch.int8))
    if ok:
        for node, bits in taint.get("flags", []):
            flags[int(node)] = int(bits)
    return torch.cat(parts, 1), torch.cat(weights), torch.cat(types), flags


def build_cache(jsonl: Path, opts: GraphOptions) -> dict[str, Any]:
    """Convert every record of a processed split into the flat tensors of the cache."""
    ids: list[str] = []
    projects: list[str] = []
    labels: list[int] = []
    xs, eis, ws, types, flags = [], [], [], [], []
    texts: list[list[str]] = []
    for lineno, rec in read_jsonl_lines(jsonl):
        if isinstance(rec, RecordError):
            raise UserError(f"{jsonl}:{lineno}: {rec}")
        try:
            nodes, edges = rec["ast_nodes"], rec["edge_index"]
            ids.append(str(rec["id"]))
            labels.append(int(rec["label"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{jsonl}:{lineno}: not a processed record ({exc!r})") from None
        if not nodes:
            raise UserError(f"{jsonl}:{lineno}: graph has no nodes")
        if opts.text:
            text = rec.get("ast_text")
            if not isinstance(text, list) or len(text) != len(nodes):
                raise UserError(f"{jsonl}:{lineno}: no ast_text per node (preprocessed before it existed): "
                                "preprocess the data again for node_text")
            texts.append(text)
        projects.append(str((rec.get("metadata") or {}).get("project") or ""))
        if opts.taint:
            if "taint" not in rec:
                raise UserError(f"{jsonl}:{lineno}: no taint-flow graph (preprocessed without taint_graph): "
                                "preprocess the data again with taint_graph=true for graph=taint")
            try:
                ei, w, et, fl = relational_graph(nodes, edges, rec["taint"], opts)
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
                raise UserError(f"{jsonl}:{lineno}: malformed taint-flow graph ({exc})") from None
            types.append(et)
            flags.append(fl)
        else:
            ei, w = normalised_graph(nodes, edges, opts)
        xs.append(torch.tensor(nodes, dtype=torch.int16))
        eis.append(ei.to(torch.int32))
        ws.append(w.float())
    node_ptr = torch.tensor([0] + [len(x) for x in xs], dtype=torch.int64).cumsum(0)
    edge_ptr = torch.tensor([0] + [e.shape[1] for e in eis], dtype=torch.int64).cumsum(0)
    cache = {"version": CACHE_VERSION, "ids": ids, "projects": projects,
             "labels": torch.tensor(labels, dtype=torch.int64),
             "x": torch.cat(xs) if xs else torch.zeros(0, dtype=torch.int16),
             "edge_index": torch.cat(eis, 1) if eis else torch.zeros(2, 0, dtype=torch.int32),
             "edge_weight": torch.cat(ws) if ws else torch.zeros(0), "node_ptr": node_ptr, "edge_ptr": edge_ptr}
    if opts.taint:
        cache["edge_type"] = torch.cat(types) if types else torch.zeros(0, dtype=torch.int8)
        cache["flags"] = torch.cat(flags) if flags else torch.zeros(0, dtype=torch.int8)
    if opts.text:
        from tokenizers import Tokenizer
        cache.update(text_subtokens(texts, Tokenizer.from_file(opts.text)))
    return cache


def text_subtokens(texts: list[list[str]], tok: Any) -> dict[str, torch.Tensor]:
    """Every node's sub-token ids by the ``tokenizers.Tokenizer`` ``tok``, flat (``text_ids``) with per-node
    offsets (``text_ptr``, one more than there are nodes); a node without text has none. Each distinct text is
    encoded once, with a leading space, the way the byte-level BPE sees an identifier in running code."""
    flat = [t for graph in texts for t in graph]
    distinct = sorted({t for t in flat if t})
    encoded = {t: e.ids for t, e in zip(distinct, tok.encode_batch([" " + t for t in distinct],
                                                                  add_special_tokens=False))}
    pieces = [encoded[t] if t else [] for t in flat]
    ptr = torch.tensor([0] + [len(p) for p in pieces], dtype=torch.int64).cumsum(0)
    ids = torch.tensor([i for p in pieces for i in p], dtype=torch.int32)
    return {"text_ids": ids, "text_ptr": ptr}


def _cache_dir(data_dir: Path, cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    default = data_dir / ".graph_cache"
    try:
        default.mkdir(exist_ok=True)
        return default
    except OSError:  # a read-only dataset: fall back to the user's cache
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streamguard" / "graphs"


def load_split(data_dir: Path, split: str, opts: GraphOptions, cache_dir: Path | None = None) -> dict[str, Any]:
    """The cached graphs of one split, converting (and saving) them on first use."""
    jsonl = data_dir / f"{split}.jsonl"
    if not jsonl.is_file():
        raise UserError(f"processed split not found: {jsonl}")
    digest = sha256_file(jsonl)
    folder = _cache_dir(data_dir, cache_dir)
    path = folder / f"{split}-{digest[:16]}-{opts.key()}-v{CACHE_VERSION}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a cache cut short by a crash is rebuilt, never trusted
            log.warning("graph cache %s unreadable (%s); rebuilding", path, exc)
    data = build_cache(jsonl, opts)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        torch.save(data, fh)
    return data


class GraphDataset(Dataset):
    """Graphs of one split (optionally a subset of ids) with per-sample loss weights; items are positions."""

    def __init__(self, data: dict[str, Any], ids: set[str] | None = None,
                 weights: dict[str, float] | None = None) -> None:
        self.data = data
        keep = range(len(data["ids"])) if ids is None else [i for i, k in enumerate(data["ids"]) if k in ids]
        self.rows = torch.tensor(list(keep), dtype=torch.int64)
        self.ids = [data["ids"][i] for i in self.rows.tolist()]
        self.projects = [data["projects"][i] for i in self.rows.tolist()]
        self.labels = data["labels"][self.rows]
        w = weights or {}
        self.weights = torch.tensor([float(w.get(k, 1.0)) for k in self.ids], dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> int:
        return i

    def num_nodes(self) -> torch.Tensor:
        ptr = self.data["node_ptr"]
        return ptr[self.rows + 1] - ptr[self.rows]

    def collate(self, items: list[int]) -> dict[str, Any]:
        """Concatenate graphs into one disjoint graph; edges stay sorted by row because offsets increase."""
        d = self.data
        xs, eis, ws, sizes, text_ids, text_starts, ets, fls = [], [], [], [], [], [], [], []
        offset = text_offset = 0
        for i in items:
            r = int(self.rows[i])
            n0, n1 = int(d["node_ptr"][r]), int(d["node_ptr"][r + 1])
            e0, e1 = int(d["edge_ptr"][r]), int(d["edge_ptr"][r + 1])
            xs.append(d["x"][n0:n1])
            eis.append(d["edge_index"][:, e0:e1].to(torch.int64) + offset)
            ws.append(d["edge_weight"][e0:e1])
            sizes.append(n1 - n0)
            offset += n1 - n0
            if "edge_type" in d:
                ets.append(d["edge_type"][e0:e1])
                fls.append(d["flags"][n0:n1])
            if "text_ptr" in d:  # per node, where its sub-tokens start in the batch's flat text_ids
                ptr = d["text_ptr"][n0:n1 + 1]
                text_ids.append(d["text_ids"][int(ptr[0]):int(ptr[-1])])
                text_starts.append(ptr[:-1] - ptr[0] + text_offset)
                text_offset += int(ptr[-1] - ptr[0])
        idx = torch.tensor(items, dtype=torch.int64)
        batch = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(sizes))
        inputs = {"x": torch.cat(xs).to(torch.int64), "edge_index": torch.cat(eis, 1),
                  "edge_weight": torch.cat(ws), "batch": batch, "num_graphs": len(items)}
        if ets:  # within each type, edges stay sorted by row: each graph's are, and offsets increase
            inputs["edge_type"] = torch.cat(ets).to(torch.int64)
            inputs["flags"] = torch.cat(fls).to(torch.int64)
        if text_starts:
            inputs["text_ids"] = torch.cat(text_ids).to(torch.int64)
            inputs["text_offsets"] = torch.cat(text_starts)
        return {"inputs": inputs, "label": self.labels[idx], "weight": self.weights[idx], "index": idx}
