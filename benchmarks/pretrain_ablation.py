"""Ablation: the tiny transformer from scratch vs initialised from the pre-trained encoder, same fine-tuning.

Usage:
  python benchmarks/pretrain_ablation.py subset --data PROCESSED --out SUBSET --train 2000 --valid 1000
  python benchmarks/pretrain_ablation.py run --data SUBSET --arm scratch|pretrained --encoder DIR --seed N
      --out RUNS [--max-length 256] [--epochs 2] [--threads 1]
  streamguard evaluate --runs scratch='RUNS/scratch-seed*' pretrained='RUNS/pretrained-seed*' --out REPORT
      --primary pretrained

Both arms use configs/devign/transformer.yaml (2 layers, hidden 128, lr 5e-4, best epoch on valid ROC-AUC)
with the same tokenizer (the encoder's: the data is preprocessed with it), the same training subset, epochs,
token budget and seeds; they differ only in the initial encoder weights. ``subset`` keeps a seeded sample of
train and valid and the whole official test split.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from streamguard.config import TransformerConfig, load_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "devign" / "transformer.yaml"


def make_subset(data: Path, out: Path, sizes: dict[str, int | None], seed: int = 0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("preprocessing_metadata.json", "node_vocab.json"):
        shutil.copy(data / name, out / name)
    shutil.copytree(data / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    for split, n in sizes.items():
        lines = (data / f"{split}.jsonl").read_text().splitlines()
        if n is not None and n < len(lines):
            keep = sorted(random.Random(seed).sample(range(len(lines)), n))
            lines = [lines[i] for i in keep]
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (out / "SUBSET.json").write_text(json.dumps({"from": str(data.resolve()), "sizes": sizes, "seed": seed}) + "\n")


def run_arm(data: Path, out: Path, arm: str, encoder: Path, seed: int, max_length: int, epochs: int,
            threads: int, lr: float | None = None, tag: str = "") -> Path:
    from streamguard.runtime import prepare_torch_cpu
    prepare_torch_cpu()
    from streamguard.train import transformer as kind
    model = "tiny" if arm == "scratch" else str(encoder)
    cfg = load_config(TransformerConfig, CONFIG, {"model": model, "seed": seed, "max_length": max_length,
                                                  "epochs": epochs, "threads": threads, "tracking_uri": "off",
                                                  "lr": lr})
    run = out / f"{arm}{tag}-seed{seed}"
    if (run / "predictions" / "test.jsonl").is_file():
        return run
    return kind.train(data, run, cfg)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("subset")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--train", type=int, default=2000)
    s.add_argument("--valid", type=int, default=1000)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--arm", choices=["scratch", "pretrained"], required=True)
    r.add_argument("--encoder", type=Path, required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--max-length", type=int, default=256)
    r.add_argument("--epochs", type=int, default=2)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--lr", type=float, default=None, help="default: the config's (5e-4)")
    r.add_argument("--tag", default="", help="run name suffix, e.g. -lr2e-4")
    args = ap.parse_args()
    if args.cmd == "subset":
        make_subset(args.data, args.out, {"train": args.train, "valid": args.valid, "test": None})
    else:
        run_arm(args.data, args.out, args.arm, args.encoder, args.seed, args.max_length, args.epochs, args.threads,
                args.lr, args.tag)


if __name__ == "__main__":
    main()
