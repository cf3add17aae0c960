"""The taint-flow graph: typed edges and per-node flags laid over a function's AST graph (docs/contracts.md).

Per function, on the statement-level CFG of ``features.cfg``: reaching definitions give def-use edges; taint
flows from the sources (parameters, input-like calls) along them; sinks are the risky calls' arguments, array
indices, pointer arithmetic, allocation sizes, loop bounds, divisors and freed pointers; a guard edge joins a
condition that dominates a sink and tests a variable whose same definition reaches the sink. Each CFG node is
placed on the AST graph node that is its statement's top (the first node in pre-order inside its span), so the
taint-flow graph shares the AST graph's nodes: edge types ``ast`` (the record's ``edge_index``), ``cfg``,
``def_use`` and ``guard``, node flags in DeepDFA's spirit (``FLAGS``). Any failure yields no taint-flow part and
a reason: the model then sees the AST graph alone.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from tree_sitter import Node

from streamguard.features.cfg import CFG, CFGBuilder, FactReader, Facts

TAINT_EDGES = ("cfg", "def_use", "guard")  # the record's taint edge types (``ast`` is the record's edge_index)
# node flag bits: a tainted definition reaches what it reads; it is a sink; a sink with a guard; a sink that a
# tainted definition reaches with no guard; a condition that guards a sink
FLAGS = {"tainted": 1, "sink": 2, "guarded": 4, "unguarded": 8, "guard": 16}
MAX_CFG_NODES = 2000


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def reaching_definitions(cfg: CFG, facts: list[Facts]) -> tuple[list[tuple[str, int, bool]], list[int],
                                                                   dict[str, int]]:
    """Definitions (var, node, source), each node's incoming set as a bitmask, and each variable's defs."""
    defs: list[tuple[str, int, bool]] = []
    var_defs: dict[str, int] = {}
    gen = [0] * len(cfg.nodes)
    strong: list[set[str]] = [set() for _ in cfg.nodes]
    for n, f in enumerate(facts):
        for var, is_strong, source in f.defs:
            bit = 1 << len(defs)
            defs.append((var, n, source))
            var_defs[var] = var_defs.get(var, 0) | bit
            gen[n] |= bit
            if is_strong:
                strong[n].add(var)
    kill = [0] * len(cfg.nodes)
    for n, names in enumerate(strong):
        for var in names:
            kill[n] |= var_defs[var] & ~gen[n]
    preds: list[list[int]] = [[] for _ in cfg.nodes]
    for a, succs in enumerate(cfg.succ):
        for b in succs:
            preds[b].append(a)
    inn, out = [0] * len(cfg.nodes), gen[:]
    work = list(range(len(cfg.nodes)))
    queued = set(work)
    while work:
        n = work.pop()
        queued.discard(n)
        i = 0
        for p in preds[n]:
            i |= out[p]
        inn[n] = i
        o = gen[n] | (i & ~kill[n])
        if o != out[n]:
            out[n] = o
            for s in cfg.succ[n]:
                if s not in queued:
                    queued.add(s)
                    work.append(s)
    return defs, inn, var_defs


def dominators(cfg: CFG) -> list[int]:
    """Each node's dominators as a bitmask (iterative, in reverse post-order); unreachable nodes: themselves."""
    n = len(cfg.nodes)
    order, seen, stack = [], {0}, [(0, iter(sorted(cfg.succ[0])))]
    while stack:  # iterative DFS for the post-order
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            order.append(node)
            stack.pop()
        elif nxt not in seen:
            seen.add(nxt)
            stack.append((nxt, iter(sorted(cfg.succ[nxt]))))
    order.reverse()
    preds: list[list[int]] = [[] for _ in range(n)]
    for a, succs in enumerate(cfg.succ):
        for b in succs:
            if a in seen:
                preds[b].append(a)
    full = (1 << n) - 1
    dom = [1 << i if i not in seen or i == 0 else full for i in range(n)]
    changed = True
    while changed:
        changed = False
        for node in order[1:]:
            d = full
            for p in preds[node]:
                d &= dom[p]
            d |= 1 << node
            if d != dom[node]:
                dom[node], changed = d, True
    return dom


def backward_slice(sink: int, facts: list[Facts], defs: list[tuple[str, int, bool]], inn: list[int],
                   var_defs: dict[str, int]) -> int:
    """The definitions whose values flow into the sink's sink variables, through def-use chains (a bitmask)."""
    found = 0
    for var in facts[sink].sink_vars:
        found |= inn[sink] & var_defs.get(var, 0)
    todo = found
    while todo:
        low = todo & -todo
        todo ^= low
        node = defs[low.bit_length() - 1][1]
        more = 0
        for var in facts[node].uses:
            more |= inn[node] & var_defs.get(var, 0)
        todo |= more & ~found
        found |= more
    return found


