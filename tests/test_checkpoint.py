"""Checkpoint files: atomic writes, weights_only loading, choosing a usable one, a mirror that fails."""
from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
import torch

from streamguard.train import checkpoint as ck


def fake_ckpt(epoch: int) -> dict:
    return {"state_dict": {"model.w": torch.full((3,), float(epoch))}, "epoch": epoch, "global_step": 10 * epoch,
            "loops": {}}


def test_atomic_save_keeps_the_old_file_when_a_write_dies(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    ck.atomic_save(fake_ckpt(1), path)

    def dies(obj: object, fh: object) -> None:
        fh.write(b"partial bytes")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(OSError):
        ck.atomic_save(fake_ckpt(2), path)
    monkeypatch.undo()
    assert ck.load_checkpoint_file(path)["epoch"] == 1


def test_weights_only_refuses_arbitrary_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({**fake_ckpt(1), "payload": Path("/etc")}, path)  # any class outside the allow-list
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        ck.load_checkpoint_file(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_last_falls_back_to_previous_with_warning(tmp_path: Path, damage: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    for e in (0, 1, 2):
        ck.atomic_save(fake_ckpt(e), tmp_path / f"epoch-{e:03d}.ckpt")
    ck.atomic_save(fake_ckpt(2), tmp_path / "last.ckpt")
    # the crash hit epoch 2's files: both the last and the newest epoch file are damaged
    for name in ("last.ckpt", "epoch-002.ckpt"):
        p = tmp_path / name
        p.write_bytes(p.read_bytes()[:200] if damage == "truncate" else b"\x00garbage" * 50)
    with caplog.at_level(logging.WARNING):
        found = ck.newest_valid(tmp_path)
    assert found == tmp_path / "epoch-001.ckpt"
    assert "last.ckpt is unreadable" in caplog.text


def test_newer_epoch_file_beats_an_older_last(tmp_path: Path) -> None:
    # killed between writing epoch-003 and last.ckpt
    ck.atomic_save(fake_ckpt(2), tmp_path / "last.ckpt")
    ck.atomic_save(fake_ckpt(3), tmp_path / "epoch-003.ckpt")
    assert ck.newest_valid(tmp_path) == tmp_path / "epoch-003.ckpt"
    assert ck.newest_valid(tmp_path / "absent") is None


def test_mirror_download_skips_corrupt_copies(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    for e in (0, 1):
        ck.atomic_save(fake_ckpt(e), remote / f"epoch-{e:03d}.ckpt")
    ck.atomic_save(fake_ckpt(1), remote / "best.ckpt")
    (remote / "last.ckpt").write_bytes(b"truncated")
    found = ck.find_resume(tmp_path / "local", f"file://{remote}")
    assert found == tmp_path / "local" / "epoch-001.ckpt"
    assert (tmp_path / "local" / "best.ckpt").is_file()
    assert not (tmp_path / "local" / "last.ckpt").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mirror_is_logged_queued_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    remote = tmp_path / "remote"
    remote.write_text("a file where the folder should be: every upload fails")
    io = ck.MirroredCheckpointIO(f"file://{remote}", attempts=2, backoff_s=0.01, cooldown_s=0.0)
    with caplog.at_level(logging.WARNING):
        io.save_checkpoint(fake_ckpt(0), tmp_path / "local" / "epoch-000.ckpt")
        io.save_checkpoint(fake_ckpt(1), tmp_path / "local" / "epoch-001.ckpt")
    assert ck.load_checkpoint_file(tmp_path / "local" / "epoch-001.ckpt")["epoch"] == 1
    assert set(io.pending) == {"epoch-000.ckpt", "epoch-001.ckpt", "manifest.json"}  # the manifest travels too
    assert "queued for retry" in caplog.text
    remote.unlink()  # the server is back
    io.teardown()
    assert not io.pending
    assert sorted(p.name for p in remote.iterdir()) == ["epoch-000.ckpt", "epoch-001.ckpt", "manifest.json"]


def test_dead_s3_endpoint_fails_fast_and_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    io = ck.MirroredCheckpointIO("s3://nobucket/run", attempts=1, cooldown_s=60)
    start = time.monotonic()
    io.save_checkpoint(fake_ckpt(0), tmp_path / "last.ckpt")
    io.save_checkpoint(fake_ckpt(1), tmp_path / "epoch-001.ckpt")  # within the cooldown: no new try
    assert time.monotonic() - start < 20
    assert set(io.pending) == {"last.ckpt", "epoch-001.ckpt", "manifest.json"} and (tmp_path / "last.ckpt").is_file()
    assert ck.find_resume(tmp_path / "empty", "s3://nobucket/run") is None
