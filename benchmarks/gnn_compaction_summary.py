"""Table of the AST compaction variants (benchmarks/gnn_compaction.sh) -> benchmarks/results/gnn_compaction.md."""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def row(name: str) -> str:
    r = json.loads((RESULTS / f"gnn_compaction_{name}.json").read_text())
    meta = json.loads((Path(r["data_dir"]) / "preprocessing_metadata.json").read_text())
    g = meta["graph_stats"]
    v, t = r["valid"], r["test"]
    return (f"| {name} | {g['mean_nodes']} | {g['p95_nodes']} | {r['seconds_per_epoch_incl_validation']['median']} | "
            f"{r['train_graphs_per_s_incl_validation']} | {r['peak_rss_mb']:.0f} | {r['best_epoch']} | "
            f"{v['accuracy']:.4f} | {v['roc_auc']:.4f} | {t['accuracy']:.4f} | {t['roc_auc']:.4f} | "
            f"{t['f1_vulnerable']:.4f} |")


def main() -> None:
    names = sys.argv[1:]
    first = json.loads((RESULTS / f"gnn_compaction_{names[0]}.json").read_text())
    lines = ["# AST compaction: what each step costs the GNN (side by side, one run)", "",
             f"Command: `EPOCHS={first['hyperparameters']['epochs']} benchmarks/gnn_compaction.sh`; per variant: "
             f"`{first['command']}` with its own data dir. Machine: {first['machine']['cpu']}, "
             f"{first['machine']['cores']} cores. Accuracy / ROC-AUC / F1 at p = 0.5 of the best checkpoint "
             "(chosen on validation ROC-AUC).", "",
             "| variant | mean nodes | p95 nodes | s/epoch (median, incl. validation) | train graphs/s | peak RSS MB | "
             "best epoch | valid acc | valid AUC | test acc | test AUC | test F1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(n) for n in names]
    (RESULTS / "gnn_compaction.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
