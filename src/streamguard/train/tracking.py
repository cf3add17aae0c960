"""Per-epoch metrics: one stable log line, metrics.csv, and MLflow (embedded sqlite by default).

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

from streamguard.atomic import atomic_open, write_text
from streamguard.config import EngineConfig
from streamguard.provenance import sha256_file
from streamguard.rundir import read_metrics_csv

log = logging.getLogger(__name__)
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
        rows = [r for r in read_metrics_csv(self.csv_path.parent) if r["epoch"] < epoch] + [row]
        with atomic_open(self.csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(format_line(row), flush=True)


def make_mlflow_logger(out_dir: Path, tracking_uri: str | None, experiment: str,
                       run_name: str) -> MLFlowLogger | None:
    """The MLflow logger, resuming the run recorded in ``out_dir``; ``tracking_uri: off`` turns it off."""
    if tracking_uri is not None and tracking_uri.lower() == "off":
        return None
    uri = tracking_uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"
    run_file = out_dir / "mlflow_run_id"
    run_id = run_file.read_text().strip() if run_file.is_file() else None
    try:
        logger = MLFlowLogger(experiment_name=experiment, tracking_uri=uri, run_name=run_name, run_id=run_id,
                              log_model=False)
        _ = logger.experiment  # connect now, so that a bad URI fails before training, not after
        if run_id is None:
            logger.experiment.get_run(logger.run_id)
    except Exception as exc:
        if run_id is None:
            raise
        log.warning("MLflow run %s not found at %s (%s); starting a new run", run_id, uri, exc)
        logger = MLFlowLogger(experiment_name=experiment, tracking_uri=uri, run_name=run_name, log_model=False)
    if logger.run_id:
        write_text(run_file, logger.run_id + "\n")
    return logger


def configure_threads(cfg: EngineConfig) -> int:
    """Split the cores between the processes of a CPU run; several processes with all threads each thrash."""
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, cfg.devices))
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # threads started from here on inherit it (see cli.prepare_torch_cpu)
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
