"""The taint-flow graph on real functions (kernel lib/, Devign), its records and cache, and the GNN's graph=taint."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamguard.config import GNNConfig, PreprocessConfig
from streamguard.errors import UserError
from streamguard.features.ast import ASTParser, Graph
from streamguard.features.graphs import GraphDataset, GraphOptions, load_split, relational_graph
from streamguard.features.taintflow import FLAGS, taint_graph

FIXTURES = Path(__file__).parent / "fixtures"
KERNEL = FIXTURES / "kernel_c" / "lib"
# train rows 2375 (ebml_read_binary, FFmpeg) and 3760 (av_fifo_generic_write, FFmpeg) of the Devign data
DEVIGN = {json.loads(line)["func"].split("(")[0].split()[-1]: json.loads(line)["func"]
          for line in (FIXTURES / "taintflow" / "devign.jsonl").read_text().splitlines()}


def kernel_function(path: Path, head: str) -> str:
    text = path.read_text()
    start = text.index(head)
    return text[start:text.index("\n}\n", start) + 2]


def analysed(code: str) -> tuple[Graph, dict, bytes]:
    graph = ASTParser().parse(code)
    assert graph.tree is not None
    taint = taint_graph(graph.tree[0], graph.tree[1], graph.spans)
    assert taint["status"] == "ok"
    return graph, taint, graph.tree[1]


def text(graph: Graph, source: bytes, node: int) -> str:
    a, b = graph.spans[node]
    return source[a:b].decode()


def find(graph: Graph, source: bytes, taint: dict, start: str, exact: bool = False) -> int:
    """The node holding a statement or condition (a CFG node's placement: some typed edge touches it)."""
    touched = {n for pairs in taint["edges"].values() for pair in pairs for n in pair}
    hits = [n for n in sorted(touched) if (text(graph, source, n) == start if exact
                                           else text(graph, source, n).startswith(start))]
    assert hits, f"no flow node starts with {start!r}"
    return hits[0]


def flags_of(taint: dict, node: int) -> int:
    return dict(map(tuple, taint["flags"])).get(node, 0)


def test_a_bounds_check_that_dominates_memcpy_guards_it() -> None:
    # kernel strlcpy: `if (size) { len = ret >= size ? size - 1 : ret; memcpy(dest, src, len); ... }`
    graph, taint, src = analysed(kernel_function(KERNEL / "string.c", "size_t strlcpy("))
    cond, copy = find(graph, src, taint, "(size)", exact=True), find(graph, src, taint, "memcpy(dest, src, len)")
    assert [cond, copy] in taint["edges"]["guard"]
    assert flags_of(taint, copy) & FLAGS["sink"] and flags_of(taint, copy) & FLAGS["guarded"]
    assert not flags_of(taint, copy) & FLAGS["unguarded"]
    assert flags_of(taint, cond) & FLAGS["guard"]
    # len is defined from size (a parameter): def-use into the copy, and taint reaches it
    assert [find(graph, src, taint, "size_t len = "), copy] in taint["edges"]["def_use"]
    assert flags_of(taint, copy) & FLAGS["tainted"]


def test_a_check_in_another_branch_does_not_guard_memcpy() -> None:
    # av_fifo_generic_write: `if (func) { if (func(src, f->wptr, len) <= 0) break; } else memcpy(.., len)`
    graph, taint, src = analysed(DEVIGN["av_fifo_generic_write"])
    check, copy = find(graph, src, taint, "func(src, f->wptr, len) <= 0"), find(graph, src, taint, "memcpy(")
    assert [check, copy] not in taint["edges"]["guard"]
    assert not any(dst == copy for _, dst in taint["edges"]["guard"])
    assert flags_of(taint, copy) & FLAGS["unguarded"] and not flags_of(taint, copy) & FLAGS["guarded"]
    # the do-while's condition comes after the body: the loop bound is a sink, never a guard of the copy
    assert flags_of(taint, find(graph, src, taint, "size > 0", exact=True)) & FLAGS["sink"]


def test_a_freed_pointer_reaches_its_later_uses() -> None:
    # ebml_read_binary: av_free(bin->data); then bin->data = av_malloc(length), bin->size = length, ...
    graph, taint, src = analysed(DEVIGN["ebml_read_binary"])
    freed = find(graph, src, taint, "av_free(bin->data)")
    assert flags_of(taint, freed) & FLAGS["sink"]  # the freed pointer
    uses = {text(graph, src, b) for a, b in taint["edges"]["def_use"] if a == freed}
    assert any(u.startswith("!(bin->data = av_malloc") for u in uses), uses
    assert any(u.startswith("bin->size = length") for u in uses)


def test_a_parameter_flows_into_an_allocation_size() -> None:
    graph, taint, src = analysed(DEVIGN["ebml_read_binary"])
    param, alloc = find(graph, src, taint, "int length"), find(graph, src, taint, "!(bin->data = av_malloc")
    assert [param, alloc] in taint["edges"]["def_use"]
    assert flags_of(taint, alloc) & FLAGS["tainted"] and flags_of(taint, alloc) & FLAGS["unguarded"]
    # kernel bitmap_alloc: `return kmalloc_array(BITS_TO_LONGS(nbits), ...)`, nothing checks nbits
    graph, taint, src = analysed(kernel_function(KERNEL / "bitmap.c", "unsigned long *bitmap_alloc("))
    param, alloc = find(graph, src, taint, "unsigned int nbits"), find(graph, src, taint, "kmalloc_array(")
    assert [param, alloc] in taint["edges"]["def_use"]
    assert flags_of(taint, alloc) & FLAGS["unguarded"]


@pytest.mark.parametrize("code", ["", "))))((((", "int f(", "x = 1;", "#define A 1\n", "int f(void) { goto nowhere; }",
                                  "int f(int a) {" + "if (a) {" * 300 + "}" * 301, "void f(void) { for (;;) {} }"])
def test_odd_code_never_raises_and_falls_back_with_a_reason(code: str) -> None:
    graph = ASTParser().parse(code)
    taint = taint_graph(*graph.tree, graph.spans) if graph.tree else {"status": "no_tree"}
    assert isinstance(taint["status"], str)
    nodes = list(range(len(graph.labels)))
    ei, w, et, flags = relational_graph(nodes, graph.edges, taint, GraphOptions())
    assert ei.shape[1] == w.shape[0] == et.shape[0] and flags.shape[0] == len(nodes)
    if taint["status"] != "ok":  # the AST graph alone
        assert set(et.tolist()) <= {0} and not flags.any()


def test_relational_graph_types_and_normalises_each_relation() -> None:
    graph, taint, _ = analysed(DEVIGN["ebml_read_binary"])
    nodes = list(range(len(graph.labels)))
    ei, w, et, flags = relational_graph(nodes, graph.edges, taint, GraphOptions())
    assert set(et.tolist()) == {0, 1, 2, 3}
    for r in (1, 2, 3):
        keep = et == r
        sub = ei[:, keep]
        assert (sub[0, 1:] >= sub[0, :-1]).all()  # sorted by row within the type
        assert torch.isfinite(w[keep]).all() and (w[keep] > 0).all()
    assert int(flags.max()) < 2 * max(FLAGS.values())


@pytest.fixture(scope="module")
def taint_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raw_small preprocessed with the gnn fixture's tokenizer and node vocabulary, with the taint-flow graph."""
    from streamguard.data.ingest import import_codexglue
    from streamguard.features.preprocess import preprocess
    root = tmp_path_factory.mktemp("taint")
    import_codexglue(FIXTURES / "raw_small", root / "raw")
    preprocess(root / "raw", root / "p", PreprocessConfig(reuse_from=str(FIXTURES / "gnn_processed"),
                                                          taint_graph=True, workers=1))
    return root / "p"


def test_records_carry_the_taint_graph_and_its_status(taint_data: Path) -> None:
    recs = [json.loads(line) for line in (taint_data / "train.jsonl").read_text().splitlines()]
    statuses = [r["taint"]["status"] for r in recs]
    assert statuses == [r["metadata"]["taint_status"] for r in recs]
    assert statuses.count("ok") >= 0.9 * len(recs)
    for r in recs:
        n = len(r["ast_nodes"])
        for pairs in r["taint"].get("edges", {}).values():
            assert all(0 <= a < n and 0 <= b < n for a, b in pairs)
    graphs = load_split(taint_data, "train", GraphOptions(taint=True), taint_data / "cache")
    batch = GraphDataset(graphs).collate([0, 1, 2])["inputs"]
    assert batch["edge_type"].shape[0] == batch["edge_index"].shape[1]
    assert batch["flags"].shape[0] == batch["x"].shape[0] and batch["flags"].any()


def test_graph_taint_on_data_without_it_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="taint_graph"):
        load_split(FIXTURES / "gnn_processed", "valid", GraphOptions(taint=True), tmp_path)


@pytest.mark.parametrize("conv", ["gcn", "ggnn"])
def test_the_gnn_kind_trains_predicts_and_explains_with_graph_taint(taint_data: Path, tmp_path: Path,
                                                                     conv: str) -> None:
    from streamguard.train import gnn
    cfg = dataclasses.replace(GNNConfig(), graph="taint", conv=conv, hidden=16, embed_dim=8, head_hidden=16,
                              layers=2, batch_size=8, epochs=1, cache_dir=str(tmp_path / "cache"))
    run = gnn.train(taint_data, tmp_path / "run", cfg)
    rows = gnn.predict(run, taint_data, "test")
    assert len(rows) == 12 and all(0 <= r["prob_vulnerable"] <= 1 for r in rows)
    state = gnn.state_dict(run)
    assert any(k.startswith("rel_lins.") for k in state) and "flag_embed.weight" in state
    code = DEVIGN["ebml_read_binary"]
    (scores,) = gnn.line_scores(run, taint_data, [code])
    assert scores.shape[0] >= code.count("\n") and np.isfinite(scores).all() and np.abs(scores).sum() > 0
