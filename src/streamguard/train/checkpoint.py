"""Checkpoints written atomically, mirrored to any fsspec URL, loaded without arbitrary pickle; resume.

A crash mid-write leaves at most a stray ``*.tmp`` file: the checkpoint is written to a temporary file,
fsync'ed, then renamed over the old one. The mirror copy is best effort: an upload that fails (the S3
server went away, a spot instance lost its network) is logged, kept in a queue and retried on the next
save and at the end of training; it never stops training.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import fsspec
import torch
from lightning.pytorch.plugins.io import CheckpointIO

from streamguard import atomic, redact
from streamguard.atomic import atomic_open, write_json
from streamguard.provenance import sha256_file

log = logging.getLogger(__name__)
redact.install()  # the mirror URL may carry credentials (s3://KEY:SECRET@...): never in a log line
EPOCH_RE = re.compile(r"^epoch-(\d+)\.ckpt$")
LAST = "last.ckpt"
BEST = "best.ckpt"
MANIFEST = "manifest.json"  # name -> size, sha256, epoch of every checkpoint written here


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
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}


def record(path: Path, ckpt: dict[str, Any] | None = None) -> None:
    """Note ``path``'s size and sha256 (and the epoch it holds) in the folder's manifest.json."""
    files = _read_manifest(path.parent)
    entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    if ckpt is not None:
        entry.update({"epoch": int(ckpt.get("epoch", -1)), "global_step": int(ckpt.get("global_step", -1))})
    files[path.name] = entry
    write_json(path.parent / MANIFEST, {"files": files}, sort_keys=True)


def forget(path: Path) -> None:
    files = _read_manifest(path.parent)
    if files.pop(path.name, None) is not None:
        write_json(path.parent / MANIFEST, {"files": files}, sort_keys=True)


def verify(path: Path) -> str | None:
    """Why ``path`` differs from what the manifest recorded when it was written; None when it matches (or
    was never recorded: a kill between the file and its manifest entry, or a run from before manifests)."""
    entry = _read_manifest(path.parent).get(path.name)
    if entry is None:
        return None
    size = path.stat().st_size
    if size != entry.get("size"):
        return f"size {size} bytes, manifest.json says {entry.get('size')}"
    if sha256_file(path) != entry.get("sha256"):
        return "sha256 differs from manifest.json"
    return None


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
        record(local, checkpoint)
        if self.remote_uri:
            self.pending[local.name] = local
            self.pending[MANIFEST] = local.parent / MANIFEST
            self.flush()

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")

    def remove_checkpoint(self, path: Any) -> None:
        local = Path(path)
        local.unlink(missing_ok=True)
        forget(local)
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


def check(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the checkpoint, None) when ``path`` matches its manifest entry and loads whole; else (None, why)."""
    if not path.is_file():
        return None, "is missing"
    reason = verify(path)
    if reason is not None:
        return None, f"is unreadable ({reason})"
    try:
        ckpt = load_checkpoint_file(path)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt, or holding objects weights_only refuses
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return None, f"is unreadable ({type(exc).__name__}: {text})"
    if not isinstance(ckpt, dict) or not {"state_dict", "epoch", "global_step", "loops"} <= ckpt.keys():
        return None, "is incomplete"
    return ckpt, None


def _valid(path: Path) -> dict[str, Any] | None:
    ckpt, why = check(path)
    if ckpt is None:
        log.warning("checkpoint %s %s; trying an older one", path, why)
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
        if not _fetch(fs, f"{root}/{name}", folder / name, remote_uri):
            continue
        if name != BEST and BEST in names and not (folder / BEST).exists():
            _fetch(fs, f"{root}/{BEST}", folder / BEST, remote_uri)  # prediction after training needs it
        return folder / name  # a best checkpoint alone still resumes: it holds the full training state
    return None


def _fetch(fs: fsspec.AbstractFileSystem, remote: str, target: Path, remote_uri: str) -> bool:
    """Download one checkpoint; it replaces ``target`` (and enters the manifest) only when it loads whole."""
    tmp = target.with_name(f".{target.name}.download")
    try:
        fs.get_file(remote, str(tmp))
    except Exception as exc:  # noqa: BLE001
        log.warning("cannot download %s from %s: %s", target.name, remote_uri, exc)
        return False
    ckpt = _valid(tmp)
    if ckpt is None:
        tmp.unlink(missing_ok=True)
        return False
    atomic.promote(tmp, target)
    record(target, ckpt)
    return True


def find_resume(folder: Path, remote_uri: str | None) -> Path | None:
    """Where a restarted run continues from: the newest valid local checkpoint, else the mirror's."""
    local = newest_valid(folder)
    if local is not None:
        return local
    if remote_uri:
        return download_newest(remote_uri, folder)
    return None
