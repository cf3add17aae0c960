"""Preprocessing on the full Devign data: wall time and peak memory, against the floor.

The floor is the bare work no preprocessing can avoid, in one process: a tree-sitter parse of every function
plus fast-tokenizer encoding (with offsets) of the same functions. Full preprocessing runs as the real command
(`streamguard preprocess`, all cores) in a subprocess whose process tree's memory is sampled. Runs alternate
(floor, full, floor, full, ...) so that load from elsewhere on the machine hits both alike; medians are reported.

Usage: python benchmarks/preprocess_devign.py [--raw data/raw/devign] [--repeats 3]
Writes benchmarks/results/preprocess_devign.json and .md.
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
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def floor_seconds(raw: Path, tokenizer_json: Path) -> float:
    code = f"""
import json, time, tree_sitter_c
from tree_sitter import Language, Parser
from tokenizers import Tokenizer
funcs = [json.loads(l)["func"] for s in ("train", "valid", "test") for l in open("{raw}/" + s + ".jsonl")]
parser, tok = Parser(Language(tree_sitter_c.language())), Tokenizer.from_file("{tokenizer_json}")
t = time.perf_counter()
for f in funcs:
    parser.parse(f.encode("utf-8"))
    tok.encode(f, add_special_tokens=False).offsets
print(time.perf_counter() - t)
"""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip())


def full_run(raw: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak summed RSS (GiB) of the process tree of one `streamguard preprocess`."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(ROOT / ".venv/bin/streamguard"), "preprocess", "--raw", str(raw), "--out", f"{tmp}/out", *extra]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = [0]

        def sample() -> None:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    procs = [root, *root.children(recursive=True)]
                    peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()))
                except psutil.Error:
                    pass
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        _, err = proc.communicate()
        sampler.join()
        if proc.returncode:
            raise SystemExit(f"preprocess failed: {err[-500:]}")
        return time.perf_counter() - started, peak[0] / 1024**3


def _markdown(r: dict) -> str:
    m = r["median"]
    return f"""# Preprocessing on full Devign ({r['functions']:,} functions)

`{r['command']}`; machine: {r['machine']['cpus']} cores, {r['machine']['memory_gib']} GiB, {r['machine']['platform']};
load average at the end {', '.join(f'{x:.2f}' for x in r['machine']['load_avg_at_end'])}. Medians of {len(r['runs']['floor_s'])} alternating runs.

| run | wall s | peak memory (process tree) | vs floor |
|---|---|---|---|
| floor: tree-sitter parse + fast-tokenizer encoding, one process | {m['floor_s']} | | 1.00 |
| `streamguard preprocess --tokenizer bpe` (trains the BPE too), 2 workers | {m['bpe_s']} | {m['bpe_peak_gib']} GiB | {r['ratio_full_bpe_to_floor']} |
| `streamguard preprocess --reuse-from` (tokenizer + vocabulary given), 2 workers | {m['reuse_s']} | {m['reuse_peak_gib']} GiB | {r['ratio_full_reuse_to_floor']} |

AST success (full or partial parse): {r['ast_success_rate']:.1%}; tiers {r['ast_tiers']}.
Graphs: mean {r['graph_stats']['mean_nodes']} nodes, p95 {r['graph_stats']['p95_nodes']}, max {r['graph_stats']['max_nodes']};
recommended GNN batch for 4 GB: {r['graph_stats']['recommended_batch_size']}.
Tokens before trimming: mean {r['tokens']['before_trimming']['mean']}, p95 {r['tokens']['before_trimming']['p95']},
max {r['tokens']['before_trimming']['max']}; after: mean {r['tokens']['after_trimming']['mean']}, max {r['tokens']['after_trimming']['max']}.
Trimming: {r['trimming']}. Raw runs in `preprocess_devign.json`.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, default=ROOT / "data/raw/devign")
    ap.add_argument("--processed", type=Path, default=ROOT / "data/processed/devign", help="for its tokenizer")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tok = args.processed / "tokenizer" / "tokenizer.json"
    runs: dict[str, list] = {"floor_s": [], "bpe_s": [], "bpe_peak_gib": [], "reuse_s": [], "reuse_peak_gib": []}
    for i in range(args.repeats):
        runs["floor_s"].append(floor_seconds(args.raw, tok))
        wall, peak = full_run(args.raw, ["--tokenizer", "bpe"])
        runs["bpe_s"].append(wall)
        runs["bpe_peak_gib"].append(peak)
        wall, peak = full_run(args.raw, ["--reuse-from", str(args.processed)])
        runs["reuse_s"].append(wall)
        runs["reuse_peak_gib"].append(peak)
        print(f"repeat {i + 1}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in runs.items()), flush=True)
    meta = json.loads((args.processed / "preprocessing_metadata.json").read_text())
    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    result = {
        "command": "python benchmarks/preprocess_devign.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "functions": sum(c["read"] for c in meta["counts"].values()),
        "runs": runs, "median": med,
        "ratio_full_bpe_to_floor": round(med["bpe_s"] / med["floor_s"], 2),
        "ratio_full_reuse_to_floor": round(med["reuse_s"] / med["floor_s"], 2),
        "ast_success_rate": meta["ast"]["success_rate"], "ast_tiers": meta["ast"]["tier_rates"],
        "graph_stats": meta["graph_stats"], "tokens": meta["tokens"], "trimming": meta["trimming"]["by_strategy"],
    }
    out = ROOT / "benchmarks/results/preprocess_devign.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(_markdown(result))
    print(json.dumps({k: result[k] for k in ("median", "ratio_full_bpe_to_floor", "ratio_full_reuse_to_floor",
                                              "ast_success_rate")}, indent=2))


if __name__ == "__main__":
    main()
