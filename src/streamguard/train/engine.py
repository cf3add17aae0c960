"""The training engine every neural model shares, built on PyTorch Lightning.

A kind (gnn, transformer) hands over a model (tensors in, logits out) and datasets whose ``collate`` yields
``{"inputs": {...model kwargs...}, "label", "weight", "index"}``; the engine does the rest: seeds, AMP,
early stopping and best-checkpoint choice on the monitored metric, atomic mirrored checkpoints, resume,
tracking, and the predictions of the best checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryF1Score

from streamguard.atomic import make_dir
from streamguard.config import EngineConfig, to_dict
from streamguard.errors import UserError
from streamguard.rundir import RunDir
from streamguard.runlock import locked
from streamguard.thresholds import write_predictions
from streamguard.train import checkpoint as ck
from streamguard.train.batches import length_grouped_batches
from streamguard.train.bestckpt import BestCheckpoint, load_best, repair_before_resume
from streamguard.train.pairs import PairBatchSampler, dataset_groups, pair_margin_loss
from streamguard.train.schedule import lr_scale
from streamguard.train.tracking import (
    MetricsCallback,
    configure_threads,
    engine_record,
    make_mlflow_logger,
    progress_bar,
)

log = logging.getLogger(__name__)
MONITORS = ("val_f1_vulnerable", "val_accuracy", "val_roc_auc")


class ClassificationDataset(Protocol):
    ids: list[str]
    projects: list[str]
    labels: torch.Tensor

    def __len__(self) -> int: ...
    def collate(self, items: list[int]) -> dict[str, Any]: ...


class LitClassifier(pl.LightningModule):
    """Weighted cross-entropy training of any logits model; validation metrics of the vulnerable class."""

    def __init__(self, model: nn.Module, cfg: EngineConfig, pair_groups: np.ndarray | None = None) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        # fix pair of each training item (train/pairs.py); None: no pair loss (not a buffer: checkpoints unchanged)
        self.pair_groups = None if pair_groups is None else torch.as_tensor(pair_groups)
        self.val_acc, self.val_f1, self.val_auc = BinaryAccuracy(), BinaryF1Score(), BinaryAUROC()
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._loss_sum = torch.zeros(())
        self._loss_n = torch.zeros(())

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        return self.model(**inputs)

    def configure_optimizers(self) -> Any:
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(self.cfg.optimizer)
        if opt_cls is None:
            raise UserError(f"optimizer must be adam or adamw, got {self.cfg.optimizer!r}")
        opt = opt_cls(self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if self.cfg.scheduler == "plateau":
            # Stepped by hand after validation, so that the checkpoint written then already holds the step.
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max", factor=self.cfg.lr_factor, patience=self.cfg.lr_patience)
        return opt

    def _step_lr(self) -> None:
        """Warm-up (any scheduler) and linear decay (scheduler=linear), from the global step alone."""
        steps_per_epoch = max(1, self.trainer.num_training_batches // max(1, self.cfg.accumulate))
        scale = lr_scale(self.global_step, int(self.cfg.warmup_epochs * steps_per_epoch),
                         int(self.trainer.estimated_stepping_batches), self.cfg.scheduler)
        if scale is None:
            return
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = self.cfg.lr * scale

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_n = torch.zeros((), device=self.device)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_lr()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch["inputs"]).float()
        per_sample = nn.functional.cross_entropy(logits, batch["label"], reduction="none")
        loss = (per_sample * batch["weight"]).mean()
        if self.pair_groups is not None:
            groups = self.pair_groups[batch["index"].cpu()].to(logits.device)
            ranking = pair_margin_loss(logits, batch["label"], groups, self.cfg.pair_margin)
            if ranking is not None:
                loss = loss + self.cfg.pair_loss_weight * ranking
        n = batch["label"].numel()
        self._loss_sum += loss.detach() * n
        self._loss_n += n
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["inputs"]).float()
        labels = batch["label"]
        loss = nn.functional.cross_entropy(logits, labels)
        prob = torch.softmax(logits, 1)[:, 1]
        self.val_acc.update(prob, labels)
        self.val_f1.update(prob, labels)
        self.val_auc.update(prob, labels)
        self.log("val_loss", loss, on_epoch=True, sync_dist=True, batch_size=labels.numel(), prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        metrics = {"val_accuracy": self.val_acc.compute(), "val_f1_vulnerable": self.val_f1.compute(),
                   "val_roc_auc": self.val_auc.compute()}
        for m in (self.val_acc, self.val_f1, self.val_auc):
            m.reset()
        total = self.trainer.strategy.reduce(self._loss_sum, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._loss_n, reduce_op="sum")
        metrics["train_loss"] = total / count.clamp(min=1)
        metrics["lr"] = torch.tensor(self.optimizers().optimizer.param_groups[0]["lr"])
        self.log_dict({k: v.float() for k, v in metrics.items()}, prog_bar=False)
        if self.plateau is not None:
            self.plateau.step(float(metrics[self.cfg.monitor]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Plain types only, so that the checkpoint loads with weights_only=True.
        np_state = np.random.get_state()
        checkpoint["sg_rng"] = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(),
                                                                        *np_state[2:]],
                                "torch": torch.get_rng_state(),
                                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        if self.plateau is not None:
            checkpoint["sg_plateau"] = {k: v for k, v in self.plateau.state_dict().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("sg_rng")
        if rng:
            random.setstate(_tuples(rng["python"]))
            name, keys, *rest = rng["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
        self._pending_plateau = checkpoint.get("sg_plateau")

    def on_fit_start(self) -> None:
        state = getattr(self, "_pending_plateau", None)
        if state and self.plateau is not None:
            self.plateau.load_state_dict(state)


def _tuples(obj: Any) -> Any:
    return tuple(_tuples(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


def seed_all(cfg: EngineConfig) -> None:
    """Seed Python, NumPy and torch (CUDA too). Kinds call it before building their model, so that the
    initial weights are part of the seeded run; ``fit`` calls it again before training."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def load_sample_weights(path: str | Path) -> dict[str, float]:
    """``{"id": weight}`` JSON, or jsonl rows with ``id`` and ``weight``; weights must be finite and >= 0."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"sample weights file not found: {p}")
    try:
        if p.suffix == ".jsonl":
            rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            weights = {str(r["id"]): float(r["weight"]) for r in rows}
        else:
            weights = {str(k): float(v) for k, v in json.loads(p.read_text()).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"sample weights {p}: expected id -> weight ({exc})") from None
    bad = [k for k, w in weights.items() if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise UserError(f"sample weights {p}: weight of {bad[0]!r} is not a finite number >= 0")
    return weights


def check_training_set(train: ClassificationDataset, weights: dict[str, float] | None, cfg: EngineConfig,
                       data_dir: Path, noun: str) -> None:
    """Say how many training items got a sample weight, and refuse an empty training set in one line."""
    if weights is not None:
        matched = sum(1 for k in train.ids if k in weights)
        log.warning("sample weights: %d of %d train %s have a weight in %s", matched, len(train), noun,
                    cfg.sample_weights)
    if len(train) == 0:
        raise UserError(f"no training {noun} in {data_dir} (train_ids matched none?)")


def _callbacks(cfg: EngineConfig, ckpt_dir: Path, out_dir: Path) -> list[pl.Callback]:
    if cfg.monitor not in MONITORS:
        raise UserError(f"monitor must be one of {', '.join(MONITORS)}, got {cfg.monitor!r}")
    per_epoch = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch-{epoch:03d}", auto_insert_metric_name=False,
                                save_top_k=-1, every_n_epochs=1, save_last=True, enable_version_counter=False)
    best = BestCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.monitor, mode="max", save_top_k=1,
                          enable_version_counter=False, auto_insert_metric_name=False)
    refresh = 1 if sys.stderr.isatty() else 50  # a log file gets a line every 50 batches, not every batch
    # best before per_epoch: the epoch and last checkpoints must hold a best-model state that has already
    # seen their own epoch, or a run resumed from them re-elects a later, worse epoch (bestckpt.py).
    return [MetricsCallback(RunDir(out_dir).metrics_path), EarlyStopping(cfg.monitor, patience=cfg.patience,
                                                                    mode="max"),
            best, per_epoch, progress_bar(refresh)]


class EpochSampler(torch.utils.data.Sampler[int]):
    """A shuffle that is a function of (seed, epoch) alone, like DistributedSampler's: a resumed run draws
    the same order as an uninterrupted one whatever else consumed the global RNG meanwhile.

    With ``lengths``, batches group items of similar length (``batches.length_grouped_batches``): random
    batches of functions from 10 to 512 tokens are mostly padded to 512.
    """

    POOL_BATCHES = 50

    def __init__(self, n: int, seed: int, lengths: list[int] | None = None, batch_size: int = 1) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.lengths, self.batch_size = lengths, batch_size

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at the start of every epoch
        self.epoch = epoch

    def __iter__(self) -> Any:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        if self.lengths is None:
            return iter(order)
        batches = length_grouped_batches(order, self.lengths, self.batch_size, self.POOL_BATCHES, g)
        return iter([i for batch in batches for i in batch])

    def __len__(self) -> int:
        return self.n


def _lengths(ds: ClassificationDataset) -> list[int] | None:
    """Items' padded lengths where the dataset pads its batches (token datasets), else None."""
    return getattr(ds, "lengths", None)


