"""Compare the predictions of two trees of run directories, run by run (a refactoring check: the same
predictions before and after). Usage: python scripts/compare_predictions.py OLD_RUNS NEW_RUNS [--tol 1e-6]"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(path: Path) -> dict[str, float]:
    return {r["id"]: float(r["prob_vulnerable"]) for r in map(json.loads, path.read_text().splitlines())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    worst, lines = 0.0, []
    for old in sorted(args.old.glob("*/predictions/*.jsonl")):
        rel = old.relative_to(args.old)
        if not (args.new / rel).is_file():
            lines.append(f"| {rel} | - | missing in {args.new} | - |")
            worst = float("inf")
            continue
        a, b = rows(old), rows(args.new / rel)
        if a.keys() != b.keys():
            lines.append(f"| {rel} | {len(a)} | ids differ | - |")
            worst = float("inf")
            continue
        diff = max(abs(a[k] - b[k]) for k in a)
        worst = max(worst, diff)
        lines.append(f"| {rel} | {len(a)} | {diff:.2e} | {'same' if diff <= args.tol else 'DIFFERENT'} |")
    print("| predictions | rows | max abs diff of prob_vulnerable | verdict |\n|---|---|---|---|")
    print("\n".join(lines))
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    raise SystemExit(main())