def analyse(cfg: CFG, facts: list[Facts]) -> tuple[dict[str, set[tuple[int, int]]], list[int]]:
    """Typed edges over CFG nodes and each CFG node's flags."""
    defs, inn, var_defs = reaching_definitions(cfg, facts)
    tainted = 0
    for i, (_, _, source) in enumerate(defs):
        if source:
            tainted |= 1 << i
    changed = True
    while changed:  # a definition is tainted when what its statement reads is: to a fixed point
        changed = False
        for i, (_, node, _) in enumerate(defs):
            if not tainted >> i & 1 and any(inn[node] & var_defs.get(v, 0) & tainted for v in facts[node].uses):
                tainted |= 1 << i
                changed = True
    edges: dict[str, set[tuple[int, int]]] = {"cfg": set(), "def_use": set(), "guard": set()}
    for a, succs in enumerate(cfg.succ):
        edges["cfg"].update((a, b) for b in succs)
    flags = [0] * len(cfg.nodes)
    for n, f in enumerate(facts):
        for var in f.uses:
            reach = inn[n] & var_defs.get(var, 0)
            edges["def_use"].update((defs[d][1], n) for d in _bits(reach))
            if reach & tainted:
                flags[n] |= FLAGS["tainted"]
    dom = dominators(cfg)
    conds = [c for c, kind in enumerate(cfg.kinds) if kind in ("cond", "loop")]
    for s, f in enumerate(facts):
        if not f.sink:
            continue
        flags[s] |= FLAGS["sink"]
        flowing = backward_slice(s, facts, defs, inn, var_defs)
        for c in conds:
            if c == s or not dom[s] >> c & 1:
                continue
            for var in facts[c].uses:
                reach = inn[c] & var_defs.get(var, 0)
                # the condition tests a value that flows into the sink (or, never defined here, the same name)
                if reach & flowing or (not reach and var in f.sink_vars):
                    edges["guard"].add((c, s))
                    flags[c] |= FLAGS["guard"]
                    flags[s] |= FLAGS["guarded"]
                    break
        reaches_tainted = any(inn[s] & var_defs.get(v, 0) & tainted for v in f.sink_vars)
        if reaches_tainted and not flags[s] & FLAGS["guarded"]:
            flags[s] |= FLAGS["unguarded"]
    return edges, flags


def node_placement(cfg: CFG, spans: Sequence[tuple[int, int]]) -> list[int | None]:
    """Each CFG node's AST graph node: the first in pre-order whose span lies inside the statement's."""
    by_start = sorted(range(len(spans)), key=lambda i: spans[i][0])
    starts = [spans[i][0] for i in by_start]
    out: list[int | None] = []
    for node in cfg.nodes:
        if node is None:
            out.append(None)
            continue
        lo, hi, best = node.start_byte, node.end_byte, None
        for j in range(bisect_left(starts, lo), len(starts)):
            i = by_start[j]
            if spans[i][0] >= hi:
                break
            if spans[i][1] <= hi and (best is None or i < best):
                best = i
        out.append(best)
    return out


def bridged(cfg: CFG, place: list[int | None]) -> set[tuple[int, int]]:
    """Control-flow edges between placed nodes, through any nodes without a place (entry, exit, a ``default``
    label, statements outside the trimmed window), so that the flow stays connected."""
    out = set()
    for a in range(len(cfg.nodes)):
        if place[a] is None:
            continue
        seen, stack = set(), list(cfg.succ[a])
        while stack:
            b = stack.pop()
            if b in seen:
                continue
            seen.add(b)
            if place[b] is not None:
                out.add((a, b))
            else:
                stack.extend(cfg.succ[b])
    return out


def function_node(root: Node) -> Node | None:
    """The (first) function definition in the tree, also where a wrapper or ERROR node holds it."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "function_definition":
            return node
        if node.type in ("translation_unit", "ERROR", "linkage_specification", "declaration_list"):
            stack.extend(reversed(node.children))
    return None


def taint_graph(root: Node | None, source: bytes, spans: Sequence[tuple[int, int]] | None,
                extra_inputs: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record's ``taint`` field for an AST graph with these node ``spans``; never raises on odd code."""
    if root is None or not spans:
        return {"status": "no_tree"}
    func = function_node(root)
    if func is None:
        return {"status": "no_function"}
    try:
        cfg = CFGBuilder().build(func, source)
        if len(cfg.nodes) > MAX_CFG_NODES:
            return {"status": "too_large"}
        reader = FactReader(source, extra_inputs)
        facts = [reader.read(n, kind == "loop") if n is not None else Facts() for n, kind in zip(cfg.nodes, cfg.kinds)]
        edges, flags = analyse(cfg, facts)
    except RecursionError:
        return {"status": "too_deep"}
    place = node_placement(cfg, spans)
    edges["cfg"] = bridged(cfg, place)
    out_edges = {}
    for kind in TAINT_EDGES:
        pairs = {(place[a], place[b]) for a, b in edges[kind]}
        out_edges[kind] = sorted([a, b] for a, b in pairs if a is not None and b is not None and a != b)
    node_flags: dict[int, int] = {}
    for n, bits in enumerate(flags):
        if bits and place[n] is not None:
            node_flags[place[n]] = node_flags.get(place[n], 0) | bits
    return {"status": "ok", "edges": out_edges, "flags": sorted([k, v] for k, v in node_flags.items())}
