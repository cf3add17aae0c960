"""Length-grouped batches vs shuffled ones for the job's tiny transformer, side by side on the real train split.

Two figures per mode: padded tokens over one whole epoch (exact: what the batches are padded to), and the wall
time of ``--steps`` training steps (fwd + bwd + clipped AdamW) over the epoch's first batches, the modes taking
turns ``--repeats`` times; medians reported.

    python benchmarks/length_grouping.py --data data/processed/devign --config configs/devign/transformer.yaml \
        --json benchmarks/results/length_grouping.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import torch

from streamguard.config import TransformerConfig, load_config
from streamguard.train import engine
from streamguard.train import transformer as kind

MODES = {"shuffled": False, "grouped": True}


def padded_tokens(loader: torch.utils.data.DataLoader) -> tuple[int, int]:
    """(padded tokens, real tokens) of one epoch of ``loader``."""
    padded = real = 0
    for batch in loader:
        padded += batch["inputs"]["input_ids"].numel()
        real += int(batch["inputs"]["attention_mask"].sum())
    return padded, real


def timed_steps(data: Path, cfg: TransformerConfig, loader: torch.utils.data.DataLoader, steps: int) -> float:
    """Seconds for ``steps`` training steps on the loader's first batches (fresh model, 2 untimed first)."""
    model, _ = kind.build_model(cfg, data)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = iter(loader)
    start = 0.0
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        batch = next(batches)
        loss = torch.nn.functional.cross_entropy(model(**batch["inputs"]), batch["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/processed/devign"))
    ap.add_argument("--config", type=Path, default=Path("configs/devign/transformer.yaml"))
    ap.add_argument("--steps", type=int, default=100, help="timed training steps per mode and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_config(TransformerConfig, args.config, {"model": "tiny", "tracking_uri": "off"}, [])
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    pad = int(json.loads((args.data / "preprocessing_metadata.json").read_text())["tokenizer"]["pad_id"])
    train = kind.TokenDataset(args.data / "train.jsonl", pad, cfg.max_length)
    loaders = {m: engine._loader(train, cfg.batch_size, True, dataclasses.replace(cfg, group_by_length=g))
               for m, g in MODES.items()}
    result: dict = {"command": "python benchmarks/length_grouping.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "dirty": bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "load_avg_1m_start": os.getloadavg()[0],
                    "torch": torch.__version__},
        "train_functions": len(train), "batch_size": cfg.batch_size, "steps": args.steps, "modes": {}}
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(args.repeats):  # round robin: a load change hits both modes alike
        for mode, loader in loaders.items():
            seconds[mode].append(timed_steps(args.data, cfg, loader, args.steps))
            print(f"{mode}: {args.steps} steps in {seconds[mode][-1]:.1f} s", flush=True)
    for mode, loader in loaders.items():
        padded, real = padded_tokens(loader)
        median = statistics.median(seconds[mode])
        result["modes"][mode] = {"padded_tokens_per_epoch": padded, "real_tokens_per_epoch": real,
                                 "padding_share": round(1 - real / padded, 4), "seconds": seconds[mode],
                                 "median_steps_per_s": round(args.steps / median, 2)}
    result["padded_tokens_ratio"] = round(result["modes"]["shuffled"]["padded_tokens_per_epoch"]
                                          / result["modes"]["grouped"]["padded_tokens_per_epoch"], 2)
    result["speedup_median"] = round(result["modes"]["grouped"]["median_steps_per_s"]
                                     / result["modes"]["shuffled"]["median_steps_per_s"], 2)
    result["machine"]["load_avg_1m_end"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
