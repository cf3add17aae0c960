"""Scan report formats, one registry: name -> writer (one signature: report, options and a text file handle in;
it writes the report there) and its defaults. JSON follows ``resources/scan-result.schema.json``; SARIF 2.1.0 is
for GitHub code scanning; the terminal table is in ``table.py``, the HTML page in ``html.py``.

JSON and SARIF stream: their documents hold generators where a tree gives one item per function (findings,
files, rejected functions, SARIF results), and ``streamjson.dump`` writes them item by item, so writing a report
of 650,000 functions costs no more memory than the report itself (built whole, the kernel tree's JSON document
took 0.9 GB more). The bytes are those of ``json.dumps`` of the whole document (``to_json``, ``to_sarif``). The
table and the HTML page show the top of the report only and are written as one string."""
from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from streamguard.scan import streamjson
from streamguard.scan.fingerprint import SARIF_KEY
from streamguard.scan.results import Finding, ScanReport

JSON_SCHEMA = "scan-result.schema.json"
RULE_ID = "SG0001"
RULE_NAME = "VulnerableLookingFunction"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
HELP = ("A learned detector (StreamGuard, trained on Devign-style data of vulnerability-fixing commits) scored "
        "this function at or above its decision threshold: it resembles functions that were later fixed for a "
        "security bug. The evidence lines are those that moved the score most. This is a ranking signal for "
        "review, not proof of a bug.")


def tool_version() -> str:
    try:
        return metadata.version("streamguard")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _top(report: ScanReport, top: int | None) -> Iterator[Finding]:
    return iter(report.findings) if top is None else itertools.islice(report.findings, top)


