"""The phase comparison's statistics on real lexical runs over real Devign functions (data/sample), and on
small hand-checked arrays."""
import json
from pathlib import Path

import numpy as np
import pytest
from processed_fixture import make_processed

from streamguard.cli import main
from streamguard.evaluate.compare import _pair_correct, _pairs, compare_items

A = "analyzer: code\nngram_min: 1\nngram_max: 1\nmax_features: 3000\nc_grid: [0.1]\n"
B = "analyzer: code\nngram_min: 1\nngram_max: 2\nmax_features: 20000\nc_grid: [1.0]\n"


@pytest.fixture(scope="module")
def phases(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    data = make_processed(tmp)
    for name, cfg in (("a", A), ("b", B)):
        (tmp / f"{name}.yaml").write_text(cfg)
        assert main(["train", "lexical", "--data", str(data), "--out", str(tmp / name), "--config",
                     str(tmp / f"{name}.yaml"), "--seeds", "1,2,3"]) == 0
    return tmp, data, tmp / "report"


def test_compare_writes_every_statistic(phases):
    tmp, data, out = phases
    assert main(["compare", "--a", str(tmp / "a"), "--b", str(tmp / "b"), "--heldout", str(data),
                 "--out", str(out), "--bootstrap", "200"]) == 0
    res = json.loads((out / "compare.json").read_text())
    for name in ("devign_test", "heldout"):
        acc = res["sets"][name]["metrics"]["accuracy"]
        assert acc["seeds"]["n"] == 3 and len(acc["a_per_seed"]) == 3
        lo, hi = acc["bootstrap"]["ci"]
        assert lo <= acc["bootstrap"]["difference"] <= hi and 0 < acc["bootstrap"]["p_value"] <= 1
        assert "p_value" in acc["mcnemar_majority_vote"] and "t_test" in acc["seeds"]
        assert set(res["sets"][name]["metrics"]) == {"accuracy", "roc_auc", "f1_vulnerable"}
    # same items twice (heldout = the test split here): the same numbers
    assert res["sets"]["heldout"]["metrics"]["roc_auc"]["b_mean"] == res["sets"]["devign_test"]["metrics"][
        "roc_auc"]["b_mean"]
    assert res["verdict"]["goal_met"] in (True, False)
    report = (out / "report.md").read_text()
    assert "p (Wilcoxon)" in report and "Label balance" in report and "by project" in report


def test_identical_phases_differ_by_nothing():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    scored = {s: (np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 0.5) for s in (1, 2, 3)}
    res = compare_items(y, scored, scored, n_boot=200)
    for m in res["metrics"].values():
        assert m["bootstrap"]["difference"] == 0 and m["bootstrap"]["ci"] == [0.0, 0.0]
        assert m["seeds"]["t_test"]["p_value"] is None and m["effect_size_dz"] is None
    assert res["metrics"]["accuracy"]["mcnemar_majority_vote"]["p_value"] == 1.0


def test_a_clearly_better_phase_is_significant_over_items():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    noisy = {s: (rng.random(400), 0.5) for s in (1, 2, 3, 4, 5)}
    good = {s: (np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.1, 400), 0.5) for s in (1, 2, 3, 4, 5)}
    acc = compare_items(y, noisy, good, n_boot=300)["metrics"]["accuracy"]
    assert acc["bootstrap"]["difference"] > 0.3 and acc["bootstrap"]["ci"][0] > 0
    assert acc["seeds"]["t_test"]["p_value"] < 0.01 and acc["mcnemar_majority_vote"]["p_value"] < 1e-6
    assert acc["effect_size_dz"] > 2


def test_pair_accuracy_needs_both_members_right():
    ids = ["h-0", "h-1", "h-2", "h-3", "h-4"]
    pairs = _pairs(ids, {"h-0": "bigvul:p1", "h-1": "bigvul:p1", "h-2": "bigvul:p2", "h-3": "bigvul:p2", "h-4": ""})
    assert pairs == [(0, 1), (2, 3)]
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([0.9, 0.1, 0.9, 0.8, 0.2])  # pair p2's fixed version is called vulnerable
    assert _pair_correct(y, s, 0.5, pairs).tolist() == [True, False]
