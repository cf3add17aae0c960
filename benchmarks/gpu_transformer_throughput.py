"""Training throughput (samples/s) of a base-size transformer classifier: fp32 vs 16-mixed (autocast + GradScaler).

The model is the project's classifier (attention pooling, head 768 -> 384 -> 2) over a RoBERTa encoder built
from config (12 layers, 768 hidden, 12 heads, CodeBERT's vocabulary and 514 positions): no download. Inputs are
synthetic token ids, batch 16 x 512, every position real (no padding), so the figure is the full-length cost.
Each precision gets a fresh model (same seed), warm-up steps, then timed steps between ``torch.cuda.synchronize``.
Prints one JSON line and writes it to ``$OUT/gpu_transformer.json`` when OUT is set.

    python benchmarks/gpu_transformer_throughput.py                  # on a CUDA machine (about a minute)
    python benchmarks/gpu_transformer_throughput.py --tiny --steps 2 # a check of the script on CPU
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runs from a bare checkout too
from streamguard.models.transformer import TransformerClassifier

BASE = {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "max_position_embeddings": 514}
TINY = {"vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128, "max_position_embeddings": 514}


def build(sizes: dict[str, int], device: torch.device) -> TransformerClassifier:
    from transformers import AutoModel, RobertaConfig
    torch.manual_seed(0)
    encoder = AutoModel.from_config(RobertaConfig(**sizes, pad_token_id=1, type_vocab_size=1))
    encoder.pooler = None  # unused by the classifier, as in streamguard.train.transformer
    return TransformerClassifier(encoder, sizes["hidden_size"]).to(device).train()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(sizes: dict[str, int], mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Samples/s of fwd + bwd + clipped AdamW steps in one precision mode."""
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the previous mode's model is gone: start each from the same free memory
    model = build(sizes, device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    half = mode == "16-mixed"
    scaler = torch.amp.GradScaler(device.type, enabled=half)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, sizes["vocab_size"], (args.batch, args.seq), generator=gen).to(device)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch,), generator=gen).to(device)

    def step() -> float:
        ctx = torch.autocast(device.type, dtype=torch.float16) if half else nullcontext()
        with ctx:
            loss = torch.nn.functional.cross_entropy(model(ids, mask).float(), labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    elapsed = time.perf_counter() - start
    out = {"samples_per_s": round(args.batch * args.steps / elapsed, 2), "step_ms": round(1000 * elapsed / args.steps, 1),
           "final_loss": round(float(loss), 4)}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny model: to check the script on CPU")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--modes", default="fp32,16-mixed")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        sys.exit("no CUDA device: the base-size measurement is for a GPU (use --tiny to check the script on CPU)")
    sizes = TINY if args.tiny else BASE
    results = {mode: measure(sizes, mode, args, device) for mode in args.modes.split(",")}
    record = {"benchmark": "gpu_transformer_throughput", "device": torch.cuda.get_device_name(device)
              if device.type == "cuda" else f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
              "torch": torch.__version__, "cuda": torch.version.cuda, "model": sizes,
              "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "batch": args.batch, "seq": args.seq,
              "warmup_steps": args.warmup, "timed_steps": args.steps, "results": results}
    if {"fp32", "16-mixed"} <= results.keys():
        record["speedup_16_mixed"] = round(results["16-mixed"]["samples_per_s"] / results["fp32"]["samples_per_s"], 2)
    line = json.dumps(record)
    print(line)
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "gpu_transformer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")


if __name__ == "__main__":
    main()
