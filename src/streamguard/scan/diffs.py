"""``scan --diff REV``: the line ranges a git diff against REV touches, per file, for CI and pre-commit."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from streamguard.errors import UserError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def _git(args: list[str], cwd: Path) -> str:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace",
                             check=False)
    except FileNotFoundError:
        raise UserError("--diff needs git, which is not installed") from None
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
        raise UserError(f"git {' '.join(args[:2])}: {last}")
    return res.stdout


def parse_diff(text: str) -> dict[str, list[tuple[int, int]]]:
    """New-side path -> touched line ranges (inclusive). A pure deletion touches the lines around it."""
    out: dict[str, list[tuple[int, int]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            current = None if target == "/dev/null" else target.removeprefix("b/")
            if current is not None:
                out.setdefault(current, [])
        elif current is not None and (m := _HUNK.match(line)):
            start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
            out[current].append((start, start + count - 1) if count else (max(start, 1), start + 1))
    return out


def changed_ranges(rev: str, cwd: Path | None = None) -> tuple[Path, dict[str, list[tuple[int, int]]]]:
    """The repository's top folder and, per changed file (absolute path), the touched line ranges of the
    working tree against ``rev`` (staged and unstaged changes alike)."""
    cwd = Path(cwd or Path.cwd())
    if rev.startswith("-"):
        raise UserError(f"--diff: {rev!r} is not a revision")
    top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip())
    _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)
    text = _git(["diff", "--no-color", "--no-ext-diff", "--unified=0", "--no-renames", rev, "--"], top)
    return top, {str(top / path): ranges for path, ranges in parse_diff(text).items()}


def touches(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= end and start <= b for a, b in ranges)