def _longest_first(ds: ClassificationDataset) -> list[int] | None:
    """An evaluation order in which every batch pads little (order does not matter there); None: as stored."""
    lengths = _lengths(ds)
    return None if lengths is None else sorted(range(len(ds)), key=lambda i: -lengths[i])


def _loader(ds: ClassificationDataset, batch_size: int, shuffle: bool, cfg: EngineConfig,
            pair_groups: np.ndarray | None = None) -> DataLoader:
    # A private generator: the loader's per-iterator seed draw must not consume the global RNG that
    # dropout uses, or a resumed run would drift from an uninterrupted one.
    common: dict[str, Any] = {"collate_fn": ds.collate, "num_workers": cfg.num_workers,
                              "persistent_workers": cfg.num_workers > 0,
                              "generator": torch.Generator().manual_seed(cfg.seed)}
    if not shuffle:
        return DataLoader(ds, batch_size=batch_size, sampler=_longest_first(ds), **common)
    grouped = _lengths(ds) if getattr(cfg, "group_by_length", False) else None
    if pair_groups is not None:  # variable-size batches that keep fix pairs together
        return DataLoader(ds, batch_sampler=PairBatchSampler(pair_groups, cfg.seed, batch_size, grouped), **common)
    return DataLoader(ds, batch_size=batch_size, sampler=EpochSampler(len(ds), cfg.seed, grouped, batch_size),
                      **common)


