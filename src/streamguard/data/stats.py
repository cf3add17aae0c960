"""GraphStatistics for GNN batch sizing, and the dataset audit (duplicates, cross-split leakage, balance)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamguard.data.neardup import text_key

BYTES_PER_FLOAT = 4
HIDDEN = 256          # the GNN's hidden size: activations per node per layer
SAFETY_MARGIN = 0.5   # half of the budget is left for weights, optimiser state and allocator slack
# The formula counts one layer's activations only, so it asks for thousands of graphs a batch (6,150 on
# Devign with 16 GB); past a few hundred a bigger batch buys no speed and fewer optimiser steps, so cap it.
MAX_BATCH_SIZE = 512


def graph_statistics(node_counts: Sequence[int], memory_budget_gb: float = 16.0) -> dict[str, Any]:
    """Node-count distribution and the GNN batch size that fits ``memory_budget_gb`` (16 GB: a T4)."""
    if len(node_counts) == 0:
        return {"count": 0, "mean_nodes": 0.0, "p95_nodes": 0.0, "max_nodes": 0, "memory_budget_gb": memory_budget_gb,
                "recommended_batch_size": 1}
    counts = np.asarray(node_counts, dtype=np.float64)
    p95 = float(np.percentile(counts, 95))
    return {"count": int(counts.size), "mean_nodes": round(float(counts.mean()), 2), "p95_nodes": round(p95, 2),
            "max_nodes": int(counts.max()), "memory_budget_gb": memory_budget_gb,
            "recommended_batch_size": min(recommended_batch_size(p95, memory_budget_gb), MAX_BATCH_SIZE)}


def recommended_batch_size(p95_nodes: float, memory_budget_gb: float, hidden: int = HIDDEN) -> int:
    """The specification's formula, uncapped: budget * 0.5 / (p95_nodes * hidden * 4 bytes), at least 1."""
    budget = memory_budget_gb * 1024**3 * SAFETY_MARGIN
    return max(1, int(budget // (max(p95_nodes, 1.0) * hidden * BYTES_PER_FLOAT)))


def audit(splits: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Label balance, duplicates within each split, duplicates across splits, and conflicting labels. Two rows
    are the same function when ``neardup.text_key`` says so: the one definition the merge and the corpus use."""
    by_hash: dict[str, dict[str, list[int]]] = {name: defaultdict(list) for name in splits}
    report: dict[str, Any] = {"splits": {}, "cross_split": {}, "conflicting_labels": {}}
    for name, rows in splits.items():
        for row in rows:
            by_hash[name][text_key(row["func"])].append(int(row["target"]))
        groups = by_hash[name].values()
        n = len(rows)
        report["splits"][name] = {
            "count": n, "vulnerable": sum(int(r["target"]) for r in rows),
            "vulnerable_share": round(sum(int(r["target"]) for r in rows) / n, 4) if n else 0.0,
            "duplicate_rows": sum(len(g) - 1 for g in groups if len(g) > 1),
            "duplicate_groups_with_conflicting_labels": sum(1 for g in groups if len(set(g)) > 1)}
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = by_hash[a].keys() & by_hash[b].keys()
            conflicts = sum(1 for h in shared if set(by_hash[a][h]) != set(by_hash[b][h]))
            report["cross_split"][f"{a}-{b}"] = {"shared_functions": len(shared), "conflicting_labels": conflicts}
    everywhere: dict[str, set[int]] = defaultdict(set)
    for name in names:
        for h, labels in by_hash[name].items():
            everywhere[h].update(labels)
    report["conflicting_labels"] = {"groups": sum(1 for labels in everywhere.values() if len(labels) > 1)}
    return report


def hashes(rows: list[dict[str, Any]]) -> set[str]:
    return {text_key(r["func"]) for r in rows}
