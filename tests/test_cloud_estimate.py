"""`streamguard cloud estimate`: the figures it uses are the recorded benchmark results, and the sums add up."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.cloud.estimate import INSTANCES, SPOT_DISCOUNT, START_OVERHEAD_H, THROUGHPUT, estimate
from streamguard.config import FuseConfig, GNNConfig, TransformerConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "tests" / "fixtures" / "gnn_processed"


def result(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def test_the_throughput_figures_are_the_recorded_benchmark_results() -> None:
    assert THROUGHPUT[("gnn", "default", "cpu")]["per_s"] == result("gnn_compaction_compact")[
        "train_graphs_per_s_incl_validation"]
    edges = next(v for v in result("gnn_gpu_sweep")["variants"] if v["name"] == "edges")
    train = result("gnn_compaction_compact")["graphs"]["train"]
    assert THROUGHPUT[("gnn", "default", "gpu")]["per_s"] == round(train / edges["s_per_epoch"], 1)
    assert THROUGHPUT[("transformer", "codebert", "gpu")]["per_s"] == result("gpu_transformer_throughput")[
        "results"]["16-mixed"]["samples_per_s"]
    assert THROUGHPUT[("transformer", "tiny", "cpu")]["per_s"] == result("transformer_cpu")[
        "throughput_samples_per_s_at_512"]
    lex = result("lexical_devign")
    assert THROUGHPUT[("lexical", "default", "cpu")]["per_s"] == round(train / lex["train_seconds_incl_c_grid"], 1)
    for fig in THROUGHPUT.values():  # each figure names the file it comes from, and that file exists
        assert (ROOT / fig["cite"].split()[0]).is_file()


def test_hours_and_dollars_follow_from_items_epochs_and_prices() -> None:
    n = sum(1 for line in (DATA / "train.jsonl").read_text().splitlines() if line.strip())
    res = estimate("gnn", DATA, GNNConfig(epochs=10), ["ml.g4dn.xlarge", "ml.m5.xlarge"])
    gpu, cpu = res["rows"]
    per_s = THROUGHPUT[("gnn", "default", "gpu")]["per_s"]  # the GNN's GPU figure is not scaled (see estimate.py)
    hours = n * 10 / per_s / 3600 + START_OVERHEAD_H
    assert gpu["hours"] == pytest.approx(hours, abs=0.01)
    assert gpu["on_demand_usd"] == pytest.approx(hours * INSTANCES["ml.g4dn.xlarge"].on_demand_usd_h, abs=0.01)
    assert gpu["spot_usd"] == pytest.approx(gpu["on_demand_usd"] * (1 - SPOT_DISCOUNT), abs=0.01)
    assert cpu["items_per_s"] == pytest.approx(THROUGHPUT[("gnn", "default", "cpu")]["per_s"] * 2, rel=1e-3)


def test_unmeasured_combinations_say_so_and_fusion_counts_its_fold_models() -> None:
    res = estimate("transformer", DATA, TransformerConfig(), ["ml.m5.xlarge", "ml.g5.xlarge"])
    assert res["rows"][0]["hours"] is None and "no throughput measured" in res["rows"][0]["note"]  # codebert, CPU
    per_s = THROUGHPUT[("transformer", "codebert", "gpu")]["per_s"] * 600 / 3350  # scaled by GPU bandwidth
    assert res["rows"][1]["items_per_s"] == pytest.approx(per_s, rel=1e-3)
    fuse = estimate("fusion", DATA, FuseConfig(models=["gnn", "lexical"], folds=5, fold_epochs=3), ["ml.m5.xlarge"])
    assert fuse["passes"] == {"gnn": 5 * 3 * 4 / 5 + GNNConfig().epochs, "lexical": 5 * 1 * 4 / 5 + 1}


def test_cli_prints_the_table_and_its_sources(capsys: pytest.CaptureFixture) -> None:
    assert main(["cloud", "estimate", "gnn", "--data", str(DATA), "--set", "epochs=20",
                 "--instance-type", "ml.g4dn.xlarge"]) == 0
    out = capsys.readouterr().out
    assert "ml.g4dn.xlarge" in out and "benchmarks/results/gnn_gpu_sweep.json" in out
    assert main(["cloud", "estimate", "gnn", "--data", str(DATA), "--instance-type", "ml.x.huge"]) == 2
    assert "no price for ml.x.huge" in capsys.readouterr().err
