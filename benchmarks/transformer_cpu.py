"""CPU benchmark of the tiny transformer: training throughput at 512 tokens, then a time-boxed Devign run.

1. Throughput: fwd + bwd + AdamW step (with clipping) of the tiny model (configs/transformer-tiny.yaml, vocabulary
   of the data's tokenizer) on batches of token ids, every sequence exactly 512 tokens long.
2. Quality: ``streamguard train transformer`` on the full data with the epoch count chosen from the measured
   throughput so that training fits the time budget (the linear decay needs the step count up front, so the
   budget sets the epochs rather than cutting a run short). Valid/test accuracy and F1 from the predictions.

    python benchmarks/transformer_cpu.py --data data/processed/devign --out runs/bench-transformer-tiny \
        --budget-min 60 --json benchmarks/results/transformer_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # busy-waiting OpenMP threads thrash on shared cores

import torch

from streamguard.config import TransformerConfig, load_config
from streamguard.data.records import read_jsonl
from streamguard.train import transformer as kind

TOKENS = 512


def throughput(data: Path, cfg: TransformerConfig, batch: int, steps: int, warmup: int = 2) -> float:
    """Training samples/s of the tiny model on batch x TOKENS token ids (speed does not depend on which)."""
    model, tokenizer = kind.build_model(cfg, data)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tokenizer), (batch, TOKENS), generator=gen)  # 0-4: the special tokens
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(ids, mask), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def scores(path: Path) -> dict[str, float]:
    rows = read_jsonl(path)
    y = torch.tensor([r["label"] for r in rows])
    p = torch.tensor([int(r["prob_vulnerable"] >= 0.5) for r in rows])
    tp, fp, fn = int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum()), int(((p == 0) & (y == 1)).sum())
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return {"n": len(rows), "accuracy": round(float((p == y).float().mean()), 4), "f1_vulnerable": round(f1, 4),
            "predicted_vulnerable": round(float(p.float().mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/processed/devign"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench-transformer-tiny"))
    ap.add_argument("--config", type=Path, default=Path("configs/transformer-tiny.yaml"))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--budget-min", type=float, default=60.0, help="training time budget of the Devign run")
    ap.add_argument("--steps", type=int, default=10, help="timed steps of the throughput measurement")
    ap.add_argument("--throughput-only", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_config(TransformerConfig, args.config, {"tracking_uri": "off"}, args.set)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    tput = throughput(args.data, cfg, cfg.batch_size, args.steps)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0],
                          "torch": torch.__version__},
              "model": {k: getattr(cfg, k) for k in ("tiny_layers", "tiny_hidden", "tiny_heads",
                                                      "tiny_intermediate", "pooling", "batch_size", "lr")},
              "throughput_samples_per_s_at_512": round(tput, 2)}
    print(json.dumps(result), flush=True)
    if not args.throughput_only:
        result["devign"] = devign_run(args, cfg, tput)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


def devign_run(args: argparse.Namespace, cfg: TransformerConfig, tput: float) -> dict:
    n_train, n_valid = (len((args.data / f"{s}.jsonl").read_bytes().splitlines()) for s in ("train", "valid"))
    # Validation costs about a third of a training sample (forward only); keep 10% of the budget spare.
    epoch_s = (n_train + n_valid / 3) / tput
    cfg.epochs = max(1, int(0.9 * args.budget_min * 60 / epoch_s))
    print(f"estimated {epoch_s / 60:.1f} min per epoch -> {cfg.epochs} epochs", flush=True)
    start = time.time()
    run = kind.train(args.data, args.out, cfg)
    summary = json.loads((run / "train_summary.json").read_text())
    return {"epochs_planned": cfg.epochs, "estimated_epoch_min": round(epoch_s / 60, 1),
            "train_wall_min": round(summary["wall_s"] / 60, 1), "total_wall_min": round((time.time() - start) / 60, 1),
            "epochs_run": summary["epochs_run"], "best_val_f1": summary["best_score"],
            "valid": scores(run / "predictions" / "valid.jsonl"), "test": scores(run / "predictions" / "test.jsonl"),
            "run_dir": str(run)}


if __name__ == "__main__":
    main()
