"""evaluate refuses what it cannot compare honestly, and a hostile name never costs the report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluate_fixtures import make_run

from streamguard.cli import main
from streamguard.config import EvaluateConfig
from streamguard.errors import UserError
from streamguard.evaluate import plots
from streamguard.evaluate.stage import evaluate
from streamguard.provenance import sha256_file

CFG = EvaluateConfig(bootstrap=1000)


def _with_checksums(run: Path, test_sha: str) -> Path:
    cfg = json.loads((run / "exp_config.json").read_text())
    cfg["data_sha256"] = {"train.jsonl": "a" * 64, "valid.jsonl": "b" * 64, "test.jsonl": test_sha}
    (run / "exp_config.json").write_text(json.dumps(cfg))
    return run


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("streamguard: error:"), err
    return err


def test_runs_predicted_on_different_data_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _with_checksums(make_run(tmp_path, "a", "gnn", 1, n=80), "c" * 64)
    b = _with_checksums(make_run(tmp_path, "b", "lexical", 1, n=80), "d" * 64)  # a reordered test set
    assert main(["evaluate", "--runs", str(a), str(b), "--out", str(tmp_path / "r")]) == 2
    assert "predicted on different data" in _one_line(capsys)
    assert not (tmp_path / "r" / "report.html").exists()
    _with_checksums(b, "c" * 64)
    assert main(["evaluate", "--runs", str(a), str(b), "--out", str(tmp_path / "r")]) == 0


def _with_raw(run: Path, raw: dict | None = None, data_dir: Path | None = None) -> Path:
    cfg = json.loads((run / "exp_config.json").read_text())
    cfg.update({"raw_sha256": raw} if raw else {"data_dir": str(data_dir)})
    (run / "exp_config.json").write_text(json.dumps(cfg))
    return run


def test_runs_preprocessed_differently_from_the_same_raw_splits_are_compared(tmp_path: Path) -> None:
    """Another tokenizer (the encoder ablation) gives other processed files, but the same functions by id."""
    same = {"train": "1" * 64, "valid": "2" * 64, "test": "3" * 64}
    a = _with_raw(_with_checksums(make_run(tmp_path, "a", "transformer", 1, n=80), "c" * 64), same)
    b = _with_raw(_with_checksums(make_run(tmp_path, "b", "lexical", 1, n=80), "d" * 64), same)
    res = evaluate([str(a), str(b)], tmp_path / "r", CFG)
    assert any("preprocessed differently from the same raw" in w for w in res["warnings"]), res["warnings"]
    _with_raw(b, {**same, "test": "4" * 64})
    with pytest.raises(UserError, match="predicted on different data"):
        evaluate([str(a), str(b)], tmp_path / "r2", CFG)


def test_older_runs_find_their_raw_splits_through_their_data_dir(tmp_path: Path) -> None:
    """A run trained before raw_sha256 was recorded: its data dir's metadata says, while the dir still holds
    the very files the run predicted on."""
    same = {"train": "1" * 64, "valid": "2" * 64, "test": "3" * 64}
    data = tmp_path / "processed"
    data.mkdir()
    for split in ("valid", "test"):
        (data / f"{split}.jsonl").write_text(f"{split} records\n")
    (data / "preprocessing_metadata.json").write_text(json.dumps({"inputs_sha256": same}))
    a = _with_raw(_with_checksums(make_run(tmp_path, "a", "transformer", 1, n=80), "c" * 64), same)
    b = _with_raw(_with_checksums(make_run(tmp_path, "b", "lexical", 1, n=80), sha256_file(data / "test.jsonl")),
                  data_dir=data)
    cfg = json.loads((b / "exp_config.json").read_text())
    cfg["data_sha256"]["valid.jsonl"] = sha256_file(data / "valid.jsonl")
    (b / "exp_config.json").write_text(json.dumps(cfg))
    evaluate([str(a), str(b)], tmp_path / "r", CFG)
    (data / "test.jsonl").write_text("preprocessed again since\n")
    with pytest.raises(UserError, match="predicted on different data"):
        evaluate([str(a), str(b)], tmp_path / "r2", CFG)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", '"0.7"', "1.5", "-0.1", "true"])
def test_bad_probabilities_are_refused_in_one_line(tmp_path: Path, bad: str, capsys: pytest.CaptureFixture) -> None:
    run = make_run(tmp_path, "a", "gnn", 1, n=40)
    path = run / "predictions" / "test.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[3])
    lines[3] = json.dumps(row).replace(json.dumps(row["prob_vulnerable"]), bad, 1)
    path.write_text("\n".join(lines) + "\n")
    assert main(["evaluate", "--runs", str(run), "--out", str(tmp_path / "r")]) == 2
    assert "test.jsonl:4: prob_vulnerable must be a number in [0, 1]" in _one_line(capsys)


def test_math_and_html_in_names_are_plain_text(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a", "gnn", 1, n=80, curves=True)
    name = r"a$\undefinedcmd$b<script>x</script>"
    res = evaluate([f"{name}={run}"], tmp_path / "r", CFG)
    assert not [w for w in res["warnings"] if w.startswith("figure")], res["warnings"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "<script>" not in (tmp_path / "r" / "report.html").read_text()


def test_a_failing_figure_is_left_out_and_the_report_is_written(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> str:
        raise ValueError("a figure that cannot be drawn")
    monkeypatch.setattr(plots, "confusion", broken)
    run = make_run(tmp_path, "a", "gnn", 1, n=80)
    res = evaluate([str(run)], tmp_path / "r", CFG)
    assert any("figure confusion left out" in w for w in res["warnings"])
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'alt="roc_pr"' in html and 'alt="confusion"' not in html
