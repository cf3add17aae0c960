"""Scan reports written item by item (scan/streamjson.py, scan/formats.py): the streamed JSON and SARIF are the
bytes of the whole documents, valid against their schemas, and the writers take each finding only after the one
before it is written (they never hold the list of items or the text)."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

import streamguard
from streamguard.data.extract import extract_functions
from streamguard.scan import baseline, formats, streamjson, triage
from streamguard.scan.results import Finding

FIXTURES = Path(__file__).parent / "fixtures"


def _whole(doc: object) -> str:
    """What the writers wrote before they streamed: ``json.dumps`` of the whole document."""
    return formats.dumps(streamjson.materialise(doc))


def test_streamed_json_equals_json_dumps_on_nested_and_empty_iterators():
    doc = {"a": [1, {"b": iter([{"s": "é\n\"x\u2028", "t": (1.5, None)}, [], {}])}], "e": iter([]),
           "n": {"deep": [iter([[iter([1, 2])], "z"])]}, "k": {"plain": [1, [2, {"q": []}]]}}
    twin = {"a": [1, {"b": iter([{"s": "é\n\"x\u2028", "t": (1.5, None)}, [], {}])}], "e": iter([]),
            "n": {"deep": [iter([[iter([1, 2])], "z"])]}, "k": {"plain": [1, [2, {"q": []}]]}}
    buf = io.StringIO()
    formats.dump(doc, buf)
    assert buf.getvalue() == _whole(twin)
    assert json.loads(buf.getvalue())["n"] == {"deep": [[[[1, 2]], "z"]]}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The default model's scan of a copy of the real kernel_c tree, with an in-source suppression, a baseline
    and a rejected function, so every list of both documents has items."""
    root = tmp_path_factory.mktemp("stream") / "kernel_c"
    shutil.copytree(FIXTURES / "kernel_c", root)
    first = next(p for p in sorted(root.rglob("*.c")))
    lines = first.read_text().split("\n")
    fn = extract_functions(first.read_bytes(), "x.c")[0]
    first.write_text("\n".join(lines[:fn.start_line - 1] + ["// streamguard: ignore[reviewed]"]
                               + lines[fn.start_line - 1:]))
    with streamguard.load(None) as det:
        rep = det.scan([root], root=root, evidence=2)
    rep.rejected.append({"path": "lib/x.c", "function": "big", "start_line": 1, "end_line": 9, "reason": "size"})
    triage.apply_suppressions(rep)
    cut = min(rep.findings[5].raw, rep.suppressed[0].finding.raw)  # a few flagged, the suppressed one too
    rep.recut(cut, {"rule": "fixed", "description": "test cut"})
    flagged = rep.above()
    known = baseline.Baseline("b.json", [baseline.entry(f) for f in flagged[:2]])
    triage.apply_baseline(rep, known, None, [root])
    assert rep.suppressed and rep.baselined and rep.above() and rep.files
    return rep


@pytest.mark.parametrize("top", [None, 3])
def test_streamed_reports_are_todays_documents_and_valid(report, top):
    js = formats.write("json", report, top)
    assert js == _whole(formats.json_document(report, top)) == formats.dumps(formats.to_json(report, top))
    doc = json.loads(js)
    assert len(doc["findings"]) == (len(report.findings) if top is None else top)
    jsonschema.validate(doc, formats.json_schema(), format_checker=jsonschema.FormatChecker())
    sarif = formats.write("sarif", report, top)
    assert sarif == _whole(formats.sarif_document(report, top)) == formats.dumps(formats.to_sarif(report, top))
    log = json.loads(sarif)
    jsonschema.validate(log, json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text()))
    assert any("suppressions" in r for r in log["runs"][0]["results"])


class _Watched(list):
    """A findings list that notes, each time an item is taken, how much the writer has written so far."""

    def __init__(self, items: list[Finding], out: io.StringIO):
        super().__init__(items)
        self.out, self.passes = out, []

    def __iter__(self):
        seen = []
        self.passes.append(seen)
        for item in super().__iter__():
            seen.append(len(self.out.getvalue()))
            yield item


@pytest.mark.parametrize("name", ["json", "sarif"])
def test_writers_write_each_finding_before_taking_the_next(report, name):
    """The structure that bounds memory: the writer pulls findings one at a time and writes each before the
    next (a writer that built a list or a string first would take them all with nothing written)."""
    report.recut(report.findings[-1].raw, {})  # every finding flagged, so SARIF writes each too
    out = io.StringIO()
    report.findings = watched = _Watched(report.findings, out)
    formats.write_to(out, name, report)
    written = watched.passes[-1]  # earlier passes are the summary's counts, before anything is written
    assert len(written) == len(report.findings) > 5
    assert all(a < b for a, b in zip(written, written[1:]))
    assert json.loads(out.getvalue())
