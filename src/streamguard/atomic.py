"""Atomic file writes: every output is written to a temporary file in the same folder, flushed to disk, then
renamed over the target with ``os.replace``. A kill at any moment leaves either the old file or the new one,
never a torn mix; at worst a stray ``.NAME.PID.tmp`` file that the next write replaces.

Only a regular file (or a new path) is replaced that way. A target that exists and is anything else (a named
pipe, ``/dev/null``, ``/dev/stdout``, a terminal) is opened and written as it is, in place: renaming over it
would turn the device or pipe into a regular file (run as root, ``--out /dev/null`` used to replace the
machine's ``/dev/null``). The path ``-`` is standard output. Every command that takes ``--out FILE`` (scan,
predict) writes through ``atomic_open``.

One helper for every stage, so that "written atomically" means the same thing everywhere.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from streamguard.errors import UserError


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; not every filesystem allows opening a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def check_writable_file(path: Path) -> None:
    """Refuse, in one line, an output path that is a directory or whose folder cannot be made."""
    path = Path(path)
    if str(path) == STDOUT or is_special(path):
        return
    if path.is_dir():
        raise UserError(f"output {path} is a directory, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: {path.parent} exists and is not a directory") from None
    except PermissionError:
        raise UserError(f"cannot write {path}: permission denied creating {path.parent}") from None


def make_dir(path: Path, what: str = "output folder") -> Path:
    """``mkdir -p`` whose failures (a file in the way, no permission) are one-line user errors."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{what} {path} exists and is not a directory") from None
    except OSError as exc:
        raise UserError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    return Path(path)


STDOUT = "-"


def is_special(path: str | Path) -> bool:
    """An existing path that is neither a regular file nor a directory (a FIFO, a device, a socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def _stream(path: Path, mode: str, encoding: str | None, newline: str | None) -> Iterator[IO[Any]]:
    """Write a special file in place (a pipe blocks until its reader comes, as with ``cat > fifo``)."""
    binary = "b" in mode
    try:
        fh = open(path, mode, encoding=None if binary else encoding, newline=None if binary else newline)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    with fh:
        yield fh


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None, fsync: bool = True) -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose content appears at ``path`` only when the block ends without an error; an
    existing special file (FIFO, device) is written in place instead, never replaced."""
    if str(path) == STDOUT:
        stream = sys.stdout.buffer if "b" in mode else sys.stdout
        yield stream
        stream.flush()
        return
    path = Path(path)
    if is_special(path):
        with _stream(path, mode, encoding, newline) as fh:
            yield fh
        return
    check_writable_file(path)
    tmp = _tmp_path(path)
    binary = "b" in mode
    try:
        fh = open(tmp, mode, encoding=None if binary else encoding, newline=None if binary else newline)
    except PermissionError:
        raise UserError(f"cannot write {path}: permission denied") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def write_text(path: str | Path, text: str, fsync: bool = True) -> Path:
    with atomic_open(path, "w", fsync=fsync) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = False) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def promote(tmp: str | Path, path: str | Path) -> Path:
    """Rename a finished temporary file or folder, made beside ``path``, over ``path`` durably: for output that
    cannot stream through ``atomic_open`` (a download checked before it is used, a copied folder)."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_file():
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def copy_file(src: str | Path, dst: str | Path, chunk: int = 1 << 20) -> Path:
    """Copy ``src`` to ``dst`` atomically (a crash never leaves a half copy at ``dst``)."""
    with open(src, "rb") as fin, atomic_open(dst, "wb") as fout:
        while block := fin.read(chunk):
            fout.write(block)
    return Path(dst)
