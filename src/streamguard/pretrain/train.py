"""``streamguard pretrain``: RoBERTa masked-language-model pre-training on a corpus, on the shared engine's parts.

What the classifier engine (train/engine.py) gives every kind is reused as is: seeding, thread setup, atomic
checkpoints mirrored to any fsspec URL (S3), resume from the newest valid checkpoint after a SIGKILL, MLflow,
metrics.csv and the progress bar. Only the LightningModule differs: the loss is the MLM loss, and the
validation metric is the MLM loss on held-out Devign valid functions (masked once with a fixed seed).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from streamguard.atomic import write_text
from streamguard.config import Checked, bounded_field
from streamguard.data.corpus import devign_functions, read_corpus
from streamguard.errors import UserError
from streamguard.pretrain import data as pdata
from streamguard.pretrain.export import CURVE, LossCurve
from streamguard.pretrain.model import EncoderShape, MaskedLM
from streamguard.runlock import locked
from streamguard.train import checkpoint as ck
from streamguard.train import engine
from streamguard.train.schedule import lr_scale
from streamguard.train.tracking import MetricsCallback, StderrProgressBar, configure_threads, make_mlflow_logger

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PretrainConfig(Checked):
    """Masked-language-model pre-training: exactly the keys it reads, each with its range (a key it would
    ignore, e.g. the fine-tuning loop's optimizer or patience, is refused, not silently dropped)."""
    devign: str = "../shared/data/devign"   # CodeXGLUE jsonl: train joins the BPE, valid is the held-out set
    vocab_size: int = bounded_field(16000, lo=260)  # byte-level BPE: the 256 bytes and the special tokens at least
    hidden: int = bounded_field(128, lo=1)          # the shape of configs/devign/transformer.yaml's tiny encoder:
    layers: int = bounded_field(2, lo=1)            # fine-tuning in `make devign` costs what it did from scratch
    heads: int = bounded_field(2, lo=1)
    intermediate: int = bounded_field(512, lo=1)
    max_length: int = bounded_field(512, lo=8)
    dropout: float = bounded_field(0.1, lo=0, hi=1)
    mlm_probability: float = bounded_field(0.15, lo=0, hi=1, lo_open=True)
    steps_per_epoch: int = bounded_field(100, lo=1)  # an "epoch" = a checkpoint + held-out evaluation interval
    epochs: int = bounded_field(30, lo=1)
    batch_size: int = bounded_field(16, lo=1)
    lr: float = bounded_field(5e-4, lo=0, lo_open=True)
    weight_decay: float = bounded_field(0.01, lo=0)  # AdamW's decoupled decay
    grad_clip: float = bounded_field(1.0, lo=0)      # 0 = no clipping
    warmup_steps: int = bounded_field(200, lo=0)
    valid_functions: int = bounded_field(256, lo=1)  # Devign valid functions in the held-out MLM loss
    max_minutes: float = bounded_field(0.0, lo=0)    # stop after this long (wall clock); 0 = no limit
    max_steps: int = bounded_field(0, lo=0)          # stop after this many steps (the schedule still spans all
                                              # epochs): reproduces a run that max_minutes stopped; 0 = no limit
    init: str = ""                            # an exported encoder to continue from (its weights, MLM head
                                              # and tokenizer; the shape keys must match it); "" = random
    seed: int = 42
    deterministic: bool = False
    precision: str = "32-true"                # bf16-mixed on CPU, 16-mixed on CUDA
    accelerator: str = "auto"
    threads: int = bounded_field(0, lo=0)            # torch threads; 0 = all cores
    checkpoint_uri: str | None = None         # any fsspec URL; s3://bucket/prefix mirrors checkpoints
    tracking_uri: str | None = None           # MLflow; default MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "streamguard"
    devices: ClassVar[int] = 1                # one process (configure_threads reads it); not a key

    def shape(self) -> EncoderShape:
        return EncoderShape(self.hidden, self.layers, self.heads, self.intermediate, self.max_length, self.dropout)


class LitMLM(pl.LightningModule):
    def __init__(self, model: MaskedLM, cfg: PretrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self._sums = torch.zeros(2)
        self._val = torch.zeros(2)
        self.tokens_seen = 0

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        total, warm = self.cfg.epochs * self.cfg.steps_per_epoch, self.cfg.warmup_steps

        def scale(step: int) -> float:  # linear warm-up, then linear decay to zero at the last step
            return lr_scale(step, warm, total, "linear")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, scale)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        self._sums = torch.zeros(2)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(batch["input_ids"], batch["attention_mask"], batch["labels"])
        self._sums += torch.tensor([float(loss.detach()), 1.0])
        self.tokens_seen += int(batch["attention_mask"].sum())
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = torch.zeros(2)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        n = int((batch["labels"] != -100).sum())
        loss = self.model(batch["input_ids"], batch["attention_mask"], batch["labels"])
        self._val += torch.tensor([float(loss) * n, float(n)])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        metrics = {"val_loss": self._val[0] / self._val[1].clamp(min=1),
                   "train_loss": self._sums[0] / self._sums[1].clamp(min=1),
                   "lr": torch.tensor(self.optimizers().optimizer.param_groups[0]["lr"]),
                   "tokens_seen": torch.tensor(float(self.tokens_seen))}
        self.log_dict({k: v.float() for k, v in metrics.items()})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["sg_tokens_seen"] = self.tokens_seen
        checkpoint["sg_rng"] = {"torch": torch.get_rng_state()}  # the collator's masks draw from it

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokens_seen = int(checkpoint.get("sg_tokens_seen", 0))
        if "sg_rng" in checkpoint:
            torch.set_rng_state(checkpoint["sg_rng"]["torch"])


@torch.no_grad()
def heldout_loss(model: MaskedLM, batches: list[dict[str, torch.Tensor]]) -> float:
    """Token-weighted MLM loss over fixed held-out batches."""
    was_training = model.training
    model.eval()
    total = count = 0.0
    for b in batches:
        n = int((b["labels"] != -100).sum())
        total += float(model(b["input_ids"], b["attention_mask"], b["labels"])) * n
        count += n
    model.train(was_training)
    return total / max(count, 1.0)


def _inputs(corpus: Path, out: Path, cfg: PretrainConfig) -> tuple[Any, list, list, dict[str, Any]]:
    codes, manifest = read_corpus(corpus)
    if cfg.init and not (out / "tokenizer" / "tokenizer.json").is_file():
        # continuing an encoder means keeping its vocabulary: its tokenizer files become the run's, as they are
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        for name in ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):  # tokenizer.json last:
            if (Path(cfg.init) / name).is_file():                                          # it marks the copy done
                shutil.copy(Path(cfg.init) / name, out / "tokenizer" / name)
    tokenizer = pdata.prepare_tokenizer(out / "tokenizer", codes, devign_functions(Path(cfg.devign), "train"),
                                        cfg.vocab_size)
    rows = pdata.encode_cached(tokenizer, codes, cfg.max_length, out / "cache" / "corpus")
    valid = devign_functions(Path(cfg.devign), "valid", cfg.valid_functions)
    valid_rows = pdata.encode_cached(tokenizer, valid, cfg.max_length, out / "cache" / "devign_valid")
    return tokenizer, rows, valid_rows, manifest


