"""`streamguard pretrain` killed with SIGKILL after its first checkpoint resumes and ends where an
uninterrupted run ends (the engine's checkpoint and resume machinery, reused)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from streamguard.data.corpus import build_corpus
from streamguard.train.checkpoint import load_checkpoint_file

FIXTURES = Path(__file__).parent / "fixtures"
SETS = ["vocab_size=600", "hidden=32", "layers=1", "heads=2", "intermediate=64", "max_length=96",
        "steps_per_epoch=5", "batch_size=8", "lr=3e-3", "warmup_steps=2", "valid_functions=8", "tracking_uri=off",
        "threads=1", "seed=5", "epochs=3"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def cmd(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "streamguard.cli", "pretrain", "--corpus", str(corpus), "--out", str(out),
            "--devign", str(FIXTURES / "raw_small"), "--set", *SETS]


@pytest.mark.slow
def test_sigkill_then_rerun_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    build_corpus(FIXTURES / "kernel_c", corpus, FIXTURES / "raw_small")
    subprocess.run(cmd(corpus, tmp_path / "whole"), check=True, capture_output=True, env=env(), timeout=300)
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    first = out / "checkpoints" / "epoch-000.ckpt"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (out / "pretrain_summary.json").exists(), "not killed mid-run"
    done = subprocess.run(cmd(corpus, out), check=True, capture_output=True, text=True, env=env(), timeout=300)
    assert "resuming from" in done.stderr
    a = load_checkpoint_file(tmp_path / "whole" / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint_file(out / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