def json_document(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    """The ``--format json`` document, its per-function lists as generators (``streamjson``: written one at a
    time, each item's dict made just before it is written)."""
    return {"tool": {"name": "streamguard", "version": tool_version()}, "model": report.model,
            "threshold": report.threshold, "operating_point": report.operating_point, "root": report.root,
            "summary": report.summary(), "findings": (f.to_dict() for f in _top(report, top)),
            "files": (f.__dict__ for f in report.files), "rejected_functions": iter(report.rejected),
            "suppressed": (s.to_dict() for s in report.suppressed),
            "baseline": None if report.baseline is None else {
                **report.baseline, "baselined": [f.to_dict() for f in report.baselined]}}


def to_json(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    """The whole JSON document as one dict (the writer streams ``json_document`` instead)."""
    return streamjson.materialise(json_document(report, top))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``--format json`` (shipped in the package)."""
    return json.loads(resources.files("streamguard.resources").joinpath(JSON_SCHEMA).read_text(encoding="utf-8"))


def uri(path: str) -> str:
    """A report path as a URI reference: spaces, newlines, ``<``, ``%``, ``:`` and non-ASCII percent-encoded."""
    return quote(path, safe="/")


def _severity(score: float) -> str:
    # GitHub maps 0.1-3.9 low, 4.0-6.9 medium, 7.0-8.9 high, 9.0+ critical; a probability is not a CVSS,
    # so scores stay in low..high.
    return f"{min(8.9, max(0.1, 10 * score - 1)):.1f}"


def _result(f: Finding, baseline_state: str | None = None, justification: str | None = None) -> dict[str, Any]:
    """One SARIF result; ``justification`` (None: not suppressed) makes it an in-source suppressed one."""
    region = {"startLine": f.start_line, "endLine": f.end_line}
    loc = {"uri": uri(f.path), "uriBaseId": "%SRCROOT%"}
    evidence = "; ".join(f"line {e.line} ({e.score:+.3g})" for e in f.evidence)
    raw = f" (raw {f.raw:.3f}, threshold {f.threshold:.3f} on raw)" if f.raw != f.score else \
        f" (threshold {f.threshold:.3f})"
    text = (f"Function '{f.function}' scores {f.score:.3f}{raw}"
            + (f"; evidence: {evidence}." if evidence else "."))
    res = {"ruleId": RULE_ID, "ruleIndex": 0, "level": "warning", "rank": round(100 * f.score, 2),
             "message": {"text": text},
             "locations": [{"physicalLocation": {"artifactLocation": loc, "region": region},
                            "logicalLocations": [{"name": f.function, "kind": "function"}]}],
             "relatedLocations": [{"id": i + 1, "message": {"text": f"evidence {e.score:+.3g}"},
                                   "physicalLocation": {"artifactLocation": loc, "region": {"startLine": e.line}}}
                                  for i, e in enumerate(f.evidence)],
             "partialFingerprints": {"primaryLocationLineHash": f"{f.fingerprint}:1", SARIF_KEY: f.fingerprint},
             "properties": {"score": f.score, "raw_score": f.raw, "threshold": f.threshold,
                            "security-severity": _severity(f.score)}}
    if baseline_state:
        res["baselineState"] = baseline_state
    if justification is not None:  # SARIF's in-source suppression (advanced-security/dismiss-alerts acts on it)
        res["suppressions"] = [{"kind": "inSource", **({"justification": justification} if justification else {})}]
    return res


def sarif_document(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    """Results for the functions at or above the threshold (``top`` of them at most), as a generator."""
    flagged = (f for f in _top(report, top) if f.raw >= f.threshold)  # the cut is on the raw score
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
    run = {"tool": {"driver": {"name": "StreamGuard", "version": tool_version(), "semanticVersion": tool_version(),
                               "informationUri": "https://github.com/streamguard/streamguard", "rules": [rule]}},
           "originalUriBaseIds": {"%SRCROOT%": {"uri": root_uri}},
           "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notes}],
           "results": itertools.chain(
               (_result(f, "new" if report.baseline is not None else None) for f in flagged),
               (_result(s.finding, justification=s.reason) for s in report.suppressed
                if s.finding.raw >= s.finding.threshold)),
           "properties": {"model": report.model, "summary": report.summary(), "baseline": report.baseline}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def to_sarif(report: ScanReport, top: int | None = None) -> dict[str, Any]:
    """The whole SARIF log as one dict (the writer streams ``sarif_document`` instead)."""
    return streamjson.materialise(sarif_document(report, top))


def _encode(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False,
                      default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))


def dumps(obj: Any) -> str:
    return _encode(obj) + "\n"


def dump(doc: Any, fh: TextIO) -> None:
    """``dumps(doc)`` written to ``fh``, the iterators in ``doc`` one item at a time."""
    streamjson.dump(doc, fh, _encode)
    fh.write("\n")


@dataclass(frozen=True)
class Options:
    """What every writer may use: ``top`` (None: every finding), ``evidence`` (the table prints evidence lines
    under its rows), ``width`` (the table's columns)."""
    top: int | None = None
    evidence: bool = False
    width: int = 80


Writer = Callable[[ScanReport, Options, TextIO], None]


@dataclass(frozen=True)
class Format:
    name: str
    write: Writer
    top: int | None          # default --top of this format (None: every function)
    help: str


def _json(report: ScanReport, opts: Options, fh: TextIO) -> None:
    dump(json_document(report, opts.top), fh)


def _sarif(report: ScanReport, opts: Options, fh: TextIO) -> None:
    dump(sarif_document(report, opts.top), fh)


def _table(report: ScanReport, opts: Options, fh: TextIO) -> None:
    from streamguard.scan.table import render
    fh.write(render(report, opts))


def _html(report: ScanReport, opts: Options, fh: TextIO) -> None:
    from streamguard.scan.html import to_html
    fh.write(to_html(report, opts.top))


REGISTRY: dict[str, Format] = {f.name: f for f in (
    Format("table", _table, 20, "terminal: one line per function, highest scores first"),
    Format("json", _json, None, "every function and file, machine-readable (resources/" + JSON_SCHEMA + ")"),
    Format("sarif", _sarif, None, "SARIF 2.1.0 for code scanning: the flagged functions"),
    Format("html", _html, 50, "one self-contained page: overview, histogram, per-file table, filters"),
)}


def write_to(fh: TextIO, name: str, report: ScanReport, top: int | None = None, evidence: bool = False,
             width: int | None = None) -> None:
    """The report in format ``name``, written to ``fh``; ``top`` None takes the format's default, ``width`` None
    the terminal's."""
    from streamguard.scan.table import terminal_width
    fmt = REGISTRY[name]
    fmt.write(report, Options(fmt.top if top is None else top, evidence, width or terminal_width()), fh)


def write(name: str, report: ScanReport, top: int | None = None, evidence: bool = False,
          width: int | None = None) -> str:
    """``write_to`` into a string (for the Python API and tests; ``streamguard scan`` writes to its file)."""
    buf = io.StringIO()
    write_to(buf, name, report, top, evidence, width)
    return buf.getvalue()
