"""The evaluate stage end to end: grouping, outputs, escaping, and the CLI's errors."""
from __future__ import annotations

import base64
import html
import json

import pytest
from evaluate_fixtures import make_processed, make_run, peer_functions, run_rows

from streamguard.cli import main
from streamguard.config import EvaluateConfig
from streamguard.errors import UserError
from streamguard.evaluate.report import render_html
from streamguard.evaluate.runs import group_runs, select_seeds
from streamguard.evaluate.stage import evaluate


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for seed in (1, 2, 3):
        make_run(root, f"gnn-seed{seed}", "gnn", seed, skill=0.8, n=300, curves=True)
        make_run(root, f"fusion-seed{seed}", "fusion", seed, skill=1.4, n=300)
    make_run(root, "lexical", "lexical", 42, skill=1.0, n=300)
    out = root / "report"
    res = evaluate([str(root / "gnn-seed*"), str(root / "fusion-seed*"), str(root / "lexical")], out,
                   EvaluateConfig(bootstrap=1000))
    return root, out, res


def test_grouping_rule(report):
    root, _, _ = report
    groups = group_runs([str(root / "gnn-seed*"), str(root / "lexical"), f"best={root / 'fusion-seed1'}"])
    assert [(g.name, g.model, g.seeds) for g in groups] == [("gnn", "gnn", [1, 2, 3]), ("lexical", "lexical", [42]),
                                                            ("best", "fusion", [1])]
    assert select_seeds(groups, "2")[0].seeds == [1, 2]
    assert select_seeds(groups[:1], "1,3")[0].seeds == [1, 3]
    with pytest.raises(UserError, match="mix model kinds"):
        group_runs([f"both={root / 'gnn-seed1'}", f"both={root / 'lexical'}"])


def test_outputs_and_numbers(report):
    _root, out, _res = report
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["entries"]) == {"gnn", "fusion", "lexical", "all vulnerable"}
    fusion = saved["entries"]["fusion"]["test_at_valid_threshold"]
    assert len(fusion["accuracy"]["per_seed"]) == 3 and fusion["accuracy"]["std_over_seeds"] is not None
    lo, hi = fusion["accuracy"]["ci"]
    assert lo <= fusion["accuracy"]["value"] <= hi
    trivial = saved["entries"]["all vulnerable"]["test_at_valid_threshold"]
    assert trivial["recall"]["value"] == 1.0 and trivial["accuracy"]["value"] == pytest.approx(
        saved["test_vulnerable_share"])
    assert len(saved["paired"]) == 6  # 4 entries, every pair
    pair = next(p for p in saved["paired"] if {p["a"], p["b"]} == {"gnn", "fusion"})
    assert len(pair["mcnemar"]["runs"]) == 3  # matched seeds
    assert saved["across_seeds"][0]["accuracy"]["n"] == 3
    assert set(saved["per_project"]) == {"FFmpeg", "qemu"}
    assert any(p["note"] == "published, not measured" for p in saved["published"])
    md = (out / "report.md").read_text()
    assert "published, not measured" in md and "| fusion |" in md
    cal = saved["calibration"]["fusion"]  # ECE before/after, fitted on valid, measured on test
    assert cal["test"]["n"] == saved["test_items"] and 0 <= cal["test"]["ece_temperature"] <= 1
    assert "## Calibration (test)" in md and "ECE raw" in md


def test_html_is_self_contained_with_plots(report):
    _, out, _ = report
    page = (out / "report.html").read_text()
    images = page.count("data:image/png;base64,")
    assert images == 4  # ROC/PR, confusion, calibration, training curves
    first = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in page and "src=\"http" not in page


def test_function_code_is_escaped():
    res = {"settings": {"threshold_metric": "accuracy", "bootstrap": 1000, "seed": 1}, "test_items": 1,
           "valid_items": 1, "entries": {}, "published": [], "paired": [], "across_seeds": [],
           "per_project": {}, "warnings": []}
    code = 'int f(char *s) { /* </code></pre><script>alert("x")</script> */ return s[0] < 1 && 2; }'
    examples = {"note": "n", "items": [{"kind": "false negative", "id": "X<b>", "project": "qemu", "label": 1,
                                        "prob": 0.1, "code": code}]}
    page = render_html(res, {}, examples)
    assert "<script>" not in page and "X<b>" not in page
    assert html.escape(code) in page


def test_peers_and_code_examples_end_to_end(tmp_path):
    funcs = peer_functions()
    for f in funcs:  # a real function carrying markup in a comment must come out escaped
        f["func"] = "/* <script>alert(1)</script> */\n" + f["func"]
    data = make_processed(tmp_path / "data", funcs)
    make_run(tmp_path, "lexical", "lexical", 1, skill=1.0, rows=run_rows(funcs))
    out = tmp_path / "rep"
    res = evaluate([str(tmp_path / "lexical")], out, EvaluateConfig(peers=["flawfinder"]), data_dir=data)
    assert res["entries"]["flawfinder"]["kind"] == "peer"
    assert 0 <= res["entries"]["flawfinder"]["level"] <= 5
    assert any(p["b"] == "flawfinder" or p["a"] == "flawfinder" for p in res["paired"])
    page = (out / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run directory not found" in err
    make_run(tmp_path, "lex", "lexical", 1, n=50)
    assert main(["evaluate", "--runs", str(tmp_path / "lex"), "--out", str(tmp_path / "r"),
                 "--peers", "flawfinder"]) == 2
    assert "--peers needs --data" in capsys.readouterr().err
    assert main(["evaluate", "--runs", str(tmp_path / "lex"), "--out", str(tmp_path / "r"),
                 "--set", "bootstrap=10"]) == 2
    assert "at least 1000" in capsys.readouterr().err


def test_cli_writes_the_reports(tmp_path, capsys):
    make_run(tmp_path, "lex", "lexical", 1, n=80)
    assert main(["evaluate", "--runs", str(tmp_path / "lex"), "--out", str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"metrics.json", "report.md", "report.html"}
