"""What the taint-flow graph costs preprocessing on full Devign: `streamguard preprocess --reuse-from` with and
without `--set taint_graph=true`, in alternating runs (so load from elsewhere on the machine hits both alike);
medians are reported, with the taint-flow graph's status counts and sizes from the last taint run.

Usage: python benchmarks/taintflow_preprocess.py --raw RAW --processed PROCESSED [--repeats 2]
(RAW: Devign imported with `streamguard data import`; PROCESSED: a dataset of it, for its tokenizer and
vocabulary.) Writes benchmarks/results/taintflow_preprocess.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(raw: Path, processed: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "streamguard.cli", "preprocess", "--raw", str(raw), "--out", str(out),
           "--reuse-from", str(processed), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"preprocess failed: {done.stderr[-500:]}")
    return time.perf_counter() - started


def taint_summary(out: Path) -> dict:
    status, edges, flagged, nodes, records = Counter(), Counter(), 0, 0, 0
    for split in ("train", "valid", "test"):
        for line in (out / f"{split}.jsonl").open():
            rec = json.loads(line)
            records += 1
            nodes += len(rec["ast_nodes"])
            taint = rec["taint"]
            status[taint["status"]] += 1
            for kind, pairs in taint.get("edges", {}).items():
                edges[kind] += len(pairs)
            flagged += len(taint.get("flags", []))
    return {"records": records, "status": dict(status.most_common()),
            "ok_rate": round(status["ok"] / max(records, 1), 4),
            "mean_edges_per_record": {k: round(v / records, 1) for k, v in edges.items()},
            "mean_ast_nodes": round(nodes / records, 1), "mean_flagged_nodes": round(flagged / records, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"ast_s": [], "taint_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            runs["ast_s"].append(run(args.raw, args.processed, Path(tmp) / f"ast{i}", []))
            runs["taint_s"].append(run(args.raw, args.processed, Path(tmp) / f"taint{i}",
                                       ["--set", "taint_graph=true"]))
            print(f"repeat {i + 1}: ast {runs['ast_s'][-1]:.1f} s, taint {runs['taint_s'][-1]:.1f} s", flush=True)
        summary = taint_summary(Path(tmp) / f"taint{args.repeats - 1}")
    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    result = {"command": "nice -n 10 python benchmarks/taintflow_preprocess.py " + " ".join(sys.argv[1:]),
              "commit": commit.strip(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version(), "load_avg_at_end": os.getloadavg(),
                          "note": "shared with other engineers' jobs"},
              "runs": runs, "median": med, "ratio_taint_to_ast": round(med["taint_s"] / med["ast_s"], 2),
              "taint": summary}
    out = ROOT / "benchmarks/results/taintflow_preprocess.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
