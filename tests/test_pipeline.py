"""The pipeline: parameters, `done` files, resume after a failed step, and what it prints."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.errors import UserError
from streamguard.pipeline import load_steps, results_table, run_pipeline, summarize

# three cheap real steps: imports of the small raw fixture; the second one's source is a parameter
PIPELINE = """
params:
  name: small
  raw: {root}/raw/{{name}}
  runs: {root}/runs/{{name}}
  report: {root}/reports/{{name}}/report.html
  second_source: {root}/missing
steps:
  - name: first
    run: data import codexglue --source {source} --out {{raw}}-1
    done: "{{raw}}-1/manifest.json"
  - name: second
    run: data import codexglue --source {{second_source}} --out {{raw}}-2
    done: "{{raw}}-2/manifest.json"
  - name: third           # no done file: runs every time
    run: data import codexglue --source {source} --out {{raw}}-3
"""


@pytest.fixture()
def pipeline_file(tmp_path: Path, raw_small: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.format(root=tmp_path, source=raw_small))
    return path


def test_params_refer_to_params_and_values_override(tmp_path: Path, pipeline_file: Path) -> None:
    steps, params = load_steps(pipeline_file, {"name": "other"})
    assert params["raw"] == f"{tmp_path}/raw/other" and params["runs"] == f"{tmp_path}/runs/other"
    assert [s["name"] for s in steps] == ["first", "second", "third"]
    assert steps[0]["args"][-2:] == ["--out", f"{tmp_path}/raw/other-1"]
    assert steps[1]["done"] == f"{tmp_path}/raw/other-2/manifest.json" and steps[2]["done"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - name: x\n    run: data import codexglue --source {nowhere} --out o\n")
    with pytest.raises(UserError, match="step x uses unknown placeholder 'nowhere'"):
        load_steps(bad, {})
    bad.write_text("params:\n  a: '{b}'\n  b: '{a}x'\nsteps: []\n")
    with pytest.raises(UserError, match="cycle"):
        load_steps(bad, {})
    with pytest.raises(UserError, match="not found"):
        load_steps(tmp_path / "none.yaml", {})


def test_a_failed_step_stops_the_job_and_a_rerun_resumes_from_it(tmp_path: Path, pipeline_file: Path,
                                                                  raw_small: Path, capsys) -> None:
    with pytest.raises(UserError, match="pipeline step 'second' failed"):
        run_pipeline(pipeline_file, {}, main=main)
    err = capsys.readouterr().err
    logs = tmp_path / "runs" / "small" / "logs"
    assert "✓ first" in err and "x second" in err and "third" not in err
    assert f"full output: {logs / 'second.log'}" in err
    assert "streamguard: error:" in (logs / "second.log").read_text()  # the whole error is in the step's log
    assert (tmp_path / "raw" / "small-1" / "manifest.json").is_file()
    assert not (tmp_path / "raw" / "small-3").exists()

    results = run_pipeline(pipeline_file, {"second_source": str(raw_small)}, main=main)
    assert [(r["name"], r["skipped"]) for r in results] == [("first", True), ("second", False), ("third", False)]
    err = capsys.readouterr().err
    assert "- first" in err and "done" in err and "✓ second" in err and "✓ third" in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("! the checkout")]  # a dirty dev tree
    assert len(lines) == 4  # a header and one line per step, nothing else
    assert "imported train" in (logs / "third.log").read_text()  # what the step printed went to its log

    again = run_pipeline(pipeline_file, {}, only=["third"], main=main)  # done files are not needed for --only
    assert [(r["name"], r["skipped"]) for r in again] == [("third", False)]


def test_closing_table_and_report_path(tmp_path: Path, capsys) -> None:
    report = tmp_path / "reports" / "report.html"
    report.parent.mkdir(parents=True)
    entry = {"test_at_valid_threshold": {"accuracy": {"value": 0.61, "ci": [0.54, 0.68]},
                                         "roc_auc": {"value": 0.655}}}
    trivial = {"test_at_valid_threshold": {"accuracy": {"value": 0.45, "ci": [0.4, 0.5]}, "roc_auc": None}}
    (report.parent / "metrics.json").write_text(json.dumps({"test_items": 199, "entries": {
        "fusion": entry, "all vulnerable": trivial}}))
    assert results_table(tmp_path / "nothing.json") is None
    from rich.console import Console

    summarize({"report": str(report)}, [{"name": "a", "seconds": 61.0, "skipped": False}], 61.2,
              Console(width=100, soft_wrap=True))
    out = capsys.readouterr().out
    assert "pipeline finished in 1 min 01 s" in out and "199 functions" in out
    assert "0.610 [0.540, 0.680]" in out and "0.655" in out and "all vulnerable" in out
    assert f"report: {report}" in out and "mlflow ui --backend-store-uri sqlite:" in out


def test_training_progress_reaches_the_stage_line(tmp_path: Path) -> None:
    import io
    from types import SimpleNamespace

    import torch
    from rich.console import Console

    from streamguard import progress
    from streamguard.train.tracking import StderrProgressBar, progress_bar

    assert isinstance(progress_bar(50), StderrProgressBar)  # outside a pipeline: Lightning's own bar
    fold = tmp_path / "fusion" / "folds" / "gnn" / "fold-1"
    fold.mkdir(parents=True)
    (tmp_path / "fusion" / "mlflow_run_id").write_text("abc\n")
    trainer = SimpleNamespace(max_epochs=3, current_epoch=1, num_training_batches=10, max_steps=-1,
                              global_step=14, sanity_checking=False, default_root_dir=str(fold),
                              callback_metrics={"val_roc_auc": torch.tensor(0.61)})
    with progress.StageDisplay(Console(file=io.StringIO())) as display:
        display.start("fuse")
        bar = progress_bar(50)
        bar._trainer = trainer
        bar.on_train_batch_end(trainer, None, None, None, 3)
        task = display.progress.tasks[0]
        assert (task.completed, task.total) == (14, 30)
        assert task.description == "fuse gnn/fold-1 epoch 2/3" and task.fields["detail"] == "val ROC-AUC 0.610"
    assert progress.active() is None
