"""Benchmark: training throughput of the specified GCN over one full epoch of the Devign train split.

Times forward + backward + Adam steps over the cached graphs (batch 32, the specified layer sizes), the
same work as a training epoch without validation and without Lightning's bookkeeping. Reports graphs/s of
wall time and per CPU-second, with the load average, and the cost of the graph cache. ``--weights CKPT
--denormals keep`` shows what trained weights cost when denormal floats are not flushed.
Writes benchmarks/results/<name>.json.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/gnn_speed.py --data data/processed/devign --name gnn_speed
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch

from streamguard.config import GNNConfig, load_config
from streamguard.features.graphs import GraphDataset, load_split
from streamguard.features.processed import ProcessedDir
from streamguard.train.gnn import build_model, graph_options

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--name", default="gnn_speed")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-batches", type=int, default=0, help="0 = the whole epoch")
    ap.add_argument("--weights", type=Path, default=None,
                    help="start from a training checkpoint's weights (e.g. runs/devign/gnn/checkpoints/epoch-004.ckpt)")
    ap.add_argument("--denormals", choices=("flush", "keep"), default="flush",
                    help="flush (as every training process does) or keep denormal floats")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    # before the first parallel op: torch's threads inherit the floating-point mode (runtime.prepare_torch_cpu)
    torch.set_flush_denormal(args.denormals == "flush")
    torch.set_num_threads(args.threads)
    cfg = load_config(GNNConfig, ROOT / "configs" / "gnn.yaml", extra=args.set)
    t0 = time.time()
    data = load_split(args.data, "train", graph_options(ProcessedDir(args.data), cfg))
    load_s = time.time() - t0
    ds = GraphDataset(data)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    if args.weights:
        state = torch.load(args.weights, weights_only=True, map_location="cpu")["state_dict"]
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = torch.randperm(len(ds)).tolist()
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    if args.max_batches:
        batches = batches[: args.max_batches]
    load0, cpu0, wall0 = os.getloadavg()[0], time.process_time(), time.time()
    graphs = 0
    for items in batches:
        batch = ds.collate(items)
        loss = torch.nn.functional.cross_entropy(model(**batch["inputs"]), batch["label"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        graphs += len(items)
    wall, cpu = time.time() - wall0, time.process_time() - cpu0
    result = {"graphs": graphs, "mean_nodes": round(float(ds.num_nodes().float().mean()), 1),
              "batch_size": cfg.batch_size, "threads": args.threads, "wall_s": round(wall, 1),
              "graphs_per_s": round(graphs / wall, 1), "graphs_per_cpu_s": round(graphs / cpu, 1),
              "projected_idle_epoch_s": round(len(ds) / (graphs / cpu) / args.threads, 1),
              "load_avg_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
              "cache_load_s": round(load_s, 2), "peak_rss_mb": round(resource.getrusage(
                  resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "overrides": args.set, "cpu_count": os.cpu_count(),
              "weights": str(args.weights) if args.weights else None, "denormals": args.denormals,
              "command": "OMP_WAIT_POLICY=PASSIVE python benchmarks/gnn_speed.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v and k != "set")}
    dest = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    dest.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
