"""Per-epoch metrics: one stable log line, metrics.csv, and MLflow (the workspace's store, train/mlflow_store.py).

The log line is a contract: the cloud launcher reads it with ``METRIC_RE``. Keep its keys and format.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import MLFlowLogger

from streamguard import logs
from streamguard.atomic import atomic_open, write_text
from streamguard.config import EngineConfig
from streamguard.provenance import sha256_file
from streamguard.rundir import RunDir
from streamguard.train import mlflow_store as store

log = logging.getLogger(__name__)
logs.quiet()  # importing lightning (above) put its loggers back to INFO, with a console handler of its own
CSV_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_vulnerable", "val_roc_auc", "lr")
# The launcher should search (not anchor) lines: when stdout and stderr share a log file, the progress
# bar's carriage returns may precede a metric line. One metric a match, e.g. "epoch=3 train_loss=0.6512 ..."
METRIC_RE = re.compile(r"(?P<name>epoch|train_loss|val_loss|val_accuracy|val_f1_vulnerable|val_roc_auc|lr)="
                       r"(?P<value>[-+0-9.eE]+|nan)")
LINE_RE = re.compile(r"^epoch=\d+ train_loss=\S+ val_loss=\S+ val_accuracy=\S+ val_f1_vulnerable=\S+ "
                     r"val_roc_auc=\S+ lr=\S+$")


class StderrProgressBar(TQDMProgressBar):
    """Lightning's bar, drawn on stderr so that stdout holds only the metric lines, whole."""

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.train_description, position=2 * self.process_position, disable=self.is_disabled,
                    leave=True, dynamic_ncols=True, file=sys.stderr, smoothing=0, bar_format=self.BAR_FORMAT)

    def init_validation_tqdm(self) -> Tqdm:
        has_main_bar = self.trainer.state.fn != "validate"
        return Tqdm(desc=self.validation_description, position=2 * self.process_position + has_main_bar,
                    disable=self.is_disabled, leave=not has_main_bar, dynamic_ncols=True, file=sys.stderr,
                    bar_format=self.BAR_FORMAT)


def progress_bar(refresh_rate: int) -> pl.Callback:
    """The engine's progress bar: the pipeline's live line while a pipeline runs, else Lightning's on stderr."""
    from streamguard import progress

    return progress.stage_bar(store.run_name) if progress.active() else StderrProgressBar(refresh_rate=refresh_rate)


def format_line(row: dict[str, Any]) -> str:
    parts = [f"epoch={int(row['epoch'])}"]
    for key in CSV_FIELDS[1:-1]:
        parts.append(f"{key}={float(row[key]):.4f}")
    parts.append(f"lr={float(row['lr']):.3e}")
    return " ".join(parts)


def parse_line(line: str) -> dict[str, float]:
    """What the launcher does with a log line: metric name -> value."""
    return {m.group("name"): float(m.group("value")) for m in METRIC_RE.finditer(line)}


class MetricsCallback(pl.Callback):
    """Writes one CSV row and one log line per validated epoch (rank zero only).

    A resumed run rewrites the CSV without rows at or after the epoch it restarts from, so an epoch that
    was logged but whose checkpoint never landed appears once.
    """

    def __init__(self, csv_path: Path) -> None:
        self.csv_path = csv_path

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        epoch = trainer.current_epoch

        def val(key: str) -> float:
            return float(m[key]) if key in m else math.nan

        row = {"epoch": epoch, "train_loss": val("train_loss"), "val_loss": val("val_loss"),
               "val_accuracy": val("val_accuracy"), "val_f1_vulnerable": val("val_f1_vulnerable"),
               "val_roc_auc": val("val_roc_auc"), "lr": val("lr")}
        rows = [r for r in RunDir(self.csv_path.parent).read_metrics() if r["epoch"] < epoch] + [row]
        with atomic_open(self.csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(format_line(row), flush=True)


def make_mlflow_logger(out_dir: Path, tracking_uri: str | None, experiment: str,
                       run_name: str) -> MLFlowLogger | None:
    """The MLflow logger on the workspace's store (train/mlflow_store.py), resuming the run recorded in
    ``out_dir``, nested under an enclosing run (a fusion's folds); ``tracking_uri: off`` turns it off.
    ``run_name`` is kept for callers; a nested run is named after its place (``gnn/fold-0``)."""
    uri = store.store_uri(tracking_uri)
    if uri is None:
        return None
    store.ensure_experiment(uri, experiment)  # created here, so Lightning never says "not found. Creating it"
    run_id = store.recorded_run_id(store.client(uri), out_dir)
    name = store.run_name(out_dir) if store.parent_run_id(out_dir) else run_name
    logger = MLFlowLogger(experiment_name=experiment, tracking_uri=uri, run_name=name, run_id=run_id,
                          tags=None if run_id else store.run_tags(out_dir, _kind(out_dir)), log_model=False)
    _ = logger.experiment  # connect now, so that a bad URI fails before training, not after
    if logger.run_id:
        write_text(out_dir / store.RUN_ID_FILE, logger.run_id + "\n")
        store.log_params(logger.experiment, logger.run_id, _hyperparameters(out_dir))
    return logger


def _exp_config(out_dir: Path) -> dict[str, Any]:
    return RunDir(out_dir).read_exp_lenient()


def _kind(out_dir: Path) -> str | None:
    return _exp_config(out_dir).get("model")


def _hyperparameters(out_dir: Path) -> dict[str, Any]:
    """The run's parameters as written to exp_config.json just before training starts."""
    return _exp_config(out_dir).get("hyperparameters") or {}


def configure_threads(cfg: EngineConfig) -> int:
    """Split the cores between the processes of a CPU run; several processes with all threads each thrash."""
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, cfg.devices))
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # threads started from here on inherit it (see runtime.prepare_torch_cpu)
    return threads


def device_info(cfg: EngineConfig) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    return {"accelerator": cfg.accelerator, "devices": cfg.devices, "strategy": cfg.strategy,
            "precision": cfg.precision, "cuda": torch.cuda.get_device_name(0) if cuda else None,
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def engine_record(cfg: EngineConfig, resumed_from: Path | None) -> dict[str, Any]:
    """What the engine adds to a run's exp_config.json: seeds, device, sample weights' checksum, resume."""
    weights = Path(cfg.sample_weights) if cfg.sample_weights else None
    others = {str(weights): sha256_file(weights)} if weights and weights.is_file() else {}
    return {"seeds": {"seed": cfg.seed, "deterministic": cfg.deterministic}, "device": device_info(cfg),
            "other_inputs_sha256": others, "resumed_from": str(resumed_from) if resumed_from else None}
