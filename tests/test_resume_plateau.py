"""The plateau scheduler's state (best value, bad-epoch count, reduced rate) survives a resume: a run stopped
after 2 epochs and continued to 5 sets the same learning rates as one that ran 5 epochs at once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_engine import ARGS, DATA, env

from streamguard.rundir import read_metrics_csv

# lr_patience 1 with a factor of 0.1: the rate drops after every second epoch without a gain in the monitor
PLATEAU = ("scheduler=plateau", "lr_patience=1", "lr_factor=0.1", "monitor=val_accuracy")


def train(out: Path, cache: Path, epochs: int) -> None:
    args = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
            "--epochs", str(epochs), *ARGS, f"cache_dir={cache}", *PLATEAU]
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_plateau_state_survives_a_resume(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    train(tmp_path / "whole", cache, 5)
    train(tmp_path / "resumed", cache, 2)
    train(tmp_path / "resumed", cache, 5)  # resumes from last.ckpt of epoch 1
    whole, resumed = read_metrics_csv(tmp_path / "whole"), read_metrics_csv(tmp_path / "resumed")
    lrs = [r["lr"] for r in whole]
    assert len(set(lrs)) > 1, f"the plateau never reduced the rate, so the test shows nothing: {lrs}"
    assert [r["lr"] for r in resumed] == lrs
