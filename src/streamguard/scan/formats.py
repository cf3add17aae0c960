"""Scan reports as JSON, SARIF 2.1.0 (GitHub code scanning) and a rich terminal table."""
from __future__ import annotations

import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

from streamguard.scan.results import Finding, ScanReport

RULE_ID = "SG0001"
RULE_NAME = "VulnerableLookingFunction"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
HELP = ("A learned detector (StreamGuard, trained on Devign-style data of vulnerability-fixing commits) scored "
        "this function at or above its decision threshold: it resembles functions that were later fixed for a "
        "security bug. The evidence lines are those that moved the score most. This is a ranking signal for "
        "review, not proof of a bug.")


def _version() -> str:
    try:
        return metadata.version("streamguard")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _top(report: ScanReport, top: int | None) -> list[Finding]:
    return report.findings if top is None else report.findings[:top]


def to_json(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    return {"tool": {"name": "streamguard", "version": _version()}, "model": report.model,
            "threshold": report.threshold, "root": report.root, "summary": report.summary(),
            "findings": [f.to_dict() for f in _top(report, top)],
            "files": [f.__dict__ for f in report.files], "rejected_functions": report.rejected}


def _severity(score: float) -> str:
    # GitHub maps 0.1-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0+ critical; a probability is not a CVSS,
    # so scores stay in low..high.
    return f"{min(8.9, max(0.1, 10 * score - 1)):.1f}"


def _result(f: Finding) -> dict[str, Any]:
    region = {"startLine": f.start_line, "endLine": f.end_line}
    evidence = "; ".join(f"line {e.line} ({e.score:+.3g})" for e in f.evidence)
    text = (f"Function '{f.function}' scores {f.score:.3f} (threshold {f.threshold:.3f})"
            + (f"; evidence: {evidence}." if evidence else "."))
    return {"ruleId": RULE_ID, "ruleIndex": 0, "level": "warning", "rank": round(100 * f.score, 2),
            "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                                                "region": region},
                           "logicalLocations": [{"name": f.function, "kind": "function"}]}],
            "relatedLocations": [{"id": i + 1, "message": {"text": f"evidence {e.score:+.3g}"},
                                  "physicalLocation": {"artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                                                       "region": {"startLine": e.line}}}
                                 for i, e in enumerate(f.evidence)],
            "partialFingerprints": {"primaryLocationLineHash": f"{f.fingerprint}:1"},
            "properties": {"score": f.score, "threshold": f.threshold, "security-severity": _severity(f.score)}}


def to_sarif(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    """Results for the functions at or above the threshold (``top`` of them at most)."""
    flagged = [f for f in _top(report, top) if f.score >= f.threshold]
    rule = {"id": RULE_ID, "name": RULE_NAME,
            "shortDescription": {"text": "Function resembles known-vulnerable C functions"},
            "fullDescription": {"text": HELP}, "help": {"text": HELP, "markdown": HELP},
            "defaultConfiguration": {"level": "warning"},
            "properties": {"tags": ["security", "machine-learning"], "precision": "low",
                           "security-severity": "5.0"}}
    notes = [{"level": "note", "message": {"text": f"skipped {f.path}: {f.reason}" + (f" ({f.detail})" if f.detail
                                                                                         else "")}}
             for f in report.files if f.status == "skipped"]
    root_uri = Path(report.root).resolve().as_uri() + "/"
    run = {"tool": {"driver": {"name": "StreamGuard", "version": _version(), "semanticVersion": _version(),
                               "informationUri": "https://github.com/streamguard/streamguard", "rules": [rule]}},
           "originalUriBaseIds": {"%SRCROOT%": {"uri": root_uri}},
           "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notes}],
           "results": [_result(f) for f in flagged],
           "properties": {"model": report.model, "summary": report.summary()}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _evidence_cell(f: Finding) -> str:
    if not f.evidence:
        return ""
    more = f" (also {', '.join(str(e.line) for e in f.evidence[1:])})" if len(f.evidence) > 1 else ""
    return f"{f.evidence[0].line}: {f.evidence[0].text[:60]}{more}"


def print_table(report: ScanReport, console: Any, top: int | None = 20) -> None:
    from rich.table import Table
    table = Table(title=f"StreamGuard scan ({report.model.get('kind')} model {report.model.get('name')}, "
                        f"threshold {report.threshold:.3f})", show_lines=False)
    for col, kw in (("score", {"justify": "right"}), ("verdict", {}), ("function", {"overflow": "fold"}),
                    ("location", {"overflow": "fold"}), ("top evidence line", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for f in _top(report, top):
        style = "bold red" if f.score >= f.threshold else "dim"
        ev = _evidence_cell(f)
        table.add_row(f"{f.score:.3f}", f.verdict, f.function, f"{f.path}:{f.start_line}-{f.end_line}", ev,
                      style=style)
    console.print(table)
    s = report.summary()
    skipped = ", ".join(f"{n} {r}" for r, n in s["skipped_by_reason"].items()) or "none"
    console.print(f"{s['functions_scored']} functions scored in {s['files_scanned']} files "
                  f"({s['seconds']:.1f} s); {s['vulnerable']} at or above the threshold; "
                  f"files skipped: {skipped}; non-UTF-8 files decoded with replacement: {s['files_non_utf8']}; "
                  f"functions not scored: {s['functions_rejected']}", markup=False, highlight=False)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False,
                      default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o)) + "\n"
