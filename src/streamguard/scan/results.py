"""The typed results of a scan: findings (one per scored function), file accounting, the whole report.

A report keeps one ``Finding`` per scored function (the JSON lists every function), so its size grows with the
tree: a finding is a slotted frozen dataclass (no per-object ``__dict__``: about 0.35 KB with its strings and
numbers, 652,880 of them on the whole kernel tree) and a verdict cut that changes nothing makes no copies. The
writers stream the findings out (formats.py), so the report is the whole of a scan's memory for its results."""
from __future__ import annotations

import math
import os
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamguard.evaluate.calibration import Calibration


@dataclass(frozen=True)
class LineEvidence:
    """One source line (1-based, in the file) and how much it moved the score towards "vulnerable"."""
    line: int
    score: float
    text: str


@dataclass(frozen=True)
class Score:
    """The result of ``Detector.score`` for one piece of code."""
    prob: float                 # P(vulnerable), calibrated when the model carries a calibration; NaN: not processed
    threshold: float            # the cut on raw_prob
    verdict: str                # "vulnerable" | "clean" | "error"
    evidence: tuple[LineEvidence, ...] = ()
    error: str | None = None
    raw_prob: float | None = None  # the model's own score (the verdict compares it with the threshold)


@dataclass(frozen=True, slots=True)
class Finding:
    path: str                   # relative to the scan root
    function: str
    start_line: int
    end_line: int
    score: float                # calibrated P(vulnerable) (evaluate/calibration.py); raw for an uncalibrated model
    threshold: float            # the verdict cut, on raw_score
    verdict: str
    evidence: tuple[LineEvidence, ...] = ()
    fingerprint: str = ""       # survives moves, layout, comments, renamed locals (scan/fingerprint.py)
    raw_score: float | None = None  # the model's own score; None: the same as score

    @property
    def raw(self) -> float:
        """The score verdicts are cut on: calibration moves what is shown, never a verdict."""
        return self.score if self.raw_score is None else self.raw_score

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "raw_score": self.raw}


@dataclass(frozen=True)
class Suppressed:
    """A scored function kept out of the findings by a ``streamguard: ignore[reason]`` comment (suppress.py)."""
    finding: Finding
    reason: str                 # "" when the comment gave none
    line: int                   # the comment's line

    def to_dict(self) -> dict[str, Any]:
        return {**self.finding.to_dict(), "suppression": {"kind": "inSource", "justification": self.reason,
                                                          "line": self.line}}


@dataclass(frozen=True)
class FileResult:
    path: str
    status: str                 # "scanned" | "skipped"
    reason: str | None = None   # why skipped (or a note for scanned files, e.g. "non-UTF-8")
    detail: str = ""
    functions: int = 0
    non_utf8: bool = False


