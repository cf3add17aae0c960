"""kill -9 at any point + rerun = the uninterrupted run: same best checkpoint, predictions, final weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamguard.train.bestckpt import best_epoch_of
from streamguard.train.checkpoint import load_checkpoint_file

DATA = Path(__file__).parent / "fixtures" / "gnn_processed"
KILLER = Path(__file__).parent / "kill_at.py"
# val_roc_auc falls after epoch 0 on this fixture: the best epoch is the first, the case a resume got wrong
ARGS = ["--deterministic", "--seed", "7", "--tracking-uri", "off", "--monitor", "val_roc_auc", "--set", "hidden=32",
        "embed_dim=16", "head_hidden=32", "layers=2", "batch_size=4", "patience=50"]


def train(out: Path, cache: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    args = ["train", "gnn", "--data", str(DATA), "--out", str(out), "--epochs", "3", *ARGS, f"cache_dir={cache}"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    if kill_at:
        env["SG_KILL_AT"] = kill_at
        proc = subprocess.run([sys.executable, str(KILLER), *args], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        assert proc.returncode == -9, f"not killed at {kill_at}: {proc.stderr[-2000:]}"
    else:
        proc = subprocess.run([sys.executable, "-m", "streamguard.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["state_dict"]


def same_weights(a: Path, b: Path) -> bool:
    x, y = state(a), state(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("whole")
    train(root / "run", root / "cache")
    return root / "run"


def test_whole_run_records_its_best_epoch(whole: Path) -> None:
    summary = json.loads((whole / "train_summary.json").read_text())
    assert summary["best_epoch"] == 0
    assert best_epoch_of(load_checkpoint_file(whole / "checkpoints" / "last.ckpt")) == 0
    manifest = json.loads((whole / "checkpoints" / "manifest.json").read_text())["files"]
    assert {"best.ckpt", "last.ckpt", "epoch-000.ckpt", "epoch-002.ckpt"} <= manifest.keys()


def test_kills_at_several_points_then_rerun_equal_the_uninterrupted_run(whole: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    # 1: epoch 0's own checkpoint renamed into place, its manifest entry and last.ckpt not yet written;
    # 2: epoch 1's last.ckpt in place, its manifest entry stale; 3: valid predictions written, test not yet
    for point in ("epoch-000.ckpt:1", "last.ckpt:1", "valid.jsonl:1"):
        train(out, cache, kill_at=point)
    proc = train(out, cache)
    assert "resuming from" in proc.stderr
    a, b = whole / "checkpoints", out / "checkpoints"
    assert load_checkpoint_file(b / "best.ckpt")["epoch"] == 0
    assert same_weights(a / "best.ckpt", b / "best.ckpt"), "a resumed run chose another best checkpoint"
    assert same_weights(a / "last.ckpt", b / "last.ckpt")
    for name in ("predictions/valid.jsonl", "predictions/test.jsonl", "metrics.csv"):
        assert (whole / name).read_bytes() == (out / name).read_bytes(), name
    s1, s2 = (json.loads((d / "train_summary.json").read_text()) for d in (whole, out))
    assert (s1["best_epoch"], s1["best_score"]) == (s2["best_epoch"], s2["best_score"])


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte: only the manifest's hash can tell
    path.write_bytes(bytes(data))


def test_corrupt_best_is_replaced_by_the_best_epochs_checkpoint_for_predict(whole: Path, tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import shutil

    from streamguard.train import engine

    run = tmp_path / "moved"
    shutil.copytree(whole, run)
    _damage(run / "checkpoints" / "best.ckpt")
    with caplog.at_level(logging.WARNING):
        got = engine.best_state_dict(run / "checkpoints")
    want = {k.removeprefix("model."): v for k, v in state(whole / "checkpoints" / "best.ckpt").items()}
    assert all(torch.equal(got[k], want[k]) for k in want)
    lines = [r.getMessage() for r in caplog.records if "best.ckpt" in r.getMessage()]
    assert len(lines) == 1 and "sha256 differs" in lines[0] and "epoch-000.ckpt" in lines[0]


def test_rerun_rebuilds_a_corrupt_best_even_when_its_epoch_file_is_corrupt_too(whole: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(whole, out)
    for name in ("best.ckpt", "epoch-000.ckpt"):
        _damage(out / "checkpoints" / name)
    proc = train(out, tmp_path / "cache")
    assert "retraining from scratch to rebuild it" in proc.stderr
    assert same_weights(whole / "checkpoints" / "best.ckpt", out / "checkpoints" / "best.ckpt")
    assert (whole / "predictions/test.jsonl").read_bytes() == (out / "predictions/test.jsonl").read_bytes()
