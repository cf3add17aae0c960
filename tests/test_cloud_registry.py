"""The model registry round trip on MLflow's sqlite store: train with --register, list, register again,
load a version back and predict with it exactly as with the original run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from processed_fixture import make_processed

from streamguard.cli import main
from streamguard.cloud.model_registry import list_versions, tracking_uri

FAST = ["ngram_min=3", "ngram_max=4", "max_features=20000", "c_grid=0.3,3.0"]


def test_register_list_load_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    data = make_processed(tmp_path)
    run = tmp_path / "runs" / "lex"
    assert main(["train", "lexical", "--data", str(data), "--out", str(run), "--set", *FAST,
                 "--register", "devign-lexical"]) == 0
    assert "registered devign-lexical version 1" in capsys.readouterr().out
    assert main(["models", "register", str(run), "devign-lexical"]) == 0
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert "devign-lexical" in listing and "v2" in listing and "v1" in listing and "lexical" in listing
    rows = list_versions(store, "devign-lexical")
    assert [r["version"] for r in rows] == [2, 1] and {r["kind"] for r in rows} == {"lexical"}
    loaded = tmp_path / "loaded"
    assert main(["models", "load", "devign-lexical", "--version", "1", "--out", str(loaded)]) == 0
    assert json.loads((loaded / "exp_config.json").read_text())["model"] == "lexical"
    assert not (loaded / "mlflow.db").exists()
    out = tmp_path / "pred.jsonl"
    assert main(["predict", "--run", str(loaded), "--data", str(data), "--split", "test", "--out", str(out)]) == 0
    again = [json.loads(x) for x in out.read_text().splitlines()]
    original = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [r["prob_vulnerable"] for r in again] == pytest.approx([r["prob_vulnerable"] for r in original])


def test_unknown_names_and_versions_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["models", "load", "nothing", "--out", str(tmp_path / "x"), "--tracking-uri", store]) == 2
    assert "no registered model named 'nothing'" in capsys.readouterr().err
    assert main(["models", "list", "--tracking-uri", store]) == 0
    assert "no registered models" in capsys.readouterr().out
    assert main(["models", "register", str(tmp_path), "x", "--tracking-uri", store]) == 2
    assert "exp_config.json is missing" in capsys.readouterr().err


def test_the_store_follows_mlflow_tracking_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking_uri(None, tmp_path) == "sqlite:///elsewhere.db"
    assert tracking_uri("http://mlflow:5000") == "http://mlflow:5000"
