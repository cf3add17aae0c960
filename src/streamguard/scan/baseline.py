"""Scan baselines: the findings a team has accepted, keyed by function fingerprint (``scan/fingerprint.py``).

``scan --write-baseline FILE`` records the flagged functions; ``scan --baseline FILE`` then reports only the
flagged functions whose fingerprint is not in it. The file is JSON, versioned, written atomically:
``{"format": "streamguard-scan-baseline", "version": 1, "fingerprint": "v1", "tool": ...,
"model": ..., "threshold": ..., "findings": [{"fingerprint", "path", "function", "start_line", "score"}]}``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamguard import atomic
from streamguard.errors import UserError
from streamguard.scan import fingerprint
from streamguard.scan.results import Finding

FORMAT = "streamguard-scan-baseline"
VERSION = 1
ENTRY_KEYS = ("fingerprint", "path", "function", "start_line")


@dataclass(frozen=True)
class Baseline:
    path: str
    entries: list[dict[str, Any]]   # each: fingerprint, path, function, start_line (score when recorded)


def _fail(path: Path, why: str) -> UserError:
    return UserError(f"baseline {path}: {why}; write a new one with --write-baseline")


def _check_entry(path: Path, i: int, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or any(k not in entry for k in ENTRY_KEYS):
        raise _fail(path, f"finding {i} is not an object with {', '.join(ENTRY_KEYS)}")
    if not isinstance(entry["fingerprint"], str) or not entry["fingerprint"]:
        raise _fail(path, f"finding {i} has no fingerprint")
    return entry


def load(path: Path) -> Baseline:
    """Read and check a baseline file; anything else is one line (UserError, exit 2)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"baseline {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(path, f"not a streamguard scan baseline (no \"format\": \"{FORMAT}\")")
    if type(data.get("version")) is not int or data["version"] != VERSION \
            or data.get("fingerprint") != fingerprint.VERSION:
        raise _fail(path, f"version {data.get('version')!r} with fingerprints {data.get('fingerprint')!r}; this "
                          f"streamguard reads version {VERSION} with fingerprints {fingerprint.VERSION!r}")
    findings = data.get("findings")
    if not isinstance(findings, list):
        raise _fail(path, "\"findings\" is not a list")
    return Baseline(str(path), [_check_entry(Path(path), i, e) for i, e in enumerate(findings)])


def entry(f: Finding) -> dict[str, Any]:
    return {"fingerprint": f.fingerprint, "path": f.path, "function": f.function, "start_line": f.start_line,
            "score": round(f.score, 4)}


def check_target(path: Path) -> None:
    """Before a scan: a --write-baseline path that cannot be written is refused in one line."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--write-baseline {path} is a directory")
    if not path.parent.is_dir():
        raise UserError(f"--write-baseline {path}: folder {path.parent} does not exist")


def write(path: Path, findings: Iterable[Finding], model: dict[str, Any], threshold: float) -> int:
    """Record ``findings`` atomically; returns how many. No timestamp, entries sorted by path and line: rewriting
    an unchanged baseline gives the same bytes, so a committed one only changes when its findings do."""
    from streamguard.scan.formats import tool_version
    rows = sorted((entry(f) for f in findings), key=lambda e: (e["path"], e["start_line"], e["function"]))
    doc = {"format": FORMAT, "version": VERSION, "fingerprint": fingerprint.VERSION,
           "tool": {"name": "streamguard", "version": tool_version()},
           "model": {k: model.get(k) for k in ("name", "kind")}, "threshold": threshold, "findings": rows}
    try:
        atomic.write_json(path, doc)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)
