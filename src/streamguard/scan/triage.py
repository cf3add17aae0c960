"""What a team has already looked at, applied to a finished scan: in-source suppressions (suppress.py) and a
baseline (baseline.py) move functions out of ``ScanReport.findings``, so neither the report nor the exit
status counts them, while every format still lists them. ``streamguard scan`` calls ``prepare`` before
scanning, ``apply_suppressions`` before the verdict cut and ``apply_baseline`` after it; Python API users can
call the last two on a ``Detector.scan`` report."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamguard.errors import UserError
from streamguard.scan import baseline as baselines
from streamguard.scan import suppress
from streamguard.scan.results import Finding, ScanReport, Suppressed


def prepare(baseline: Path | None, write_to: Path | None, diff: str | None = None) -> baselines.Baseline | None:
    """Before a scan: ``--baseline`` read and checked, ``--write-baseline``'s folder checked (one line, exit 2)."""
    if write_to is not None:
        if diff is not None:  # it would replace a whole tree's baseline by the diff's few functions
            raise UserError("--write-baseline records a whole scan: run it without --diff")
        baselines.check_target(write_to)
    return baselines.load(baseline) if baseline is not None else None


def apply_suppressions(report: ScanReport) -> None:
    """Move every function with a ``streamguard: ignore`` comment (inside or directly above) to ``suppressed``."""
    root = Path(report.root)
    lines: dict[str, list[str] | None] = {}
    kept: list[Finding] = []
    for f in report.findings:
        if f.path not in lines:
            lines[f.path] = suppress.file_lines(root, f.path)
        text = lines[f.path]
        marker = suppress.find(text, f.start_line, f.end_line) if text is not None else None
        if marker is None:
            kept.append(f)
        else:
            report.suppressed.append(Suppressed(f, marker.reason, marker.line))
    report.findings = kept


def _in_scope(root: Path, scope: Sequence[Path]) -> Any:
    tops = [Path(p).resolve() for p in scope] or [Path(".").resolve()]
    return lambda rel: any((root / rel).resolve().is_relative_to(t) for t in tops)


def _gone(report: ScanReport, entries: list[dict[str, Any]], left: Counter, scope: Sequence[Path]) -> list[dict]:
    """The entries no scanned function matched: still-existing functions that are clean now (or suppressed) are
    not gone, nor are entries for files outside the scanned paths."""
    seen = Counter(f.fingerprint for f in report.findings if f.verdict != "vulnerable")
    seen.update(s.finding.fingerprint for s in report.suppressed)
    unmatched = left - seen
    in_scope = _in_scope(Path(report.root), scope)
    gone = []
    for e in entries:
        if unmatched[e["fingerprint"]] > 0 and in_scope(e["path"]):
            unmatched[e["fingerprint"]] -= 1
            gone.append({k: e[k] for k in baselines.ENTRY_KEYS})
    return gone


def apply_baseline(report: ScanReport, known: baselines.Baseline | None, write_to: Path | None = None,
                   scope: Sequence[Path] | None = None) -> int | None:
    """Move the flagged functions whose fingerprint ``known`` holds to ``baselined`` (each entry matches one
    function: two identical functions need two entries) and list the entries that match no function under
    ``scope`` (the scanned paths; None, for a ``--diff`` scan, which does not see every function: not computed).
    Then ``write_to``: every flagged, unsuppressed function, those the old baseline held included; returns how
    many it recorded (None: nothing written)."""
    if known is not None:
        left = Counter(e["fingerprint"] for e in known.entries)
        kept: list[Finding] = []
        for f in report.findings:
            if f.verdict == "vulnerable" and left[f.fingerprint] > 0:
                left[f.fingerprint] -= 1
                report.baselined.append(f)
            else:
                kept.append(f)
        report.findings = kept
        gone = None if scope is None else _gone(report, known.entries, left, scope)
        report.baseline = {"file": known.path, "entries": len(known.entries), "gone": gone}
    if write_to is None:
        return None
    return baselines.write(write_to, report.baselined + report.above(), report.model, report.threshold)
