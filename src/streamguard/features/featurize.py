"""One function -> one processed record: tokens with offsets, trimming, AST graph with node-vocabulary ids.

Runs inside the preprocessing worker processes, so it imports only ``tokenizers`` and ``tree_sitter`` (not
``transformers``): workers start in well under a second.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from streamguard.atomic import write_text
from streamguard.features.ast import ASTParser, Graph
from streamguard.features.normalise import normalise_code
from streamguard.features.taintflow import taint_graph
from streamguard.features.trim import choose_window, find_risky_spans

UNK = "<unk>"


@dataclass
class Featurizer:
    tokenizer: Tokenizer
    cls_id: int
    sep_id: int
    max_tokens: int
    parser: ASTParser
    vocab: dict[str, int] | None = None  # None while the node vocabulary is being counted
    normalise: bool = False  # PreprocessConfig.normalise_identifiers: the model reads normalise_code(func)
    taint: bool = False  # records carry the taint-flow graph (features/taintflow.py)

    @classmethod
    def from_dir(cls, tokenizer_dir: Path, identity: dict, max_tokens: int, ast_options: dict[str, Any],
                 vocab: list[str] | None, normalise: bool = False) -> Featurizer:
        tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        opts = {k: v for k, v in ast_options.items() if k != "taint_graph"}
        return cls(tok, identity["cls_id"], identity["sep_id"], max_tokens, ASTParser(**opts),
                   {label: i for i, label in enumerate(vocab)} if vocab else None, normalise,
                   bool(ast_options.get("taint_graph")))

    def text(self, code: str) -> str:
        """What the model reads of ``code`` (idempotent: already normalised code passes unchanged)."""
        return normalise_code(code) if self.normalise else code

    def kept_code(self, code: str) -> tuple[str, dict[str, Any], list[int], list[list[int]]]:
        """Tokenize, trim to the budget around risky code, and return the kept text with its tokens."""
        enc = self.tokenizer.encode(code, add_special_tokens=False)
        ids, offsets = enc.ids, enc.offsets
        # CLS and SEP take two places; at least one token of the code is always kept
        window = choose_window(offsets, find_risky_spans(code), max(1, self.max_tokens - 2))
        kept_ids = ids[window.start:window.end]
        kept = offsets[window.start:window.end]
        first = kept[0][0] if kept and window.strategy != "none" else 0
        last = kept[-1][1] if kept and window.strategy != "none" else len(code)
        info = {"orig_num_tokens": len(ids), "trimmed": window.strategy != "none", "trim_strategy": window.strategy,
                "trim_span": [first, last], "risky_apis": list(window.risky_apis)}
        rel = [[a - first, b - first] for a, b in kept]
        return code[first:last], info, kept_ids, rel

    def labels(self, code: str) -> Graph:
        code = self.text(code)
        _, info, _, _ = self.kept_code(code)
        return self.parser.parse(code, tuple(info["trim_span"]))

    @staticmethod
    def taint_of(graph: Graph) -> dict[str, Any]:
        """The record's ``taint`` field for ``graph`` (status only, where there is no parse to read it from)."""
        if graph.tree is None:
            return {"status": "no_tree"}
        return taint_graph(graph.tree[0], graph.tree[1], graph.spans)

    def node_ids(self, graph: Graph) -> list[int]:
        assert self.vocab is not None
        vocab, unk = self.vocab, self.vocab[UNK]
        return [vocab.get(label, vocab.get(kind, unk)) if is_text else vocab.get(label, unk)
                for label, kind, is_text in zip(graph.labels, graph.types, graph.leaf_text)]

    @staticmethod
    def node_texts(graph: Graph) -> list[str]:
        """Each node's own text where it is a leaf's, else "": the GNN's sub-token features (docs/models.md)."""
        return [label if is_text else "" for label, is_text in zip(graph.labels, graph.leaf_text)]

    def record(self, row: dict[str, Any], split: str, row_no: int, source: str) -> dict[str, Any]:
        func = self.text(row["func"])
        code, info, ids, offsets = self.kept_code(func)
        graph = self.parser.parse(func, tuple(info["trim_span"]))
        tokens = [self.cls_id, *ids, self.sep_id]
        idx = row.get("idx")
        taint = {"taint": self.taint_of(graph)} if self.taint else {}
        return {
            "id": f"{source.upper()}-{split.upper()}-{row_no}", "code": code, "language": "c", "tokens": tokens,
            "token_offsets": [[0, 0], *offsets, [0, 0]], "ast_nodes": self.node_ids(graph),
            "ast_text": self.node_texts(graph),
            "edge_index": [list(e) for e in graph.edges], "label": int(row["target"]),
            "metadata": {"source": source, "split": split, "orig_id": "" if idx is None else str(idx), "row": row_no,
                         # an identity that survives reordering: the raw function's text, hashed
                         "content_sha256": hashlib.sha256(row["func"].encode("utf-8")).hexdigest(),
                         "project": row.get("project", ""), "ast_success": graph.strategy != "token_graph",
                         "ast_strategy": graph.strategy, "num_tokens": len(tokens), "num_ast_nodes": len(graph.labels),
                         **info, **({"taint_status": taint["taint"]["status"]} if taint else {})},
                **taint}


def count_labels(graph: Graph, types: Counter, texts: Counter) -> None:
    for label, kind, is_text in zip(graph.labels, graph.types, graph.leaf_text):
        types[kind] += 1
        if is_text:
            texts[label] += 1


def build_vocab(types: Counter, texts: Counter, size: int) -> list[str]:
    """Unknown first, then every node type (the fallback labels), then the most frequent leaf texts."""
    # ties are broken by the label itself: counts come from workers in any order, the vocabulary must not
    vocab = [UNK] + [t for t, _ in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))]
    seen = set(vocab)
    for text, _ in sorted(texts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= size:
            break
        if text not in seen:
            vocab.append(text)
            seen.add(text)
    return vocab[:size]


def save_vocab(path: Path, vocab: list[str], counted_on: int) -> None:
    write_text(path, json.dumps({"labels": vocab, "unk_id": 0, "counted_on_train_functions": counted_on}) + "\n")


def load_vocab(path: Path) -> list[str]:
    return json.loads(path.read_text())["labels"]
