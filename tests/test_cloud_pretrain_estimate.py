"""`cloud estimate pretrain` and multi-instance estimates: the figures are the recorded measurements and the
sums follow from steps, tokens and prices."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamguard.cli import main
from streamguard.cloud.estimate import INSTANCES, SPOT_DISCOUNT, START_OVERHEAD_H, estimate
from streamguard.cloud.pretrain_cost import RUN, SHAPES, tokens_per_s
from streamguard.config import GNNConfig
from streamguard.pretrain.train import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pretrain"
DATA = ROOT / "tests" / "fixtures" / "gnn_processed"


def test_the_pretrain_figures_are_the_recorded_measurements() -> None:
    summary = json.loads((RESULTS / "pretrain_summary.json").read_text())
    config = json.loads((RESULTS / "pretrain_config.json").read_text())["config"]
    assert (RUN["tokens_seen"], RUN["wall_s"], RUN["steps"]) == (
        summary["tokens_seen"], summary["wall_s_this_process"], summary["steps"])
    assert RUN["batch"] == config["batch_size"] and RUN["shape"] == f"h{config['hidden']}-l{config['layers']}"
    bench = {r["shape"]: r for r in map(json.loads, (RESULTS / "throughput_cpu.jsonl").read_text().splitlines())}
    for name, (hidden, layers, heads, inter, per_s) in SHAPES.items():
        assert (bench[name]["hidden"], bench[name]["layers"], bench[name]["heads"], bench[name]["intermediate"],
                bench[name]["tokens_per_s"]) == (hidden, layers, heads, inter, per_s)


def test_pretrain_hours_follow_from_steps_tokens_and_vcpus_and_gpus_are_bounded_by_max_minutes() -> None:
    cfg = PretrainConfig(epochs=10, steps_per_epoch=50)
    res = estimate("pretrain", None, cfg, ["ml.c5.4xlarge", "ml.g5.xlarge"])
    cpu, gpu = res["rows"]
    seq = RUN["tokens_seen"] / RUN["steps"] / RUN["batch"]
    hours = 500 * cfg.batch_size * seq / (tokens_per_s("h128-l2") * 16 / 2) / 3600 + START_OVERHEAD_H
    assert cpu["hours"] == pytest.approx(hours, abs=0.01)
    assert cpu["spot_usd"] == pytest.approx(hours * INSTANCES["ml.c5.4xlarge"].on_demand_usd_h
                                            * (1 - SPOT_DISCOUNT), abs=0.01)
    assert gpu["hours"] is None and "no pre-training throughput measured on a GPU" in gpu["note"]
    capped = estimate("pretrain", None, PretrainConfig(max_minutes=30), ["ml.g5.xlarge"])["rows"][0]
    assert capped["hours"] == pytest.approx(0.5 + START_OVERHEAD_H, abs=0.01)
    odd = estimate("pretrain", None, PretrainConfig(hidden=96, heads=2), ["ml.m5.xlarge"])["rows"][0]
    assert odd["hours"] is None and "h96-l2" in odd["note"]


def test_a_multi_instance_job_splits_the_time_and_pays_for_every_instance() -> None:
    one = estimate("gnn", DATA, GNNConfig(epochs=50), ["ml.m5.xlarge"])["rows"][0]
    four = estimate("gnn", DATA, GNNConfig(epochs=50), ["ml.m5.xlarge"], instance_count=4)["rows"][0]
    compute = one["hours"] - START_OVERHEAD_H
    assert four["hours"] == pytest.approx(compute / 4 + START_OVERHEAD_H, abs=0.01)
    assert four["on_demand_usd"] == pytest.approx(four["hours"] * 4 * INSTANCES["ml.m5.xlarge"].on_demand_usd_h,
                                                  abs=0.01)


def test_estimate_cli_for_pretrain_and_its_bad_input(capsys: pytest.CaptureFixture) -> None:
    assert main(["cloud", "estimate", "pretrain", "--instance-type", "ml.m5.xlarge"]) == 0
    assert "pretrain_summary.json" in capsys.readouterr().out
    for args, message in ((["pretrain", "--instance-count", "2"], "runs on one instance"),
                          (["gnn"], "--data is required")):
        assert main(["cloud", "estimate", *args]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # out of range: a usage error (argparse)
        main(["cloud", "estimate", "gnn", "--data", str(DATA), "--instance-count", "0"])
    assert exc.value.code == 2 and "integer >= 1" in capsys.readouterr().err
