"""Models loaded once per process, not once per call.

``scan`` scores a tree in chunks of functions, and each chunk's ``predict`` loaded the same files again: the
lexical model's 500,000 terms (and its n-gram table), the transformer's weights. The cache is keyed by the
identity of the files a model is read from (path, inode, size, modification time), so a model written again
in place, as a rerun or an atomic replace does, is loaded anew.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
MAX_MODELS = 4            # a fusion's base models, and the fusion itself
_CACHE: OrderedDict[tuple, Any] = OrderedDict()


def _identity(folder: Path, names: tuple[str, ...] | None) -> tuple:
    paths = [folder / n for n in names] if names is not None else sorted(p for p in folder.iterdir() if p.is_file())
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.append((str(path), None))
            continue
        out.append((str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def cached(what: str, folder: Path, load: Callable[[], T], names: tuple[str, ...] | None = None) -> T:
    """``load()``, or what it returned before for the same files (``names`` in ``folder``; default: all of
    its files). Callers must not mutate what they get."""
    key = (what, _identity(Path(folder), names))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = load()
    _CACHE[key] = value
    while len(_CACHE) > MAX_MODELS:
        _CACHE.popitem(last=False)
    return value


def clear() -> None:
    _CACHE.clear()