def pretrain(corpus: Path, out: Path, cfg: PretrainConfig) -> Path:
    """Pre-train (resuming when a checkpoint exists), then export the encoder with its model card."""
    with locked(out, "--out"):  # one writer per output folder: a second pre-training into it is refused
        return _pretrain(Path(corpus), Path(out), cfg)


def _pretrain(corpus: Path, out: Path, cfg: PretrainConfig) -> Path:
    from transformers import DataCollatorForLanguageModeling

    from streamguard.pretrain.export import export_encoder
    configure_threads(cfg)
    tokenizer, rows, valid_rows, manifest = _inputs(corpus, out, cfg)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability)
    valid_batches = pdata.fixed_masked_batches(collator, valid_rows, cfg.batch_size, cfg.seed)
    engine.seed_all(cfg)
    model = _initial_model(cfg, tokenizer)
    before = heldout_loss(model, valid_batches)
    ckpt_dir = out / "checkpoints"
    resume = ck.find_resume(ckpt_dir, cfg.checkpoint_uri)
    if resume is not None:
        log.warning("resuming from %s", resume)
    _write_json(out / "pretrain_config.json", {"config": dataclasses.asdict(cfg), "corpus": str(corpus.resolve()),
                                                "corpus_manifest": manifest, "resumed_from": str(resume or "")})
    ckpt_io = ck.MirroredCheckpointIO(cfg.checkpoint_uri)
    lit = LitMLM(model, cfg)
    trainer = _trainer(cfg, out, ckpt_io)
    # Private generators: a loader without one draws its base seed from the global RNG that the masks and
    # dropout use, and a resumed run would drift from an uninterrupted one (as in engine._loader).
    loader = torch.utils.data.DataLoader(
        pdata.TokenRows(rows), collate_fn=collator, generator=torch.Generator().manual_seed(cfg.seed),
        batch_sampler=pdata.StreamBatches([len(r) for r in rows], cfg.batch_size, cfg.steps_per_epoch, cfg.seed))
    valid_loader = torch.utils.data.DataLoader(valid_batches, batch_size=None,
                                               generator=torch.Generator().manual_seed(cfg.seed))
    started = time.time()
    try:
        trainer.fit(lit, loader, valid_loader, ckpt_path=str(resume) if resume else None)
    except SIGTERMException:
        ckpt_io.flush(final=True)
        raise SystemExit(143) from None
    after = heldout_loss(model, valid_batches)
    summary = {"heldout_mlm_loss_before": round(before, 4), "heldout_mlm_loss_after": round(after, 4),
               "heldout": f"{len(valid_rows)} Devign valid functions, masks fixed by seed {cfg.seed}",
               "steps": int(trainer.global_step), "epochs_run": int(trainer.current_epoch),
               "tokens_seen": lit.tokens_seen, "wall_s_this_process": round(time.time() - started, 1),
               "resumed_from": str(resume) if resume else None, "params": model.parameter_count()}
    _write_json(out / "pretrain_summary.json", summary)
    export_encoder(model, tokenizer, out, cfg, manifest, summary)
    for name in ("pretrain_config.json", "pretrain_summary.json", "metrics.csv"):
        ckpt_io.queue(out / name, name="run/" + name)
    ckpt_io.flush(final=True)
    log.warning("held-out MLM loss %.3f -> %.3f after %d steps (%d tokens); encoder in %s", before, after,
                summary["steps"], lit.tokens_seen, out / "encoder")
    return out


