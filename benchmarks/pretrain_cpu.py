"""MLM pre-training throughput (tokens/s through forward + backward + AdamW) of candidate encoder shapes.

Usage: python benchmarks/pretrain_cpu.py --devign DIR [--steps 6] [--batch 16] [--max-length 512]
Tokens are the real (non-padding) tokens of Devign train functions, batched by similar length as pre-training
does; a BPE of 16k is trained on a 3,000-function sample first. Prints one JSON line per shape.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import torch

from streamguard.features.tokenize import SafeTokenizer
from streamguard.pretrain.model import EncoderShape, MaskedLM

SHAPES = {"h128-l2": EncoderShape(128, 2, 2, 512), "h128-l4": EncoderShape(128, 4, 2, 512),
          "h192-l3": EncoderShape(192, 3, 3, 768), "h256-l4": EncoderShape(256, 4, 4, 1024)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devign", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    from transformers import DataCollatorForLanguageModeling
    rows = [json.loads(line) for line in Path(args.devign, "train.jsonl").open()]
    texts = [r["func"] for r in random.Random(0).sample(rows, 3000)]
    with tempfile.TemporaryDirectory() as tmp:
        tok = SafeTokenizer.train_bpe(texts, 16000, Path(tmp)).hf
    enc = [tok(t, truncation=True, max_length=args.max_length)["input_ids"] for t in texts]
    enc.sort(key=len)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    for name in args.shapes.split(","):
        torch.manual_seed(0)
        model = MaskedLM.fresh(SHAPES[name], tok).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        seen, spent = 0, 0.0
        for step in range(args.steps + 1):
            start = random.Random(step).randrange(0, len(enc) - args.batch)
            batch = collator([{"input_ids": e} for e in enc[start:start + args.batch]])
            t0 = time.perf_counter()
            loss = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step:  # the first step warms up allocators and is not counted
                spent += time.perf_counter() - t0
                seen += int(batch["attention_mask"].sum())
        print(json.dumps({"shape": name, **SHAPES[name].__dict__, "params": model.parameter_count(),
                          "tokens_per_s": round(seen / spent), "steps": args.steps, "batch": args.batch,
                          "threads": torch.get_num_threads(), "loadavg": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
