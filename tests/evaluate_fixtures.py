"""Run directories and processed/raw datasets for the evaluate tests, built from real Devign labels,
projects and functions (tests/fixtures), with probabilities drawn from a seeded RNG that correlates with
the labels."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


def devign_labels(split: str, n: int | None = None) -> list[dict]:
    rows = [json.loads(ln) for ln in (FIXTURES / "devign_labels.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == split]
    return rows[:n] if n else rows


def peer_functions() -> list[dict]:
    return [json.loads(ln) for ln in (FIXTURES / "peers_functions.jsonl").read_text().splitlines()]


def make_run(root: Path, name: str, model: str = "lexical", seed: int = 0, skill: float = 1.0,
             rows: dict[str, list[dict]] | None = None, n: int = 600, curves: bool = False) -> Path:
    """A run dir whose probabilities separate the classes more as ``skill`` grows (0 = chance)."""
    run = root / name
    (run / "predictions").mkdir(parents=True)
    (run / "exp_config.json").write_text(json.dumps({"model": model, "seed": seed}))
    rng = np.random.default_rng([zlib.crc32(name.encode()), seed])
    for split in ("valid", "test"):
        items = (rows or {}).get(split) or devign_labels(split, n)
        with open(run / "predictions" / f"{split}.jsonl", "w") as fh:
            for r in items:
                logit = skill * (2 * r["target"] - 1) + rng.normal(0, 1.5)
                p = float(1 / (1 + np.exp(-logit)))
                fh.write(json.dumps({"id": f"CODEXGLUE-{split.upper()}-{r['row']}", "label": r["target"],
                                     "prob_vulnerable": p, "logits": [0.0, logit],
                                     "project": r["project"]}) + "\n")
    if curves:
        lines = ["epoch,train_loss,val_loss,val_accuracy,val_f1_vulnerable,val_roc_auc,lr"]
        lines += [f"{e},{1 / (e + 1):.3f},{0.7 - 0.01 * e:.3f},{0.55 + 0.01 * e:.3f},0.5,0.6,0.001"
                  for e in range(5)]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run


def make_processed(root: Path, funcs: list[dict]) -> Path:
    """A processed dir (only ids and metadata rows) pointing at a raw dir holding ``funcs``."""
    raw, processed = root / "raw", root / "processed"
    raw.mkdir(parents=True)
    processed.mkdir(parents=True)
    (processed / "preprocessing_metadata.json").write_text(json.dumps({"raw_dir": str(raw)}))
    for split in ("valid", "test"):
        mine = [f for f in funcs if f["split"] == split]
        with open(raw / f"{split}.jsonl", "w") as rfh:
            for row, f in enumerate(mine):
                rfh.write(json.dumps({"project": f["project"], "commit_id": "", "target": f["target"],
                                      "func": f["func"], "idx": None}) + "\n")
                # processed order differs from raw order on purpose: ids map to rows through metadata
                f["row"] = row
        with open(processed / f"{split}.jsonl", "w") as pfh:
            for f in reversed(mine):
                pfh.write(json.dumps({"id": f"CODEXGLUE-{split.upper()}-{f['row']}", "label": f["target"],
                                      "metadata": {"row": f["row"], "project": f["project"]}}) + "\n")
    return processed


def run_rows(funcs: list[dict]) -> dict[str, list[dict]]:
    """Prediction rows for exactly the functions of a processed fixture (after make_processed)."""
    return {split: [f for f in funcs if f["split"] == split] for split in ("valid", "test")}
