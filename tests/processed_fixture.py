"""A small processed dataset (docs/contracts.md schema) of real Devign functions from data/sample.

Kept minimal on purpose: lexical and fusion tests need ids, labels, code, the raw rows and the dataset's
identity files, not real token ids or graphs. Functions whose text occurs in more than one split are left
out so that "no valid/test text reached a fit" can be checked on text.
"""
from __future__ import annotations

import json
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
SIZES = {"train": 120, "valid": 40, "test": 40}


def _raw(split: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def _record(split: str, row: int, raw: dict, trim: int | None) -> dict:
    code = raw["func"] if trim is None else raw["func"][:trim]
    return {"id": f"CODEXGLUE-{split.upper()}-{row}", "code": code, "language": "c",
            "tokens": [0, 5, 2], "token_offsets": [[0, 0], [0, 1], [0, 0]], "ast_nodes": [1, 2],
            "edge_index": [[0, 1]], "label": raw["target"],
            "metadata": {"source": "codexglue", "split": split, "orig_id": str(raw.get("idx")), "row": row,
                         "project": raw["project"], "ast_success": True, "ast_strategy": "full",
                         "num_tokens": 3, "num_ast_nodes": 2, "trimmed": trim is not None}}


def make_processed(root: Path, name: str = "proc", tokenizer_sha: str = "a" * 64,
                   node_labels: list[str] | None = None, trim: int | None = 600,
                   sizes: dict[str, int] | None = None) -> Path:
    """Write raw/ and <name>/ under ``root``; return the processed dir. ``trim`` cuts ``code`` to a prefix
    (like the 512-token trimmer) so tests can tell the raw function from the processed code."""
    sizes = sizes or SIZES
    raws = {s: _raw(s)[: sizes[s] * 2] for s in sizes}
    seen: dict[str, set[str]] = {s: {r["func"] for r in rows} for s, rows in raws.items()}
    raw_dir, out = root / "raw", root / name
    raw_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in raws.items():
        others = set().union(*(v for k, v in seen.items() if k != split))
        recs, raw_lines = [], []
        for row, raw in enumerate(rows):
            raw_lines.append(json.dumps(raw))
            if raw["func"] not in others and len(recs) < sizes[split]:
                recs.append(_record(split, row, raw, trim))
        (raw_dir / f"{split}.jsonl").write_text("\n".join(raw_lines) + "\n")
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    labels = node_labels or ["<unk>"] + [f"node{i}" for i in range(9)]
    (out / "node_vocab.json").write_text(json.dumps({"labels": labels, "unk_id": 0}))
    meta = {"tokenizer": {"name": "test-bpe", "sha256": tokenizer_sha, "vocab_size": 100, "pad_id": 1},
            "raw_dir": str(raw_dir), "counts": {s: sizes[s] for s in sizes}}
    (out / "preprocessing_metadata.json").write_text(json.dumps(meta))
    return out


def texts_by_split(data_dir: Path) -> dict[str, dict[str, str]]:
    """split -> {raw function text: id} of a dataset made by make_processed."""
    meta = json.loads((data_dir / "preprocessing_metadata.json").read_text())
    out = {}
    for split in SIZES:
        raw = (Path(meta["raw_dir"]) / f"{split}.jsonl").read_text().splitlines()
        recs = [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text().splitlines()]
        out[split] = {json.loads(raw[r["metadata"]["row"]])["func"]: r["id"] for r in recs}
    return out
