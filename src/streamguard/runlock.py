"""One writer per output folder: a stage takes an exclusive lock on its output directory before it writes,
and a second process aimed at the same folder stops at once with one line instead of interleaving its files
with the first one's (both used to exit 0, the slower one's files silently winning).

The lock is an OS-level file lock (``filelock``) on ``<dir>/.streamguard.lock``: the kernel releases it when
the holder dies, even by SIGKILL, so a killed run never leaves a stale lock behind. The file itself stays.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from streamguard.atomic import make_dir
from streamguard.errors import UserError

LOCK_NAME = ".streamguard.lock"
_locks: dict[str, FileLock] = {}
_guard = threading.Lock()


def _lock_for(lock_file: Path) -> FileLock:
    key = str(lock_file.resolve())
    with _guard:  # one object per lock: a stage nested in another (fusion folds) re-enters, not deadlocks
        if key not in _locks:
            _locks[key] = FileLock(key, timeout=0, thread_local=False)
        return _locks[key]


@contextlib.contextmanager
def locked(folder: str | Path, what: str = "output folder") -> Iterator[Path]:
    """Hold the folder's lock for the block (making the folder first); refuse if another process holds it."""
    folder = make_dir(Path(folder), what)
    with locked_file(folder / LOCK_NAME, folder):
        yield folder


@contextlib.contextmanager
def locked_file(lock_file: Path, target: Path) -> Iterator[None]:
    """Hold ``lock_file`` (its folder must exist) while writing ``target``, which may not exist yet (export
    writes a new folder: its lock lies beside it, ``.NAME.export.lock``)."""
    lock = _lock_for(Path(lock_file))
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"{target} is in use by another streamguard process (lock {lock_file}); "
                        "wait for it to finish or choose another output") from None
    except OSError as exc:
        raise UserError(f"cannot lock {target}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()
