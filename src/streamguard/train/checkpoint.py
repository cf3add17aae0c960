"""Checkpoints written atomically, mirrored to any fsspec URL, loaded without arbitrary pickle; resume.

A crash mid-write leaves at most a stray ``*.tmp`` file: the checkpoint is written to a temporary file,
fsync'ed, then renamed over the old one. The mirror copy is best effort: an upload that fails (the S3
server went away, a spot instance lost its network) is logged, kept in a queue and retried on the next
save and at the end of training; it never stops training.
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import fsspec
import torch
from lightning.pytorch.plugins.io import CheckpointIO

log = logging.getLogger(__name__)
EPOCH_RE = re.compile(r"^epoch-(\d+)\.ckpt$")
LAST = "last.ckpt"
BEST = "best.ckpt"


def remote_fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a mirror URL; S3 gets short timeouts so a dead server fails fast."""
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        client: dict[str, Any] = {"endpoint_url": endpoint} if endpoint else {}
        if os.environ.get("AWS_DEFAULT_REGION"):
            client["region_name"] = os.environ["AWS_DEFAULT_REGION"]
        options = {"client_kwargs": client, "skip_instance_cache": True,
                   "config_kwargs": {"connect_timeout": 5, "read_timeout": 30,
                                     "retries": {"max_attempts": 2, "mode": "standard"}}}
    fs, root = fsspec.core.url_to_fs(uri, **options)
    if protocol in ("s3", "s3a"):
        fs.retries = 1  # s3fs's own retry loop (5 with back-off) on top of botocore's stalled each failure
    return fs, root.rstrip("/")


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


class MirroredCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO: atomic local files, copied to ``remote_uri`` with retries when given."""

    def __init__(self, remote_uri: str | None = None, attempts: int = 3, backoff_s: float = 0.5,
                 cooldown_s: float = 30.0) -> None:
        self.remote_uri = remote_uri
        self.attempts, self.backoff_s, self.cooldown_s = attempts, backoff_s, cooldown_s
        self._next_try = 0.0
        self.pending: dict[str, Path] = {}  # remote name -> local file still to upload
        self._healthy = True
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        local = Path(path)
        atomic_save(checkpoint, local)
        if self.remote_uri:
            self.pending[local.name] = local
            self.flush()

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        local = Path(path)
        local.unlink(missing_ok=True)
        self.pending.pop(local.name, None)
        if self.remote_uri:
            try:
                fs, root = self._remote()
                fs.rm(f"{root}/{local.name}")
            except Exception as exc:  # noqa: BLE001 - a stale remote copy is harmless: resume validates
                log.warning("could not remove %s from %s: %s", local.name, self.remote_uri, exc)

    def teardown(self) -> None:
        self.flush(final=True)

    def queue(self, local: Path, name: str | None = None) -> None:
        """Queue any file (metrics, predictions) for the mirror; the next flush sends it."""
        if self.remote_uri:
            self.pending[name or local.name] = local

    def _remote(self) -> tuple[fsspec.AbstractFileSystem, str]:
        if self._fs is None:
            self._fs, self._root = remote_fs(self.remote_uri or "")
        return self._fs, self._root

    def flush(self, final: bool = False) -> bool:
        """Try every queued upload; True when the queue is empty afterwards."""
        if not final and not self._healthy and time.monotonic() < self._next_try:
            return False  # the server was down moments ago: do not stall every checkpoint on it
        # After a failure one quick try per flush until the server answers again.
        attempts = self.attempts if (self._healthy or final) else 1
        for name, local in list(self.pending.items()):
            if not local.is_file():
                self.pending.pop(name)
                continue
            if self._put(local, name, attempts):
                self.pending.pop(name)
                self._healthy = True
            else:
                self._healthy = False
                self._next_try = time.monotonic() + self.cooldown_s
                break
        if self.pending:
            log.warning("checkpoint mirror %s unreachable; %d file(s) queued for retry: %s", self.remote_uri,
                        len(self.pending), ", ".join(sorted(self.pending)))
        return not self.pending

    def _put(self, local: Path, name: str, attempts: int) -> bool:
        for attempt in range(attempts):
            try:
                fs, root = self._remote()
                fs.makedirs(root, exist_ok=True)
                fs.put_file(str(local), f"{root}/{name}")
                return True
            except Exception as exc:  # noqa: BLE001 - any transport error: log, back off, try again later
                log.warning("upload of %s to %s failed (attempt %d/%d): %s", name, self.remote_uri,
                            attempt + 1, attempts, exc)
                self._fs = None  # reconnect next time: the old client may hold dead connections
                if attempt + 1 < attempts:
                    time.sleep(self.backoff_s * 2 ** attempt)
        return False


def _progress(ckpt: dict[str, Any]) -> tuple[int, int]:
    return int(ckpt.get("epoch", -1)), int(ckpt.get("global_step", -1))


def _candidates(names: list[str]) -> list[str]:
    """``last.ckpt`` first, then per-epoch files from the newest: the order to look for a usable one."""
    epochs = sorted((n for n in names if EPOCH_RE.match(n)), key=lambda n: -int(EPOCH_RE.match(n).group(1)))
    return ([LAST] if LAST in names else []) + epochs


def _valid(path: Path) -> dict[str, Any] | None:
    try:
        ckpt = load_checkpoint_file(path)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt, or holding objects weights_only refuses
        log.warning("checkpoint %s is unreadable (%s: %s); trying an older one", path, type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "")
        return None
    if not isinstance(ckpt, dict) or not {"state_dict", "epoch", "global_step", "loops"} <= ckpt.keys():
        log.warning("checkpoint %s is incomplete; trying an older one", path)
        return None
    return ckpt


def newest_valid(folder: Path) -> Path | None:
    """The local checkpoint with the most training progress among last.ckpt and the newest epoch file."""
    if not folder.is_dir():
        return None
    names = [p.name for p in folder.iterdir() if p.is_file()]
    best: tuple[tuple[int, int], Path] | None = None
    for name in _candidates(names):
        ckpt = _valid(folder / name)
        if ckpt is None:
            continue
        progress = _progress(ckpt)
        if best is None or progress > best[0]:
            best = (progress, folder / name)
        if name != LAST:  # epoch files are ordered newest first: the first valid one is enough
            break
    return best[1] if best else None


def download_newest(remote_uri: str, folder: Path) -> Path | None:
    """Fetch checkpoints from the mirror, newest first, until one loads; None when none does."""
    try:
        fs, root = remote_fs(remote_uri)
        names = [Path(p).name for p in fs.ls(root, detail=False, refresh=True)] if fs.exists(root) else []
    except Exception as exc:  # noqa: BLE001
        log.warning("cannot list checkpoint mirror %s (%s); starting without it", remote_uri, exc)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for name in _candidates(names) + ([BEST] if BEST in names else []):
        target = folder / name
        tmp = folder / f".{name}.download"
        try:
            fs.get_file(f"{root}/{name}", str(tmp))
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot download %s from %s: %s", name, remote_uri, exc)
            continue
        if _valid(tmp) is None:
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, target)
        if name == BEST:  # a best checkpoint alone still resumes: it holds the full training state
            return target
        if fs.exists(f"{root}/{BEST}") and not (folder / BEST).exists():
            fs.get_file(f"{root}/{BEST}", str(folder / BEST))  # prediction after training needs it
        return target
    return None


def find_resume(folder: Path, remote_uri: str | None) -> Path | None:
    """Where a restarted run continues from: the newest valid local checkpoint, else the mirror's."""
    local = newest_valid(folder)
    if local is not None:
        return local
    if remote_uri:
        return download_newest(remote_uri, folder)
    return None
