"""The typed results of a scan: findings (one per scored function), file accounting, the whole report."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LineEvidence:
    """One source line (1-based, in the file) and how much it moved the score towards "vulnerable"."""
    line: int
    score: float
    text: str


@dataclass(frozen=True)
class Score:
    """The result of ``Detector.score`` for one piece of code."""
    prob: float                 # P(vulnerable); NaN when the code could not be processed
    threshold: float
    verdict: str                # "vulnerable" | "clean" | "error"
    evidence: tuple[LineEvidence, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Finding:
    path: str                   # relative to the scan root
    function: str
    start_line: int
    end_line: int
    score: float
    threshold: float
    verdict: str
    evidence: tuple[LineEvidence, ...] = ()
    fingerprint: str = ""       # stable across moves: hash of the path, name and whitespace-normalised code

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def above(self, cut: float | None = None) -> list[Finding]:
        cut = self.threshold if cut is None else cut
        return [f for f in self.findings if f.score >= cut]

    def summary(self) -> dict[str, Any]:
        skipped = Counter(f.reason for f in self.files if f.status == "skipped")
        return {"files_scanned": sum(f.status == "scanned" for f in self.files),
                "files_skipped": sum(skipped.values()), "skipped_by_reason": dict(sorted(skipped.items())),
                "files_non_utf8": sum(f.non_utf8 for f in self.files),
                "functions_scored": len(self.findings), "functions_rejected": len(self.rejected),
                "vulnerable": len(self.above()), "threshold": self.threshold, "seconds": round(self.seconds, 2)}


_WS = re.compile(r"\s+")


def fingerprint(path: str, name: str, code: str) -> str:
    norm = _WS.sub(" ", code).strip()
    return hashlib.sha256(f"{path}\0{name}\0{norm}".encode("utf-8", errors="replace")).hexdigest()[:32]
