"""In-source suppressions: a comment ``streamguard: ignore`` or ``streamguard: ignore[reason]`` inside a function,
or in the comment block directly above it, keeps that function out of the findings (it is still reported as
suppressed, with the reason)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = b"streamguard:"     # files without it are not split into lines at all
_IGNORE = re.compile(r"streamguard:[ \t]*ignore\b(?:\[([^\]\n]*)\])?")
MAX_ABOVE = 30               # lines of a comment block above a function that are looked at


@dataclass(frozen=True)
class Marker:
    line: int                # 1-based line of the comment
    reason: str              # "" when none was given


def _in_comment(line: str, start: int) -> bool:
    """The marker is in a comment: after ``//`` or ``/*`` on its line, or on a ``*`` continuation line."""
    before = line[:start]
    return "//" in before or "/*" in before or before.strip() == "*"


def _marker(line: str, number: int) -> Marker | None:
    for m in _IGNORE.finditer(line):
        if _in_comment(line, m.start()):
            return Marker(number, (m.group(1) or "").strip())
    return None


def _comment_line(text: str) -> bool:
    s = text.strip()
    return s.startswith(("//", "/*", "*")) or s.endswith("*/")


def find(lines: list[str], start_line: int, end_line: int) -> Marker | None:
    """The marker for the function on ``start_line..end_line`` (1-based) of ``lines``: one inside it, else one in
    the comment lines that end directly above it (a blank line ends that block)."""
    for n in range(start_line, min(end_line, len(lines)) + 1):
        if (m := _marker(lines[n - 1], n)) is not None:
            return m
    n = start_line - 1
    while n >= 1 and start_line - n <= MAX_ABOVE and _comment_line(lines[n - 1]):
        if (m := _marker(lines[n - 1], n)) is not None:
            return m
        n -= 1
    return None


def file_lines(root: Path, path: str) -> list[str] | None:
    """The lines of a scanned file when it holds a marker at all (None: no marker, or unreadable now)."""
    try:
        data = (root / path).read_bytes()
    except OSError:
        return None
    return data.decode("utf-8", errors="replace").split("\n") if MARKER in data else None
