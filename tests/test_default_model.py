"""The default model ships inside the package: `streamguard scan DIR` and `streamguard.load()` use it when no model
is given, and an install without it fails in one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import streamguard
from streamguard import resources
from streamguard.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def _bundle() -> dict:
    return json.loads((resources.default_model_dir() / "bundle.json").read_text())


def test_default_model_is_a_small_pickle_free_bundle_in_the_package() -> None:
    root = resources.default_model_dir()
    assert root.is_relative_to(Path(streamguard.__file__).parent)  # package data: a wheel carries it
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".json", ".safetensors", ".md"}
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    assert "held-out" in (root / "MODEL_CARD.md").read_text()  # the card states the transfer figures


def test_scan_without_model_uses_the_default(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    rc = main(["scan", str(FIXTURES / "kernel_c" / "lib"), "--format", "json", "--out", str(out)])
    assert rc in (0, 1)
    doc = json.loads(out.read_text())
    assert doc["model"]["bundle"] is True and doc["model"]["kind"] == _bundle()["kind"]
    assert doc["summary"]["functions_scored"] > 0


def test_load_without_path_scores_a_function() -> None:
    with streamguard.load() as det:
        score = det.score("int f(char *s) { char b[8]; strcpy(b, s); return 0; }")
    assert 0.0 <= score.prob <= 1.0 and score.threshold == pytest.approx(_bundle()["threshold"])


def test_missing_default_model_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(resources, "DEFAULT_MODEL", tmp_path / "none")
    assert main(["scan", str(FIXTURES / "kernel_c" / "lib")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no default model" in err[0] and "--model" in err[0]
