"""Benchmark: merge Devign with both collected sets (Big-Vul subset, ReVeal Chromium) and report what happened.

    python benchmarks/merge_devign.py [--shared ../shared/data] [--work data] [--holdout bigvul=0.3,reveal=0.2]

Runs the CLI (data import codexglue / jsonl, data merge) and writes benchmarks/results/merge_devign.json and
.md: counts in, exact and near duplicates, label conflicts, Devign valid/test overlap found and removed, per-source
contributions, the near-duplicate Jaccard distribution, the LSH's miss probability, the command, machine, commit.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lexical_devign import machine  # noqa: E402

from streamguard.cli import main  # noqa: E402
from streamguard.data.neardup import DEFAULT_THRESHOLD, miss_probability  # noqa: E402
from streamguard.data.rawdir import RawDir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    if main(argv) != 0:
        raise SystemExit(f"failed: streamguard {' '.join(argv)}")
    return round(time.perf_counter() - t0, 1)


def _git() -> dict:
    def run(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def run(shared: Path, work: Path, holdout: str) -> dict:
    raw = work / "raw"
    seconds = {
        "import devign": _timed(["data", "import", "codexglue", "--source", str(shared / "devign"),
                                 "--out", str(raw / "devign")]),
        "import bigvul": _timed(["data", "import", "jsonl", "--name", "bigvul", "--source",
                                 str(shared / "collected/bigvul_subset/all.jsonl"), "--out", str(raw / "bigvul")]),
        "import reveal": _timed(["data", "import", "jsonl", "--name", "reveal", "--source",
                                 str(shared / "collected/reveal_chrome/all.jsonl"), "--out", str(raw / "reveal")]),
    }
    seconds["merge"] = _timed(["data", "merge", "--base", str(raw / "devign"), "--add", str(raw / "bigvul"),
                               "--add", str(raw / "reveal"), "--out", str(raw / "merged"), "--holdout", holdout])
    full = RawDir(raw / "merged").manifest()
    m = {**full["extra"], "counts": full["counts"], "audit": full["audit"]}  # the merge's own fields are in extra
    dropped = [json.loads(x) for x in (raw / "merged/dropped.jsonl").read_text().splitlines()]
    leak = Counter((d["source"], d["reason"], d["match_split"] or "")
                   for d in dropped if d["reason"].endswith("evaluation function"))
    return {"command": " ".join(sys.argv), "machine": machine(), "git": _git(), "seconds": seconds,
            "read": m["read"], "counts": m["counts"], "per_source": m["per_source"], "dropped": m["dropped"],
            "conflicts": m["conflicts"], "near_duplicates": m["near_duplicates"], "groups": m["groups"],
            "leakage_dropped_by_source_reason_split": {" / ".join(k): v for k, v in sorted(leak.items())},
            "lsh_miss_probability": {str(s): miss_probability(s) for s in (0.7, 0.8, 0.85, 0.9)},
            "threshold": DEFAULT_THRESHOLD, "label_shift_flags": m["labels"]["flagged"],
            "audit_cross_split": m["audit"]["cross_split"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--work", type=Path, default=Path("data"))
    ap.add_argument("--holdout", default="bigvul=0.3,reveal=0.2")
    a = ap.parse_args()
    res = run(a.shared, a.work, a.holdout)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "merge_devign.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("seconds", "dropped", "conflicts", "groups")}, indent=1))