def fit(model: nn.Module, datasets: dict[str, ClassificationDataset], cfg: EngineConfig, out_dir: Path,
        kind: str, data_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Train (resuming when a checkpoint exists), then write predictions of the best checkpoint."""
    # rank zero alone: the DDP ranks it launches write nothing of their own
    with locked(out_dir, "run directory") if rank_zero_only.rank == 0 else contextlib.nullcontext():
        return _fit(model, datasets, cfg, Path(out_dir), kind, data_dir, extra)


def _fit(model: nn.Module, datasets: dict[str, ClassificationDataset], cfg: EngineConfig, out_dir: Path,
         kind: str, data_dir: Path, extra: dict[str, Any] | None) -> Path:
    make_dir(out_dir, "run directory")
    if rank_zero_only.rank == 0:  # the done marker: gone until this run has written its predictions again
        RunDir(out_dir).clear_summary()
    configure_threads(cfg)
    seed_all(cfg)
    ckpt_dir = out_dir / "checkpoints"
    resume = repair_before_resume(ckpt_dir, ck.find_resume(ckpt_dir, cfg.checkpoint_uri),
                                  write=rank_zero_only.rank == 0)
    if resume is not None:
        log.warning("resuming from %s", resume)
    if rank_zero_only.rank == 0:
        RunDir(out_dir).write_exp(kind, data_dir, to_dict(cfg), {**engine_record(cfg, resume), **(extra or {})})
    ckpt_io = ck.MirroredCheckpointIO(cfg.checkpoint_uri)
    logger = make_mlflow_logger(out_dir, cfg.tracking_uri, cfg.experiment, out_dir.name) \
        if rank_zero_only.rank == 0 else None
    trainer = pl.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
                         num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=cfg.precision,
                         deterministic=cfg.deterministic,
                         gradient_clip_val=cfg.grad_clip or None, accumulate_grad_batches=cfg.accumulate,
                         num_sanity_val_steps=0, plugins=[ckpt_io], logger=logger or False,
                         callbacks=_callbacks(cfg, ckpt_dir, out_dir), default_root_dir=out_dir,
                         enable_model_summary=False, log_every_n_steps=50)
    if cfg.pair_loss_weight > 0 and cfg.devices * cfg.num_nodes > 1:  # DDP's sampler would split the pairs
        raise UserError("pair_loss_weight > 0 trains on one device only (fix-pair batches); use --devices 1")
    groups = dataset_groups(data_dir, datasets["train"].ids) if cfg.pair_loss_weight > 0 else None
    lit = LitClassifier(model, cfg, groups)
    started = time.time()
    try:
        trainer.fit(lit, _loader(datasets["train"], cfg.batch_size, True, cfg, groups),
                    _loader(datasets["valid"], cfg.batch_size, False, cfg), ckpt_path=str(resume) if resume else None)
    except SIGTERMException:
        # Lightning's SIGTERMException exits with status 0, which reads as a finished run (a spot
        # interruption sends SIGTERM): send what the mirror still lacks, then exit 143 like a killed process.
        ckpt_io.flush(final=True)
        log.warning("stopped by SIGTERM during epoch %d; rerun the same command to resume from the last checkpoint",
                    trainer.current_epoch)
        raise SystemExit(143) from None
    except SystemExit as exc:
        # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1); the CLI reports it as 130.
        if exc.code == 1 and trainer.interrupted:
            ckpt_io.flush(final=True)
            raise KeyboardInterrupt from None
        raise
    if not trainer.is_global_zero:
        return out_dir
    best_cb = next(c for c in trainer.checkpoint_callbacks if isinstance(c, BestCheckpoint))
    summary = {"wall_s": round(time.time() - started, 1), "epochs_run": trainer.current_epoch,
               "stopped_epoch": trainer.early_stopping_callback.stopped_epoch,
               "best_score": float(best_cb.best_model_score or math.nan), "best_epoch": best_cb.best_epoch,
               "monitor": cfg.monitor, "resumed_from": str(resume) if resume else None}
    write_best_predictions(model, datasets, cfg, out_dir)
    # last: its presence says the run finished (predictions included)
    RunDir(out_dir).write_summary(summary)
    for name in RunDir(out_dir).mirrored_files():
        ckpt_io.queue(out_dir / name, name="run/" + name)
    ckpt_io.flush(final=True)
    return out_dir


def best_state_dict(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    """The model weights of best.ckpt (verified; the best epoch's own checkpoint when best.ckpt is damaged;
    last.ckpt when no epoch was ever validated), without the prefix."""
    state = load_best(Path(ckpt_dir))["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


@torch.no_grad()
def predict_rows(model: nn.Module, ds: ClassificationDataset, batch_size: int) -> list[dict[str, Any]]:
    """Rows of the predictions contract: id, label, prob_vulnerable, logits, project."""
    model.eval()
    rows: dict[int, dict[str, Any]] = {}  # read longest first, returned in the dataset's order
    for batch in DataLoader(ds, batch_size=batch_size, sampler=_longest_first(ds), collate_fn=ds.collate):
        logits = model(**batch["inputs"]).float()
        probs = torch.softmax(logits, 1)[:, 1]
        for i, p, lg in zip(batch["index"].tolist(), probs.tolist(), logits.tolist()):
            rows[i] = {"id": ds.ids[i], "label": int(ds.labels[i]), "prob_vulnerable": p,
                       "logits": [round(v, 6) for v in lg], "project": ds.projects[i]}
    return [rows[i] for i in sorted(rows)]


def write_best_predictions(model: nn.Module, datasets: dict[str, ClassificationDataset], cfg: EngineConfig,
                           out_dir: Path) -> None:
    model.load_state_dict(best_state_dict(out_dir / "checkpoints"))
    for split in ("valid", "test"):
        if split in datasets:
            write_predictions(out_dir, split, predict_rows(model, datasets[split], cfg.predict_batch_size))
