"""The shipped default model on a transfer job's held-out rows, written as `streamguard predict` writes them, so
that benchmarks/transfer_ablation_summary.py and evaluate.transfer compare it with the job's models on the same
items (the default is a bundle, which `predict --run` does not take).

    python benchmarks/default_model_heldout.py WORK/processed-taint/heldout-merged OUT.jsonl
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import streamguard
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields


def main(data: Path, out: Path) -> None:
    recs = ProcessedDir(data).read_split("test", keep=("id", "label", "metadata"))
    funcs = raw_fields(data, "test", recs, ("func",))
    with streamguard.load(None) as det:
        scores = det.score([funcs[r["id"]]["func"] for r in recs])
        with out.open("w") as f:
            for r, s in zip(recs, scores):
                f.write(json.dumps({"id": r["id"], "label": r["label"], "prob_vulnerable": s.raw_prob,
                                    "threshold": det.threshold}) + "\n")
    print(f"{len(recs)} held-out functions scored -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
