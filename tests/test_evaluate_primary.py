"""--primary ENTRY: Holm's family is the pairs with that entry, not every pair; every model gets ROC-AUC and VD-S."""
from __future__ import annotations

import json

import pytest
from evaluate_fixtures import make_run

from streamguard.cli import main
from streamguard.config import EvaluateConfig
from streamguard.errors import UserError
from streamguard.evaluate.stage import evaluate
from streamguard.evaluate.stats import holm


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "fusion", "fusion", 1, skill=1.4, n=300)
    make_run(root, "gnn", "gnn", 1, skill=0.8, n=300)
    make_run(root, "lexical", "lexical", 42, skill=1.0, n=300)
    return root


def test_holm_runs_over_the_primary_pairs_only(root):
    runs = [str(root / n) for n in ("fusion", "gnn", "lexical")]
    everything = evaluate(runs, root / "all", EvaluateConfig(bootstrap=1000))
    res = evaluate(runs, root / "primary", EvaluateConfig(bootstrap=1000, primary="fusion"))
    family = [p for p in res["paired"] if "fusion" in (p["a"], p["b"])]
    others = [p for p in res["paired"] if "fusion" not in (p["a"], p["b"])]
    assert len(family) == 3 and len(others) == 3  # against gnn, lexical, all vulnerable
    for key in ("mcnemar", "bootstrap_accuracy"):
        assert [p[key]["p_holm"] for p in family] == holm([p[key]["p_value"] for p in family])
        assert all(p[key]["p_holm"] is None and p["holm_family"] is False for p in others)
        # a smaller family never adjusts a p-value up
        before = {(p["a"], p["b"]): p[key]["p_holm"] for p in everything["paired"]}
        assert all(p[key]["p_holm"] <= before[(p["a"], p["b"])] + 1e-12 for p in family)
    md = (root / "primary" / "report.md").read_text()
    assert "primary entry 'fusion'" in md
    for name in ("fusion", "gnn", "lexical"):
        point = res["entries"][name]["test_at_valid_threshold"]
        assert point["roc_auc"]["value"] is not None and "fnr_at_fpr" in point


def test_unknown_primary_is_refused(root, capsys):
    with pytest.raises(UserError, match="none of the entries"):
        evaluate([str(root / "gnn")], root / "x", EvaluateConfig(bootstrap=1000, primary="fusion"))
    assert main(["evaluate", "--runs", str(root / "fusion"), str(root / "lexical"), "--out", str(root / "cli"),
                 "--primary", "lexical"]) == 0
    saved = json.loads((root / "cli" / "metrics.json").read_text())
    assert saved["settings"]["primary"] == "lexical"
