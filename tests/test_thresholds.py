"""Every run records the threshold chosen on valid; predict writes it and the verdict beside each score."""
from __future__ import annotations

import json

import pytest
from processed_fixture import make_processed

from streamguard import thresholds
from streamguard.cli import main
from streamguard.errors import UserError


def _rows(margins, labels):
    return [{"logits": [-m / 2, m / 2], "label": y} for m, y in zip(margins, labels)]


def test_choose_maximises_accuracy_on_valid():
    info = thresholds.choose(_rows([-3, -2, 1.0, 1.5, 2, 3], [0, 0, 0, 0, 1, 1]))
    # the best cut separates the two positives: between margins 1.5 and 2
    assert info["margin_threshold"] == pytest.approx(1.75) and info["valid_value"] == 1.0
    assert info["threshold"] == pytest.approx(1 / (1 + pytest.importorskip("math").exp(-1.75)))
    assert thresholds.choose(_rows([1, 2], [1, 1]))["threshold"] == thresholds.DEFAULT


def test_check_and_verdict():
    assert thresholds.verdict(0.7, 0.7) == "vulnerable" and thresholds.verdict(0.69, 0.7) == "clean"
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(UserError):
            thresholds.check(bad)


def test_lexical_run_records_threshold_and_predict_uses_it(tmp_path):
    data = make_processed(tmp_path)
    (tmp_path / "lex.yaml").write_text("ngram_min: 3\nngram_max: 4\nmax_features: 20000\nc_grid: [1.0]\n")
    run = tmp_path / "run"
    assert main(["train", "lexical", "--data", str(data), "--out", str(run), "--config",
                 str(tmp_path / "lex.yaml")]) == 0
    info = json.loads((run / thresholds.THRESHOLD_FILE).read_text())
    assert 0 < info["threshold"] < 1 and info["n_valid"] == 40 and info["metric"] == "accuracy"
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["threshold"] == info["threshold"] for r in rows)
    assert all(r["verdict"] == ("vulnerable" if r["prob_vulnerable"] >= info["threshold"] else "clean")
               for r in rows)
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out), "--threshold", "0"]) == 0
    assert {json.loads(x)["verdict"] for x in out.read_text().splitlines()} == {"vulnerable"}
    with pytest.raises(SystemExit) as exc:  # out of [0, 1]: a usage error (argparse)
        main(["predict", "--run", str(run), "--data", str(data), "--out", str(out), "--threshold", "2"])
    assert exc.value.code == 2
    # a run from before thresholds were recorded gets one chosen on its valid predictions
    (run / thresholds.THRESHOLD_FILE).unlink()
    assert thresholds.run_threshold(run) == pytest.approx(info["threshold"])
