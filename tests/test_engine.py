"""The engine under interruption: SIGKILL mid-run then resume, a corrupt last checkpoint, DDP on CPU."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from streamguard.train.checkpoint import load_checkpoint_file

DATA = Path(__file__).parent / "fixtures" / "gnn_processed"
# small and deterministic; batch 4 gives 12 steps an epoch, so a kill lands inside an epoch
ARGS = ["--deterministic", "--seed", "7", "--tracking-uri", "off", "--set", "hidden=32", "embed_dim=16",
        "head_hidden=32", "layers=2", "batch_size=4", "patience=50"]


def cmd(out: Path, cache: Path, epochs: int, *extra: str, sets: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
            "--epochs", str(epochs), *extra, *ARGS, f"cache_dir={cache}", *sets]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["state_dict"]


def kill_after_first_checkpoint(args: list[str], out: Path) -> None:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    first = out / "checkpoints" / "epoch-000.ckpt"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run never wrote its first checkpoint"
    assert not (out / "train_summary.json").exists(), "the run finished before it could be killed"


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(cmd(tmp_path / "whole", cache, 3))
    out = tmp_path / "killed"
    kill_after_first_checkpoint(cmd(out, cache, 3), out)
    done_before = {p.name for p in (out / "checkpoints").iterdir()}
    assert "epoch-002.ckpt" not in done_before
    proc = run(cmd(out, cache, 3))
    assert "resuming from" in proc.stderr
    resumed_epochs = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("epoch=")]
    assert "epoch=0" not in resumed_epochs and "epoch=2" in resumed_epochs  # it did not start over
    a, b = weights(tmp_path / "whole"), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]
    assert json.loads((out / "exp_config.json").read_text())["resumed_from"]


def test_sigterm_exits_143_without_predictions(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(cmd(out, tmp_path / "cache", 50), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env())
    deadline = time.time() + 240
    while not (out / "checkpoints" / "epoch-000.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what a spot instance gets before it goes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "rerun the same command" in err
    assert not (out / "predictions").exists() and not (out / "train_summary.json").exists()


def test_corrupt_last_checkpoint_resumes_from_previous_with_warning(tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    run(cmd(out, cache, 2))
    ckpts = out / "checkpoints"
    for name in ("last.ckpt", "epoch-001.ckpt"):  # a crash during epoch 1's writes
        data = (ckpts / name).read_bytes()
        (ckpts / name).write_bytes(data[: len(data) // 3])
    proc = run(cmd(out, cache, 3))
    assert "last.ckpt is unreadable" in proc.stderr
    assert f"resuming from {ckpts / 'epoch-000.ckpt'}" in proc.stderr
    epochs = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("epoch=")]
    assert epochs == ["epoch=1", "epoch=2"]
    assert load_checkpoint_file(ckpts / "last.ckpt")["epoch"] == 2


def test_ddp_on_cpu_with_gloo_writes_the_same_outputs(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = run(cmd(out, tmp_path / "cache", 1, "--devices", "2", "--strategy", "ddp", sets=("accelerator=cpu",)))
    assert "gloo" in proc.stderr.lower() or "distributed" in proc.stderr.lower()
    for split in ("valid", "test"):
        rows = [json.loads(ln) for ln in (out / "predictions" / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == 24 and len({r["id"] for r in rows}) == 24
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch=")]
    assert len(lines) == 1  # rank zero alone reports
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "metrics.csv").is_file()
    assert json.loads((out / "exp_config.json").read_text())["device"]["devices"] == 2
