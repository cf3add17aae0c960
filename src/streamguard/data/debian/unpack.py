"""Untrusted source tarballs read safely: members pass ``tarfile``'s ``data`` filter (no absolute paths, no
``..``, no links leaving the tree, no devices) and size caps, and only the regular files asked for are read,
into memory. Nothing is written to disk, so no tree is ever left behind and none can escape its folder.
"""
from __future__ import annotations

import dataclasses
import lzma
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

MEMBER_CAP = 64 * 1024 * 1024        # bytes of one file read from an archive (decompression bombs)
PACKAGE_CAP = 512 * 1024 * 1024      # bytes read from all of one package's archives together
_DEST = "/nonexistent-unpack-root"   # the data filter's notional destination: nothing is extracted there


class UnpackError(ValueError):
    """An archive that cannot be read (corrupt, over the caps); the message is the reason counted."""


@dataclasses.dataclass
class Unpacked:
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # tree path -> bytes
    refused: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (member name, why)
    read_bytes: int = 0


def _strip_top(names: list[str]) -> bool:
    """Source tarballs hold one top folder (``pkg-1.0/``); strip it when every file is under one."""
    names = [n[2:] if n.startswith("./") else n for n in names]
    tops = {n.split("/", 1)[0] for n in names if n}
    return len(tops) == 1 and all("/" in n for n in names if n)


def _refusal(member: tarfile.TarInfo) -> str:
    """Why a member is refused ('' if it is not): stricter than the data filter, which would only strip a
    leading '/', an absolute or '..' path is refused outright."""
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts:
        return "absolute path or '..' component"
    try:
        tarfile.data_filter(member, _DEST)
    except tarfile.FilterError as exc:
        return type(exc).__name__
    return ""


def read_members(archive: Path, want: Callable[[str], bool], prefix: str = "", strip_top: bool = True,
                 into: Unpacked | None = None, package_cap: int = PACKAGE_CAP,
                 member_cap: int = MEMBER_CAP) -> Unpacked:
    """Read the regular files of ``archive`` whose tree path (``prefix`` + name without the top folder)
    ``want`` accepts. Hostile members are refused and listed, never read; the caps raise UnpackError."""
    out = into if into is not None else Unpacked()
    try:
        with tarfile.open(archive, "r:*") as tar:
            safe = []
            for member in tar.getmembers():
                why = _refusal(member)
                if why:
                    out.refused.append((member.name, why))
                elif member.isreg():
                    safe.append(member)
            strip = strip_top and _strip_top([m.name for m in safe])
            for member in safe:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if strip:
                    name = name.split("/", 1)[1] if "/" in name else ""
                path = prefix + name
                if not name or not want(path):
                    continue
                if member.size > member_cap:
                    out.refused.append((member.name, f"over the member cap ({member.size} > {member_cap} bytes)"))
                    continue
                out.read_bytes += member.size
                if out.read_bytes > package_cap:
                    raise UnpackError(f"package over the size cap ({package_cap} bytes read)")
                fh = tar.extractfile(member)
                if fh is not None:
                    out.files[path] = fh.read(member_cap + 1)[:member_cap]
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
        if isinstance(exc, UnpackError):
            raise
        raise UnpackError(f"{archive.name}: unreadable archive ({type(exc).__name__}: {str(exc)[:80]})") from None
    return out
