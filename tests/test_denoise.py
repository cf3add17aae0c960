"""denoise on a real (tiny) fusion run: lexical fold models over real Devign functions (data/sample)."""
import html
import json
from pathlib import Path

import numpy as np
import pytest
from processed_fixture import make_processed

from streamguard.cli import main
from streamguard.config import FuseConfig
from streamguard.train import fuse
from streamguard.train.denoise import confident_learning, weights_for
from streamguard.train.engine import load_sample_weights


@pytest.fixture(scope="module")
def fusion_run(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("denoise")
    data = make_processed(tmp)
    cfg_path = tmp / "lexical.yaml"
    cfg_path.write_text("analyzer: code\nngram_min: 1\nngram_max: 2\nmax_features: 20000\nc_grid: [1.0]\n")
    run = fuse.train(data, tmp / "fusion", FuseConfig(models=["lexical"], folds=3, base_configs=[
        f"lexical={cfg_path}"]))
    return run, data


def test_weights_file_has_every_train_id_once_in_bounds_and_the_engine_reads_it(fusion_run, tmp_path):
    run, data = fusion_run
    assert main(["denoise", "--run", str(run), "--out", str(tmp_path / "d"), "--hard-below", "0.5"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "d/sample_weights.jsonl").read_text().splitlines()]
    train_ids = [json.loads(x)["id"] for x in (data / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == train_ids and set(rows[0]) == {"id", "weight"}
    assert all(0.0 <= r["weight"] <= 1.0 for r in rows)
    summary = json.loads((tmp_path / "d/denoise.json").read_text())
    assert summary["n_flagged"] == sum(r["weight"] < 1 for r in rows) > 0
    assert load_sample_weights(tmp_path / "d/sample_weights.jsonl") == {r["id"]: r["weight"] for r in rows}
    issues = [json.loads(x) for x in (tmp_path / "d/label_issues.jsonl").read_text().splitlines()]
    assert [r["rank"] for r in issues] == list(range(1, len(issues) + 1))
    report = (tmp_path / "d/report.html").read_text()
    hard = [json.loads(x) for x in (tmp_path / "d/hard_set.jsonl").read_text().splitlines()]
    code = next(r["code"] for r in hard if "<" in r["code"] or "&" in r["code"])
    assert html.escape(code[:200]) in report and code[:200] not in report  # code is escaped
    assert "by project" in report and "by source" in report


def test_drop_mode_zeroes_flagged_items(fusion_run, tmp_path):
    run, _ = fusion_run
    assert main(["denoise", "--run", str(run), "--out", str(tmp_path / "d"), "--mode", "drop"]) == 0
    w = [json.loads(x)["weight"] for x in (tmp_path / "d/sample_weights.jsonl").read_text().splitlines()]
    assert set(w) == {0.0, 1.0}


def test_confident_learning_flags_a_flipped_label():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    margin = np.where(labels == 1, 3.0, -3.0) + rng.normal(0, 0.5, 200)
    labels[7] = 1 - labels[7]  # the model is sure of the other class
    quality, ranked = confident_learning(labels, margin)
    assert ranked[0] == 7 and quality[7] < 0.1
    w = weights_for(quality, ranked, "weight")
    assert w[7] == pytest.approx(quality[7]) and np.all((w >= 0) & (w <= 1))


def test_a_run_without_oof_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/exp_config.json").write_text(json.dumps({"model": "lexical", "data_dir": str(tmp_path)}))
    assert main(["denoise", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "d")]) == 2
    assert "no oof/*.jsonl" in capsys.readouterr().err