def _initial_model(cfg: PretrainConfig, tokenizer: Any) -> MaskedLM:
    if not cfg.init:
        return MaskedLM.fresh(cfg.shape(), tokenizer).train()
    from streamguard.pretrain.export import load_mlm
    model = load_mlm(Path(cfg.init))
    c = model.mlm.config
    found = EncoderShape(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
                         c.max_position_embeddings - c.pad_token_id - 1, cfg.dropout)
    if found != cfg.shape() or c.vocab_size != len(tokenizer):
        raise UserError(f"init {cfg.init}: the encoder's shape {found} (vocabulary {c.vocab_size}) differs from "
                        f"the config's {cfg.shape()} (vocabulary {len(tokenizer)}); set the shape keys to match")
    return model.train()


def _trainer(cfg: PretrainConfig, out: Path, ckpt_io: ck.MirroredCheckpointIO) -> pl.Trainer:
    per_epoch = ModelCheckpoint(dirpath=out / "checkpoints", filename="epoch-{epoch:03d}",
                                auto_insert_metric_name=False, save_top_k=2, monitor="step", mode="max",
                                every_n_epochs=1, save_last=True, enable_version_counter=False)
    logger = make_mlflow_logger(out, cfg.tracking_uri, cfg.experiment, out.name)
    return pl.Trainer(max_epochs=cfg.epochs, max_steps=cfg.max_steps or -1, accelerator=cfg.accelerator,
                      devices=1, precision=cfg.precision,
                      gradient_clip_val=cfg.grad_clip or None, num_sanity_val_steps=0, plugins=[ckpt_io],
                      logger=logger or False, default_root_dir=out, enable_model_summary=False,
                      max_time={"minutes": cfg.max_minutes} if cfg.max_minutes > 0 else None,
                      use_distributed_sampler=False, log_every_n_steps=25,
                      callbacks=[MetricsCallback(out / "metrics.csv"), LossCurve(out / CURVE), per_epoch,
                                 StderrProgressBar(refresh_rate=25)])


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def check_config(cfg: PretrainConfig) -> None:
    if cfg.hidden % cfg.heads:
        raise UserError(f"hidden {cfg.hidden} must be a multiple of heads {cfg.heads}")
    if not 0 < cfg.mlm_probability < 1 or cfg.steps_per_epoch < 1 or cfg.epochs < 1:
        raise UserError("mlm_probability must be in (0, 1); steps_per_epoch and epochs at least 1")
    if cfg.init and not (Path(cfg.init) / "mlm_head.safetensors").is_file():
        raise UserError(f"init {cfg.init}: not an encoder exported by `streamguard pretrain` (no mlm_head)")
    if not math.isfinite(cfg.lr) or cfg.lr <= 0:
        raise UserError(f"lr must be a positive number, got {cfg.lr}")
