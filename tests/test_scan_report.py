"""Scan results a reviewer can act on (issue 29): the low-FPR operating point, the flagged share, relative paths,
the format registry and its JSON Schema, percent-encoded SARIF URIs, an 80-column table."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from scan_fixture import make_bundle

from streamguard import thresholds
from streamguard.cli import main
from streamguard.errors import UserError
from streamguard.provenance import sha256_file
from streamguard.scan import formats
from streamguard.scan.run import FORMATS

FIXTURES = Path(__file__).parent / "fixtures"
CODE = "int f{n}(char *s)\n{{\n\tchar b[{n}];\n\tstrcpy(b, s);\n\treturn b[0] + {n};\n}}\n\n"


@pytest.fixture(scope="module")
def model(processed_small, tmp_path_factory):
    return make_bundle(processed_small, tmp_path_factory.mktemp("reportmodel"))


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "proj"
    (root / "lib").mkdir(parents=True)
    (root / "main.c").write_text("".join(CODE.format(n=n) for n in range(1, 9)))
    (root / "lib" / "util.c").write_text("".join(CODE.format(n=n) for n in range(20, 26)))
    return root


def _rows(margins, labels):
    return [{"logits": [-m / 2, m / 2], "label": y} for m, y in zip(margins, labels)]


def test_operating_point_at_a_target_fpr():
    # 10 negatives, 4 positives (2.2, 3, 4, 5); one negative (2.5) scores above a positive
    rows = _rows([-3, -2, -1, -1, 0, 0.5, 1, 1.5, 2, 2.5, 2.2, 3, 4, 5], [0] * 10 + [1] * 4)
    info = thresholds.roc_record(rows, target=0.0)
    op = info["operating_point"]
    assert op["fpr"] == 0.0 and op["fnr"] == 0.25 and op["margin_threshold"] == pytest.approx(3)
    assert op["valid_flagged_share"] == pytest.approx(3 / 14, abs=1e-6)
    tenth = thresholds.point_at_fpr(info["valid_roc"], 0.1)  # one false positive allowed: the 2.5 negative
    assert tenth["fpr"] == pytest.approx(0.1) and tenth["fnr"] == 0 and tenth["margin_threshold"] == pytest.approx(2.2)
    assert thresholds.point_at_fpr(info["valid_roc"], 0.05) == op | {"target_fpr": 0.05}
    assert thresholds.roc_record(_rows([1, 2], [1, 1])) == {}  # one class: nothing to choose on


def test_resolve_specs_and_the_fallback_of_an_old_bundle(tmp_path):
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    rows = [{**r, "prob_vulnerable": 0.5} for r in _rows([-2, -1, 0, 1, 2, 3], [0, 0, 0, 1, 1, 1])]
    (run / "predictions" / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / thresholds.THRESHOLD_FILE).write_text(json.dumps({"threshold": 0.4}))  # recorded before ROC curves
    point = thresholds.resolve(None, run, 0.4)  # computed from the run's valid predictions
    assert point.rule == "fpr:0.02" and point.fpr == 0.0 and point.note == ""
    assert point.threshold == pytest.approx(1 / (1 + 2.718281828459045 ** -1))
    assert thresholds.resolve("accuracy", run, 0.4).threshold == 0.4
    assert thresholds.resolve("0.73", run, 0.4).rule == "fixed"
    for bad in ("fpr:2", "fpr:x", "fpr:nan", "most", "1.5"):
        with pytest.raises(UserError):
            thresholds.resolve(bad, run, 0.4)
    (run / "predictions" / "valid.jsonl").unlink()  # an old bundle: no ROC, no predictions
    old = thresholds.resolve(None, run, 0.4)
    assert old.threshold == 0.4 and old.rule == "accuracy" and "fell back" in old.note and "re-export" in old.note


def _resign(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        entry.update(sha256=sha256_file(bundle / rel), bytes=(bundle / rel).stat().st_size)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_scan_defaults_to_the_low_fpr_point_and_says_so(model, tree, tmp_path, capsys, monkeypatch):
    run, bundle = model
    recorded = json.loads((bundle / "model" / thresholds.THRESHOLD_FILE).read_text())
    assert recorded["operating_point"]["target_fpr"] == 0.02 and recorded["valid_roc"]["n_neg"] > 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # outside the tree: paths still come out relative, to the tree
    out = tmp_path / "r.json"
    assert main(["scan", str(tree), "--model", str(bundle), "--format", "json", "--out", str(out),
                 "--fail-on", "none"]) == 0
    rep = json.loads(out.read_text())
    assert rep["operating_point"]["rule"] == "fpr:0.02" and rep["threshold"] == pytest.approx(
        recorded["operating_point"]["threshold"])
    assert rep["root"] == str(tree) and {f["path"] for f in rep["findings"]} == {"main.c", "lib/util.c"}
    assert rep["summary"]["flagged_share"] == pytest.approx(rep["summary"]["vulnerable"] / 14, abs=1e-6)
    assert "functions flagged" in capsys.readouterr().err
    jsonschema.validate(rep, formats.json_schema(), format_checker=jsonschema.FormatChecker())
    acc = tmp_path / "a.json"
    main(["scan", str(tree), "--model", str(bundle), "--format", "json", "--out", str(acc), "--threshold",
          "accuracy", "--fail-on", "none"])
    acc_point = json.loads(acc.read_text())["operating_point"]
    assert acc_point["threshold"] == pytest.approx(recorded["threshold"]) and acc_point["rule"] == "accuracy"
    assert acc_point["valid_fpr"] == recorded["valid_fpr"] is not None  # its cost, recorded beside it
    top = tmp_path / "m.json"
    main(["scan", str(tree), "--model", str(bundle), "--format", "json", "--out", str(top), "--max-findings", "3"])
    rep = json.loads(top.read_text())
    assert rep["summary"]["vulnerable"] == 3 and rep["operating_point"]["rule"] == "max-findings"
    assert [f["verdict"] for f in rep["findings"][:4]] == ["vulnerable"] * 3 + ["clean"]
    # a bundle exported before operating points were recorded still loads, on its accuracy cut, and says so
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    (old / "model" / thresholds.THRESHOLD_FILE).write_text(json.dumps({"threshold": recorded["threshold"]}))
    _resign(old)
    capsys.readouterr()
    main(["scan", str(tree), "--model", str(old), "--format", "json", "--out", str(out), "--fail-on", "none"])
    assert "fell back to the accuracy cut" in capsys.readouterr().err
    assert json.loads(out.read_text())["operating_point"]["rule"] == "accuracy"


def _uri_reference(value: object) -> bool:
    """RFC 3986 URI-reference: only unreserved, reserved and well-formed %XX; a scheme only before the first /."""
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*", value):
        return False
    head = value.split("/", 1)[0]
    return ":" not in head or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", head) is not None


def test_sarif_uris_are_percent_encoded_uri_references(model, tmp_path):
    _, bundle = model
    root = tmp_path / "t"
    odd = root / "sp ace" / "<b>\nnoms-é:x%.c"
    odd.parent.mkdir(parents=True)
    odd.write_text(CODE.format(n=3))
    out = tmp_path / "r.sarif"
    main(["scan", str(root), "--model", str(bundle), "--format", "sarif", "--out", str(out), "--threshold", "0"])
    sarif = json.loads(out.read_text())
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("uri-reference")(_uri_reference)
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema, format_checker=checker)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert uris == {"sp%20ace/%3Cb%3E%0Anoms-%C3%A9%3Ax%25.c"}
    bad = json.loads(json.dumps(sarif).replace("sp%20ace", "sp ace"))
    with pytest.raises(jsonschema.ValidationError):  # the checker is real: a raw space fails it
        jsonschema.validate(bad, schema, format_checker=checker)


def test_table_fits_the_terminal_one_line_per_function(model, tree, tmp_path, monkeypatch):
    _, bundle = model
    long_name = tree / "lib" / ("a_rather_long_folder_name_" * 3) / "with_a_long_file_name_too.c"
    long_name.parent.mkdir()
    long_name.write_text(CODE.format(n=99).replace("f99", "a_function_whose_name_goes_on_and_on_and_on"))
    for cols in ("80", "120"):
        monkeypatch.setenv("COLUMNS", cols)
        out = tmp_path / f"t{cols}.txt"
        assert main(["scan", str(tree), "--model", str(bundle), "--out", str(out), "--evidence", "--threshold", "0",
                     "--fail-on", "none", "--top", "50"]) == 0
        lines = out.read_text().splitlines()
        assert max(len(x) for x in lines) <= int(cols)
        rows = [x for x in lines if re.match(r"\d\.\d{3}  (vulnerable|clean) ", x)]
        assert len(rows) == 15 and any("with_a_long_file_name_too.c:1" in x for x in rows)
        assert any(x.lstrip().startswith("line ") for x in lines)  # --evidence: under the rows
        assert "15 of 15 functions flagged (100.0%) in 3 files" in " ".join(lines)


def test_every_format_is_in_the_registry_with_one_signature(model, tree, tmp_path, monkeypatch):
    _, bundle = model
    assert set(FORMATS) == set(formats.REGISTRY)
    assert formats.REGISTRY["table"].top == 20 and formats.REGISTRY["json"].top is None
    for name in FORMATS:
        out = tmp_path / f"r.{name}"
        assert main(["scan", str(tree), "--model", str(bundle), "--format", name, "--out", str(out), "--root",
                     str(tree), "--fail-on", "none"]) == 0
        text = out.read_text()
        assert f"{tree}/main.c" not in text and f"{tree}/lib" not in text  # relative paths only
        assert "flagged" in text or name in ("json", "sarif")
        if name in ("json", "sarif"):
            doc = json.loads(text)
            share = doc["summary"] if name == "json" else doc["runs"][0]["properties"]["summary"]
            assert 0 <= share["flagged_share"] <= 1


def test_diff_paths_are_relative_to_the_repository(model, tmp_path, monkeypatch):
    import subprocess
    _, bundle = model
    repo = tmp_path / "repo"
    (repo / "src" / "sub").mkdir(parents=True)
    (repo / "src" / "sub" / "a.c").write_text(CODE.format(n=1))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=repo, check=True)
    (repo / "src" / "sub" / "a.c").write_text(CODE.format(n=1) + CODE.format(n=2))
    monkeypatch.chdir(repo / "src")  # a folder inside the repository
    out = tmp_path / "d.json"
    assert main(["scan", "sub", "--diff", "HEAD", "--model", str(bundle), "--format", "json", "--out", str(out),
                 "--fail-on", "none"]) == 0
    rep = json.loads(out.read_text())
    assert rep["root"] == str(repo) and [f["path"] for f in rep["findings"]] == ["src/sub/a.c"]


def test_bad_operating_point_options_exit_2(model, tree):
    _, bundle = model
    base = ["scan", str(tree), "--model", str(bundle), "--format", "json", "--out", str(tree / "r.json")]
    with pytest.raises(SystemExit) as exc:  # out of range: a usage error (argparse)
        main([*base, "--max-findings", "-1"])
    assert exc.value.code == 2
    for bad in (["--threshold", "fpr:abc"], ["--threshold", "fpr:1"],
                ["--threshold", "best"], ["--threshold", "1.5"]):
        assert main([*base, *bad]) == 2
