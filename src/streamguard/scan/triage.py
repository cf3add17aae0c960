"""What a team has already looked at, applied to a finished scan: in-source suppressions (suppress.py) and a
baseline (baseline.py) move functions out of ``ScanReport.findings``, so neither the report nor the exit
status counts them, while every format still lists them."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from streamguard.scan import baseline as baselines
from streamguard.scan import suppress
from streamguard.scan.results import Finding, ScanReport, Suppressed


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


def apply_baseline(report: ScanReport, known: baselines.Baseline, partial: bool) -> None:
    """Move the flagged functions whose fingerprint the baseline holds to ``baselined`` (each entry matches one
    function: two identical functions need two entries). ``gone``: the entries that match no scanned function,
    None for a ``partial`` scan (``--diff``), which cannot tell a function gone from one not looked at."""
    left = Counter(e["fingerprint"] for e in known.entries)
    kept: list[Finding] = []
    for f in report.findings:
        if f.verdict == "vulnerable" and left[f.fingerprint] > 0:
            left[f.fingerprint] -= 1
            report.baselined.append(f)
        else:
            kept.append(f)
    report.findings = kept
    gone = None
    if not partial:
        seen = Counter(f.fingerprint for f in report.findings if f.verdict != "vulnerable")
        seen.update(s.finding.fingerprint for s in report.suppressed)
        unmatched = left - seen  # still-existing functions that are clean now (or suppressed) are not gone
        gone = []
        for e in known.entries:
            if unmatched[e["fingerprint"]] > 0:
                unmatched[e["fingerprint"]] -= 1
                gone.append({k: e[k] for k in baselines.ENTRY_KEYS})
    report.baseline = {"file": known.path, "entries": len(known.entries), "gone": gone}


def prepare(baseline: Path | None, write_to: Path | None) -> baselines.Baseline | None:
    """Before a scan: ``--baseline`` read and checked, ``--write-baseline``'s folder checked (one line, exit 2)."""
    if write_to is not None:
        baselines.check_target(write_to)
    return baselines.load(baseline) if baseline is not None else None


def apply(report: ScanReport, known: baselines.Baseline | None, write_to: Path | None,
          partial: bool) -> int | None:
    """Suppressions, then the baseline (when given), then ``--write-baseline`` (returns how many it recorded):
    a written baseline holds every flagged, unsuppressed function, those the old baseline held included."""
    apply_suppressions(report)
    if known is not None:
        apply_baseline(report, known, partial)
    if write_to is None:
        return None
    return baselines.write(write_to, report.baselined + report.above(), report.model, report.threshold)
