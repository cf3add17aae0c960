"""What preprocessing produced, as numbers for preprocessing_metadata.json and a table for the terminal."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.config import PreprocessConfig
from streamguard.data.rawdir import RawDir
from streamguard.data.records import SPLITS, read_jsonl_lines
from streamguard.data.stats import audit, graph_statistics


def _dist(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0}
    arr = np.asarray(values)
    return {"mean": round(float(arr.mean()), 1), "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)), "max": int(arr.max())}


def _audit_of(raw: Path) -> dict[str, Any]:
    """The raw manifest's audit when ingest wrote one; else computed here (raw data made by hand)."""
    manifest = RawDir(raw).manifest()
    if manifest:
        return manifest.get("audit", {})
    rows = {}
    for split in SPLITS:  # the same reader as the stage: a hostile line is skipped here, rejected there
        rows[split] = [r for _, r in read_jsonl_lines(RawDir(raw).split_path(split))
                       if isinstance(r, dict) and isinstance(r.get("func"), str) and r.get("target") in (0, 1)]
    return audit(rows)


def summarise(metas: list[dict], rejects: list[dict], read: dict[str, int], raw: Path,
              cfg: PreprocessConfig) -> dict[str, Any]:
    counts = {}
    for split in SPLITS:
        written = sum(1 for m in metas if m["split"] == split)
        rejected = sum(1 for r in rejects if r["split"] == split)
        counts[split] = {"read": read[split], "written": written, "rejected": rejected}
    tiers = Counter(m["ast_strategy"] for m in metas)
    n = max(len(metas), 1)
    trims = Counter(m["trim_strategy"] for m in metas)
    train_nodes = [m["num_ast_nodes"] for m in metas if m["split"] == "train"] or [m["num_ast_nodes"] for m in metas]
    return {
        "counts": counts,
        "ast": {"tiers": dict(tiers), "tier_rates": {k: round(v / n, 4) for k, v in tiers.items()},
                "success_rate": round(sum(1 for m in metas if m["ast_success"]) / n, 4)},
        "tokens": {"before_trimming": _dist([m["orig_num_tokens"] + 2 for m in metas]),
                   "after_trimming": _dist([m["num_tokens"] for m in metas]), "max_tokens": cfg.max_tokens},
        "trimming": {"trimmed": sum(1 for m in metas if m["trimmed"]), "by_strategy": dict(trims),
                     "risky_window_apis": dict(Counter(a for m in metas if m["trim_strategy"] == "risky_window"
                                                       for a in m["risky_apis"]).most_common(20))},
        "graph_stats": graph_statistics(train_nodes, cfg.memory_budget_gb),
        "audit": _audit_of(raw),
    }


def print_summary(out: Path, meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"preprocessed -> {out}")
    for col in ("split", "read", "written", "rejected"):
        table.add_column(col, justify="right" if col != "split" else "left")
    for split, c in meta["counts"].items():
        table.add_row(split, str(c["read"]), str(c["written"]), str(c["rejected"]))
    console = Console()
    console.print(table)
    g, t = meta["graph_stats"], meta["tokens"]
    console.print(f"AST success {meta['ast']['success_rate']:.1%} (tiers {meta['ast']['tiers']}); "
                  f"trimmed {meta['trimming']['trimmed']} {meta['trimming']['by_strategy']}; tokens mean "
                  f"{t['before_trimming']['mean']} -> {t['after_trimming']['mean']}; nodes mean {g['mean_nodes']} "
                  f"p95 {g['p95_nodes']} max {g['max_nodes']}; GNN batch {g['recommended_batch_size']} for "
                  f"{g['memory_budget_gb']} GB; {meta['timings']['total_s']} s with {meta['workers']} workers")
