"""Checkpoint mirroring against a real S3 server on loopback (Ceph radosgw, started by scripts/ceph-s3).

CI exports S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; without them these tests skip.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from streamguard.train.checkpoint import load_checkpoint_file, remote_fs

pytestmark = pytest.mark.s3
DATA = Path(__file__).parent / "fixtures" / "gnn_processed"
SETS = ["hidden=32", "embed_dim=16", "head_hidden=32", "layers=2", "batch_size=8", "patience=50"]


@pytest.fixture
def s3_uri() -> str:
    if not os.environ.get("S3_ENDPOINT_URL"):
        pytest.skip("S3_ENDPOINT_URL is not set: start the server with `eval $(scripts/ceph-s3 start)`")
    import boto3
    bucket = f"sg-{uuid.uuid4().hex[:12]}"
    # boto3 directly: without a LocationConstraint, which radosgw rejects for AWS region names
    boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/run"


def train(out: Path, cache: Path, epochs: int, uri: str, endpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    if endpoint:
        env["S3_ENDPOINT_URL"] = endpoint
    cmd = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
           "--epochs", str(epochs), "--checkpoint-uri", uri, "--tracking-uri", "off", "--seed", "1",
           "--set", f"cache_dir={cache}", *SETS]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def remote_names(uri: str) -> set[str]:
    fs, root = remote_fs(uri)
    return {Path(p).name for p in fs.ls(root, detail=False, refresh=True)}


def test_mirrored_then_resumed_from_s3_when_the_local_dir_is_gone(tmp_path: Path, s3_uri: str) -> None:
    out = tmp_path / "run"
    train(out, tmp_path / "cache", 2, s3_uri)
    assert {"best.ckpt", "last.ckpt", "epoch-000.ckpt", "epoch-001.ckpt", "run"} <= remote_names(s3_uri)
    fs, root = remote_fs(s3_uri)
    fs.get_file(f"{root}/last.ckpt", str(tmp_path / "remote-last.ckpt"))
    assert load_checkpoint_file(tmp_path / "remote-last.ckpt")["epoch"] == 1
    shutil.rmtree(out)  # the spot instance is gone with its disk
    proc = train(out, tmp_path / "cache", 3, s3_uri)
    assert "resuming from" in proc.stderr and "last.ckpt" in proc.stderr
    epochs = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("epoch=")]
    assert epochs == ["epoch=2"]
    assert "epoch-002.ckpt" in remote_names(s3_uri)


class Proxy:
    """A TCP relay to the S3 server that can be cut: the server 'goes away' from the trainer's view."""

    def __init__(self, target: str) -> None:
        url = urlparse(target)
        self.target = (url.hostname, url.port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.alive = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.alive:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.alive = False
        try:  # wakes the thread blocked in accept(); close() alone would not stop it accepting
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_server_going_away_mid_run_does_not_stop_training(tmp_path: Path, s3_uri: str) -> None:
    proxy = Proxy(os.environ["S3_ENDPOINT_URL"])
    out = tmp_path / "run"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    cmd = [sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data", str(DATA), "--out", str(out),
           "--epochs", "4", "--checkpoint-uri", s3_uri, "--tracking-uri", "off", "--set", f"cache_dir={tmp_path}",
           *SETS, "batch_size=2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.startswith("epoch=1"):  # epoch 0 was checkpointed and uploaded by now
            proxy.cut()
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "epoch=3" in rest
    assert "queued for retry" in err
    assert (out / "predictions" / "test.jsonl").is_file()
    assert "epoch-000.ckpt" in remote_names(s3_uri)  # what was sent before the cut is there