@dataclass
class ScanReport:
    findings: list[Finding]     # every scored function, highest score first
    files: list[FileResult]
    model: dict[str, Any]
    threshold: float
    root: str
    rejected: list[dict[str, Any]] = field(default_factory=list)  # functions found but not scorable, with reason
    seconds: float = 0.0
    operating_point: dict[str, Any] = field(default_factory=dict)  # how the threshold was chosen (thresholds.py)
    # kept out of ``findings`` by triage.py: in-source suppressions (any verdict), flagged functions in --baseline
    suppressed: list[Suppressed] = field(default_factory=list)
    baselined: list[Finding] = field(default_factory=list)
    baseline: dict[str, Any] | None = None   # file, entries, gone (entries matching no scanned function)
    calibration: Calibration | None = None  # what turned raw scores into the shown ones (None: none)
    cache: dict[str, int] = field(default_factory=dict)  # with --cache: files from it, parsed, functions re-scored

    def above(self, cut: float | None = None) -> list[Finding]:
        """The findings whose raw score is at or above ``cut`` (the threshold by default)."""
        cut = self.threshold if cut is None else cut
        return [f for f in self.findings if f.raw >= cut]

    def summary(self) -> dict[str, Any]:
        skipped = Counter(f.reason for f in self.files if f.status == "skipped")
        return {"files_scanned": sum(f.status == "scanned" for f in self.files),
                "files_skipped": sum(skipped.values()), "skipped_by_reason": dict(sorted(skipped.items())),
                "files_non_utf8": sum(f.non_utf8 for f in self.files),
                "functions_scored": self.scored(), "functions_rejected": len(self.rejected),
                "vulnerable": len(self.above()), "flagged_share": self.flagged_share(),
                "suppressed": len(self.suppressed), "baselined": len(self.baselined),
                "baseline_gone": None if self.baseline is None or self.baseline["gone"] is None
                else len(self.baseline["gone"]),
                "threshold": self.threshold, "seconds": round(self.seconds, 2),
                **({"cache": dict(self.cache)} if self.cache else {})}

    def scored(self) -> int:
        """Every scored function: the findings and those suppressed or baselined."""
        return len(self.findings) + len(self.suppressed) + len(self.baselined)

    def flagged_share(self) -> float:
        """The share of the scored functions reported at or above the threshold (0 when none was scored)."""
        return round(len(self.above()) / self.scored(), 6) if self.scored() else 0.0

    def triage_note(self) -> str:
        """What suppressions and a baseline kept out ("" when neither did)."""
        parts = [f"{len(self.suppressed)} suppressed in source"] if self.suppressed else []
        if self.baseline is not None:
            gone = self.baseline["gone"]
            parts.append(f"{len(self.baselined)} baselined" + ("" if gone is None else
                                                                f" ({len(gone)} baselined functions gone)"))
        return ", ".join(parts)

    def recut(self, threshold: float, operating_point: dict[str, Any], max_findings: int | None = None) -> None:
        """Set the verdict cut; with ``max_findings``, at most that many flagged (a tie across the N-th: none)."""
        if max_findings is not None and len(self.findings) > max_findings:
            threshold = max(threshold, math.nextafter(self.findings[max_findings].raw, math.inf))
        self.threshold = threshold
        self.model = {**self.model, "threshold": threshold}
        shown = self._calibrated_cut(threshold, operating_point)
        self.operating_point = {**operating_point, "threshold": threshold, **shown}
        self.findings = [_cut(f, threshold) for f in self.findings]
        self.suppressed = [replace(s, finding=_cut(s.finding, threshold)) for s in self.suppressed]

    def _calibrated_cut(self, threshold: float, point: dict[str, Any]) -> dict[str, Any]:
        """The cut as a calibrated probability, to read beside the calibrated scores (verdicts stay on raw)."""
        cal = self.calibration
        if cal is None or not cal.active:
            return {}
        shown = cal.one(min(threshold, 1.0))
        desc = point.get("description")
        return {"calibrated_threshold": shown,
                **({"description": f"{desc}; scores are calibrated ({cal.method}): the cut is {shown:.4f} "
                                   "as a calibrated probability"} if desc else {})}

    def shown_threshold(self) -> float:
        """The threshold on the scale of the shown scores."""
        return float(self.operating_point.get("calibrated_threshold", self.threshold))

    def header(self) -> str:
        """One line for every format: what was scanned with what, and what share it flagged."""
        s = self.summary()
        note = self.triage_note()
        return (f"{s['vulnerable']} of {s['functions_scored']} functions flagged ({100 * s['flagged_share']:.1f}%) "
                f"in {s['files_scanned']} files under {self.root}; " + (f"{note}; " if note else "") +
                f"{self.operating_point.get('description') or f'threshold {self.threshold:.4f}'}")


def _cut(f: Finding, threshold: float) -> Finding:
    verdict = "vulnerable" if f.raw >= threshold else "clean"
    if f.threshold == threshold and f.verdict == verdict:
        return f  # the usual case (the scan ran with the final cut): no second copy of every finding
    return replace(f, threshold=threshold, verdict=verdict)


def default_root(paths: list[Path], diff: str | None) -> Path:
    """What report paths are relative to when ``--root`` is not given: with ``--diff``, the repository's top
    folder; else the current folder when every scanned path lies under it (so ``--exclude`` globs keep their
    meaning), otherwise the scanned paths' common folder (never absolute paths in a report)."""
    tops = [Path(os.path.abspath(p)) for p in (paths or [Path(".")])]
    first = tops[0] if tops[0].is_dir() else tops[0].parent
    if diff is not None:
        try:
            res = subprocess.run(["git", "-C", str(first), "rev-parse", "--show-toplevel"], capture_output=True,
                                 text=True, check=False)
        except FileNotFoundError:  # no git: --diff says so itself
            return Path.cwd()
        return Path(res.stdout.strip()) if res.returncode == 0 and res.stdout.strip() else Path.cwd()
    cwd = Path.cwd().resolve()
    if all(t.resolve().is_relative_to(cwd) for t in tops):
        return cwd
    dirs = [t if t.is_dir() else t.parent for t in tops]
    return Path(os.path.commonpath([str(d) for d in dirs]))
