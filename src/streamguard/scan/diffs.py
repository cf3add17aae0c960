"""``scan --diff REV``: the line ranges a git diff against REV touches, per file, for CI and pre-commit.

Git runs in the repository of each scanned path (not the current folder), with the user's diff settings
that change the output's shape pinned: explicit ``a/``/``b/`` prefixes (``diff.mnemonicPrefix`` writes
``w/``, ``diff.noprefix`` none), ``core.quotePath=false``, no external diff, no colour, no renames. Names
git still C-quotes (``"``, ``\\``, tab, newline) are unquoted, and every name in ``git diff --name-only -z``
that the patch did not account for counts as changed throughout: a changed C file is never lost.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from streamguard.errors import UserError

_HUNK = re.compile(rb"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_PINNED = ["-c", "core.quotePath=false", "-c", "diff.mnemonicPrefix=false", "-c", "diff.noprefix=false",
           "-c", "color.ui=false"]
_DIFF = ["diff", "--no-color", "--no-ext-diff", "--no-renames", "--no-textconv", "--src-prefix=a/",
         "--dst-prefix=b/"]
WHOLE_FILE = [(1, 1 << 62)]
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("t"): 9, ord("n"): 10, ord("v"): 11, ord("f"): 12, ord("r"): 13,
            ord('"'): 34, ord("\\"): 92}


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        res = subprocess.run(["git", *_PINNED, *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise UserError("--diff needs git, which is not installed") from None
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", errors="replace").strip()
        raise UserError(f"git {args[0]} in {cwd}: {err.splitlines()[-1] if err else 'failed'}")
    return res.stdout


def unquote(name: bytes) -> bytes:
    """Git's C quoting of a path (``"a\\"b.c"``, ``"\\303\\251.c"``) undone; an unquoted name as it is."""
    if not (len(name) >= 2 and name[:1] == b'"' and name[-1:] == b'"'):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):  # backslash
            nxt = body[i + 1]
            if 48 <= nxt <= 55 and i + 3 < len(body) and all(48 <= d <= 55 for d in body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _target(line: bytes) -> str | None:
    name = unquote(line[4:].rstrip(b"\n"))
    if name == b"/dev/null":
        return None
    return os.fsdecode(name.removeprefix(b"b/"))


def parse_diff(text: bytes | str) -> dict[str, list[tuple[int, int]]]:
    """New-side path -> touched line ranges (inclusive). A pure deletion touches the lines around it. Hunk
    bodies are skipped by their counts, so an added line that reads ``++ x`` is never taken for a header."""
    data = text.encode() if isinstance(text, str) else text
    out: dict[str, list[tuple[int, int]]] = {}
    current: str | None = None
    body = 0  # lines of the current hunk still to skip
    for line in data.split(b"\n"):
        if body > 0:
            if not line.startswith(b"\\"):  # "\ No newline at end of file" is not counted
                body -= 1
            continue
        if line.startswith(b"+++ "):
            current = _target(line)
            if current is not None:
                out.setdefault(current, [])
        elif current is not None and (m := _HUNK.match(line)):
            old = int(m.group(1)) if m.group(1) is not None else 1
            start, count = int(m.group(2)), int(m.group(3) if m.group(3) is not None else 1)
            out[current].append((start, start + count - 1) if count else (max(start, 1), start + 1))
            body = old + count
    return out


def _top(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    return Path(os.fsdecode(_git(["rev-parse", "--show-toplevel"], folder).strip()))


def changed_ranges(rev: str, cwd: Path | None = None) -> tuple[Path, dict[str, list[tuple[int, int]]]]:
    """The repository's top folder and, per changed file (absolute path), the touched line ranges of the
    working tree against ``rev`` (staged and unstaged changes alike)."""
    if rev.startswith("-"):
        raise UserError(f"--diff: {rev!r} is not a revision")
    top = _top(Path(cwd or Path.cwd()).resolve())
    try:
        _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], top)
    except UserError:
        raise UserError(f"--diff: {rev!r} is not a revision of the repository at {top}") from None
    patch = parse_diff(_git([*_DIFF, "--unified=0", rev, "--"], top))
    names = [os.fsdecode(n) for n in _git([*_DIFF, "--name-only", "-z", rev, "--"], top).split(b"\0") if n]
    out = {str(top / path): ranges for path, ranges in patch.items()}
    for name in names:  # a name the patch parse missed still counts: all of it changed
        out.setdefault(str(top / name), list(WHOLE_FILE))
    return top, out


def changed_in(rev: str, paths: list[Path]) -> dict[str, list[tuple[int, int]]]:
    """``changed_ranges`` over the repositories of ``paths`` (each path's own, whatever the current folder)."""
    out: dict[str, list[tuple[int, int]]] = {}
    tops: set[Path] = set()
    for p in paths or [Path(".")]:
        top, ranges = changed_ranges(rev, Path(p).resolve())
        if top not in tops:
            tops.add(top)
            out.update(ranges)
    return out


def touches(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= end and start <= b for a, b in ranges)
