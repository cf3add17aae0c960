"""Cut the bundled sample (data/sample) from the full Devign data: a stratified subset per split.

Stratified on (project, label) with a fixed seed, so the sample keeps the full data's balance.
Usage: python scripts/make_sample.py ../shared/data/devign data/sample
"""
from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SIZES = {"train": 1600, "valid": 200, "test": 200}


def stratified(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["project"], row["target"])].append(row)
    picked: list[dict] = []
    for key in sorted(groups):
        members = groups[key]
        take = round(n * len(members) / len(rows))
        picked += rng.sample(members, min(take, len(members)))
    return picked


def main(src: Path, dst: Path, seed: int = 20261126) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split, n in SIZES.items():
        lines = (src / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines]
        # keep the original order, so the sample reads like the source
        keep = {id(r) for r in stratified(rows, n, random.Random(seed))}
        with open(dst / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                if id(row) in keep:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
