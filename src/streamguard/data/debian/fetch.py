"""Source package files downloaded once into a cache, verified against the index's sha256 before any use.

A download goes to ``NAME.part`` and resumes from it (HTTP Range) after an interruption; only a file whose
sha256 matches the index is renamed to ``NAME``. A cached file is checked again before it is used, so a file
changed on disk is fetched anew, never trusted.
"""
from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

RETRIES = 4
TIMEOUT = 60
_CHUNK = 1 << 20


class FetchError(OSError):
    """A file that could not be downloaded and verified; the message is the reason counted."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, part: Path, size: int) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "streamguard-collect"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
        mode = "ab" if have and resp.status == 206 else "wb"  # a server ignoring Range sends the whole file
        with open(part, mode) as fh:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                fh.write(block)


def fetch(url: str, sha256: str, size: int, cache: Path, fallback: str = "") -> Path:
    """The verified local copy of ``url`` in ``cache`` (downloaded when missing or not matching); when the
    server does not have it (HTTP 404), from ``fallback``."""
    cache.mkdir(parents=True, exist_ok=True)
    name = url.rsplit("/", 1)[-1]
    final, part = cache / name, cache / f"{name}.part"
    if final.exists():
        if sha256_of(final) == sha256:
            return final
        final.unlink()
    last = ""
    for attempt in range(RETRIES):
        try:
            _download(url, part, size)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {str(exc)[:100]}"
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (404, 410):
                if fallback and url != fallback:
                    url = fallback
                    continue
                break
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 416:
                part.unlink(missing_ok=True)
            time.sleep(min(8, 2 ** attempt) * 0.5)
            continue
        if part.stat().st_size < size:
            last = f"short download ({part.stat().st_size} of {size} bytes)"
            continue
        if sha256_of(part) == sha256:
            os.replace(part, final)
            return final
        last = "sha256 does not match the index"
        part.unlink()  # a corrupt partial file must not be resumed
    raise FetchError(f"{name}: {last}")
