"""Unified diffs (quilt patches) parsed and applied the way ``dpkg-source`` applies them: exact context, no fuzz,
hunks may move (an offset). A small own applier rather than ``patch`` (a Debian tool, absent on a plain
python3 machine) or a PyPI one (``patch-ng`` fuzzes silently; ``unidiff`` only parses): fuzz 0 is Debian's own
rule for 3.0 (quilt) packages, so a patch that applies here applies there, and one that does not is counted.

Texts are handled as latin-1 strings: every byte maps to one character and back, so files that are not UTF-8
round-trip unchanged.
"""
from __future__ import annotations

import dataclasses
import re

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DEV_NULL = "/dev/null"


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split at '\n' only (``str.splitlines`` also splits at form feeds and other
    separators that C files and latin-1 text contain: ImageMagick's sources have form feeds)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


class PatchError(ValueError):
    """A patch that cannot be parsed or applied; the message is the reason counted in the manifest."""


@dataclasses.dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[tuple[str, str]]  # (' ' | '-' | '+', line text with its line ending)


@dataclasses.dataclass
class FileDiff:
    old_path: str
    new_path: str
    hunks: list[Hunk]

    def path(self, strip: int = 1) -> str:
        """The file's path inside the tree after removing ``strip`` leading components (quilt's -p)."""
        raw = self.new_path if self.new_path != DEV_NULL else self.old_path
        parts = raw.split("/")
        return "/".join(parts[strip:]) if len(parts) > strip else parts[-1]


@dataclasses.dataclass
class Change:
    """Where one file changed: old-file lines removed, old lines after which text went in, new lines added."""
    removed: list[int] = dataclasses.field(default_factory=list)
    inserted_after: list[int] = dataclasses.field(default_factory=list)
    added: list[int] = dataclasses.field(default_factory=list)


def _path(line: str) -> str:
    name = line[4:].rstrip("\r\n").split("\t")[0].strip()
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name


def header(text: str) -> str:
    """The patch's text before its first diff (the DEP-3 header, a git mail header or free text)."""
    out = []
    for line in text.split("\n"):
        if line.startswith(("--- ", "diff ", "Index: ", "===")):
            break
        out.append(line)
    return "\n".join(out)


def parse(text: str) -> list[FileDiff]:
    """Every file diff of a unified-diff text; text around them (headers, git stats) is ignored."""
    lines = split_lines(text)
    out: list[FileDiff] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            diff = FileDiff(_path(lines[i]), _path(lines[i + 1]), [])
            i += 2
            while i < len(lines) and lines[i].startswith("@@"):
                hunk, i = _hunk(lines, i)
                diff.hunks.append(hunk)
            out.append(diff)
        else:
            i += 1
    return out


def _hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    m = _HUNK.match(lines[i])
    if not m:
        raise PatchError(f"malformed hunk header {lines[i][:60].strip()!r}")
    old_len = int(m.group(2)) if m.group(2) is not None else 1
    new_len = int(m.group(4)) if m.group(4) is not None else 1
    hunk = Hunk(int(m.group(1)), old_len, int(m.group(3)), new_len, [])
    i += 1
    old_left, new_left = old_len, new_len
    while i < len(lines) and (old_left > 0 or new_left > 0 or lines[i].startswith("\\")):
        line = lines[i]
        kind = line[:1]
        if kind == "\\":  # "\ No newline at end of file": the line before has no line ending
            if hunk.lines:
                k, t = hunk.lines[-1]
                hunk.lines[-1] = (k, t.rstrip("\r\n") if t.endswith("\n") else t)
            i += 1
            continue
        if kind in ("\n", "\r"):  # an empty context line whose leading space was lost in transit
            kind, line = " ", " " + line
        if kind not in (" ", "-", "+"):
            raise PatchError(f"hunk ends early ({old_left} old and {new_left} new lines missing)")
        hunk.lines.append((kind, line[1:]))
        old_left -= kind != "+"
        new_left -= kind != "-"
        i += 1
    if old_left < 0 or new_left < 0:
        raise PatchError("hunk longer than its header says")
    return hunk, i


def _find(old: list[str], block: list[str], expect: int, floor: int) -> int:
    """The position nearest ``expect`` (not before ``floor``) where ``block`` matches exactly, or -1."""
    top = len(old) - len(block)
    for delta in range(0, max(top, expect) + 1):
        for pos in (expect + delta, expect - delta) if delta else (expect,):
            if floor <= pos <= top and old[pos:pos + len(block)] == block:
                return pos
        if expect - delta < floor and expect + delta > top:
            break
    return -1


def apply(old: list[str] | None, diff: FileDiff) -> tuple[list[str] | None, Change]:
    """The file's lines after ``diff`` (None: the diff deletes it) and where it changed. Raises PatchError."""
    if old is None:
        if diff.old_path != DEV_NULL and any(h.old_len for h in diff.hunks):
            raise PatchError("the file to patch does not exist")
        old = []
    elif diff.old_path == DEV_NULL and old:
        raise PatchError("the patch creates a file that already exists")
    out: list[str] = []
    change = Change()
    cursor = 0  # next old line (0-based) not yet copied
    for hunk in diff.hunks:
        block = [t for k, t in hunk.lines if k != "+"]
        expect = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        pos = _find(old, block, max(expect, 0), cursor)
        if pos < 0:
            raise PatchError(f"hunk @@ -{hunk.old_start},{hunk.old_len} does not apply (context differs)")
        out.extend(old[cursor:pos])
        old_no, last_kind = pos, ""
        for kind, text in hunk.lines:
            if kind == "+":
                out.append(text)
                change.added.append(len(out))
                if last_kind != "+":
                    change.inserted_after.append(old_no)
            else:
                old_no += 1
                if kind == "-":
                    change.removed.append(old_no)
                else:
                    out.append(text)
            last_kind = kind
        cursor = pos + len(block)
    out.extend(old[cursor:])
    if diff.new_path == DEV_NULL:
        return None, change
    return out, change
