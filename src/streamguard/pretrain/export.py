"""The pre-trained encoder as a Hugging Face folder: fp16 safetensors, tokenizer, MLM head, model card, sha256.

``AutoModel.from_pretrained(folder)`` gives the encoder in float32 (the config says so; the weights are stored
in fp16 to halve the size), so ``train transformer --model FOLDER`` fine-tunes it like any hub model, and
``preprocess --tokenizer FOLDER`` encodes the data with its tokenizer.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from streamguard.atomic import atomic_open
from streamguard.pretrain.model import MaskedLM
from streamguard.provenance import sha256_file

ENCODER_DIR = "encoder"
MLM_HEAD = "mlm_head.safetensors"
CURVE = "loss_curve.csv"
CURVE_FIELDS = ["epoch", "step", "tokens_seen", "train_loss", "val_loss", "lr"]


class LossCurve(pl.Callback):
    """One row per validation: step, tokens seen, train and held-out MLM loss (a resumed run keeps its rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step,
               "tokens_seen": int(getattr(pl_module, "tokens_seen", 0)),
               **{k: round(float(m[k]), 5) if k in m else "" for k in ("train_loss", "val_loss", "lr")}}
        rows = [r for r in read_curve(self.path) if int(r["epoch"]) < row["epoch"]] + [row]
        with atomic_open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CURVE_FIELDS)
            writer.writeheader()
            writer.writerows(rows)


def read_curve(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def export_encoder(model: MaskedLM, tokenizer: Any, run: Path, cfg: Any, manifest: dict[str, Any],
                   summary: dict[str, Any]) -> Path:
    from safetensors.torch import save_file
    folder = run / ENCODER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    encoder = model.encoder
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in encoder.state_dict().items()}
    encoder.save_pretrained(str(folder), state_dict=half)
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "float32"  # stored in fp16, trained and fine-tuned in fp32 (CPU has no fast fp16)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer.save_pretrained(str(folder))
    head = {k: v.detach().to(torch.float16).contiguous() for k, v in model.mlm.lm_head.state_dict().items()
            if k != "decoder.weight"}  # the decoder is tied to the input embeddings
    save_file(head, str(folder / MLM_HEAD))
    curve = read_curve(run / CURVE)
    (folder / "pretrain_summary.json").write_text(json.dumps(
        {"summary": summary, "corpus_manifest": manifest, "loss_curve": curve}, indent=2, default=str) + "\n")
    write_card(folder, cfg)
    return folder


def write_card(folder: Path, cfg: Any) -> None:
    """The model card from pretrain_summary.json, then SHA256SUMS over every file of the folder."""
    record = json.loads((folder / "pretrain_summary.json").read_text())
    (folder / "README.md").write_text(model_card(cfg, record["corpus_manifest"], record["summary"],
                                                 record["loss_curve"]))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    (folder / "SHA256SUMS").write_text("".join(f"{sha256_file(p)}  {p.name}\n" for p in files))


def load_mlm(folder: Path) -> MaskedLM:
    """Encoder + MLM head of an export, for the held-out MLM loss of a shipped encoder."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, RobertaForMaskedLM
    mlm = RobertaForMaskedLM(AutoConfig.from_pretrained(str(folder)))
    enc = load_file(str(folder / "model.safetensors"))
    state = {f"roberta.{k}": v.float() for k, v in enc.items()}
    state.update({f"lm_head.{k}": v.float() for k, v in load_file(str(folder / MLM_HEAD)).items()})
    missing, unexpected = mlm.load_state_dict(state, strict=False)
    mlm.tie_weights()
    return MaskedLM(mlm.eval())


def model_card(cfg: Any, manifest: dict[str, Any], summary: dict[str, Any], curve: list[dict[str, str]]) -> str:
    c = manifest.get("counts", {})
    p = summary.get("params", {})
    lines = [
        "# StreamGuard C encoder (RoBERTa, masked-language-model pre-trained)", "",
        "Pre-trained by `streamguard pretrain` on C functions extracted by `streamguard corpus` (docs/pretrain.md).",
        "", "## Shape", "",
        f"- hidden {cfg.hidden}, {cfg.layers} layers, {cfg.heads} heads, intermediate {cfg.intermediate}, "
        f"{cfg.max_length} positions, byte-level BPE of {cfg.vocab_size} (trained on the corpus + Devign train)",
        f"- parameters: {p.get('encoder', '?'):,} ({p.get('embeddings', '?'):,} in embeddings); weights stored "
        "in fp16, loaded in fp32", "", "## Corpus", "",
        f"- source: {manifest.get('source')} (selection: {json.dumps(manifest.get('selection'))})",
        f"- licence of the training text: {json.dumps(manifest.get('licence'))}; no corpus text is shipped "
        "with the weights",
        f"- files {c.get('files')}, functions {c.get('functions')}, duplicates {c.get('duplicates')}, "
        f"dropped as Devign overlap {c.get('devign_overlap_dropped')}, too short {c.get('too_short')}, "
        f"kept {c.get('kept')}, C tokens {c.get('tokens')}",
        f"- normalisation: {manifest.get('normalisation')}", "", "## Training", "",
        *([f"- continued from the encoder `{cfg.init}` (its weights, MLM head and tokenizer)"] if cfg.init else []),
        f"- steps {summary.get('steps')}, batch {cfg.batch_size}, lr {cfg.lr} (AdamW, warm-up "
        f"{cfg.warmup_steps} steps, linear decay), MLM probability {cfg.mlm_probability}",
        f"- BPE tokens seen: {summary.get('tokens_seen'):,}",
        f"- held-out MLM loss ({summary.get('heldout')}): {summary.get('heldout_mlm_loss_before')} before, "
        f"{summary.get('heldout_mlm_loss_after')} after", "", "## Loss curve", "",
        "| epoch | step | tokens seen | train MLM loss | held-out MLM loss |", "|---|---|---|---|---|"]
    lines += [f"| {r['epoch']} | {r['step']} | {r['tokens_seen']} | {r['train_loss']} | {r['val_loss']} |"
              for r in curve]
    return "\n".join(lines) + "\n"
