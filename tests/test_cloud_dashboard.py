"""The CloudWatch dashboard: its widgets plot exactly the metrics the launcher defines from the engine's line,
one widget each, plus the instances' utilisation; moto's CloudWatch stores what `dashboard` sends; a launch with
--dashboard creates it with the job."""
from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from streamguard.cli import main
from streamguard.cloud import dashboard, jobspec

ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def engine_line_keys() -> list[str]:
    """The metric names in lines the engine printed on full Devign (the GNN compaction benchmark)."""
    lines = json.loads((ROOT / "benchmarks" / "results" / "gnn_compaction_plain.json").read_text())["epoch_lines"]
    return [part.split("=")[0] for part in lines[0].split()]


def test_the_widgets_plot_the_metrics_the_engine_writes_one_widget_each() -> None:
    body = dashboard.body("sg-gnn-2026", "eu-west-1", instance_count=2)
    training = [w for w in body["widgets"] if w["properties"]["metrics"][0][2] == "TrainingJobName"]
    names = [w["properties"]["metrics"][0][1] for w in training]
    assert all(len(w["properties"]["metrics"]) == 1 for w in training)
    assert sorted(names) == sorted(k for k in engine_line_keys() if k != "epoch")
    assert sorted(names) == sorted(d["Name"] for d in jobspec.metric_definitions() if d["Name"] != "epoch")
    line = json.loads((ROOT / "benchmarks" / "results" / "gnn_compaction_plain.json").read_text())["epoch_lines"][0]
    regex = {d["Name"]: d["Regex"] for d in jobspec.metric_definitions()}
    for name in names:  # each widget's metric is one SageMaker really extracts from that line
        assert re.search(regex[name], line), name
    hosts = [w for w in body["widgets"] if w["properties"]["metrics"][0][2] == "Host"]
    assert {w["properties"]["metrics"][0][1] for w in hosts} == {"GPUUtilization", "GPUMemoryUtilization",
                                                                  "MemoryUtilization"}
    assert all([m[3] for m in w["properties"]["metrics"]] == ["sg-gnn-2026/algo-1", "sg-gnn-2026/algo-2"]
               for w in hosts)
    assert {m[0] for w in body["widgets"] for m in w["properties"]["metrics"]} == {dashboard.NAMESPACE}
    assert len(dashboard.widget_metric_names(body)) == len(names) + 3 * 2


def test_dry_run_prints_the_put_dashboard_request(capsys: pytest.CaptureFixture) -> None:
    assert main(["cloud", "sagemaker", "dashboard", "job-7", "--region", "us-east-1", "--dry-run"]) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["DashboardName"] == "streamguard-job-7"
    assert json.loads(request["DashboardBody"]) == dashboard.body("job-7", "us-east-1")
    assert main(["cloud", "sagemaker", "dashboard", "bad name!", "--region", "us-east-1", "--dry-run"]) == 2
    assert "not a SageMaker training job name" in capsys.readouterr().err


@mock_aws
def test_dashboard_for_a_moto_job_and_for_an_unknown_one(capsys: pytest.CaptureFixture) -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(TrainingJobName="sg-job-1", RoleArn=ROLE,
                           AlgorithmSpecification={"TrainingImage": "x", "TrainingInputMode": "File"},
                           OutputDataConfig={"S3OutputPath": "s3://b/o"}, StoppingCondition={"MaxRuntimeInSeconds": 60},
                           ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 5})
    assert main(["cloud", "sagemaker", "dashboard", "sg-job-1", "--region", "us-east-1"]) == 0
    assert json.loads(capsys.readouterr().out)["DashboardName"] == "streamguard-sg-job-1"
    stored = boto3.client("cloudwatch", region_name="us-east-1").get_dashboard(DashboardName="streamguard-sg-job-1")
    assert json.loads(stored["DashboardBody"]) == dashboard.body("sg-job-1", "us-east-1", instance_count=3)
    assert main(["cloud", "sagemaker", "dashboard", "sg-job-404", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Could not find training job" in err[0]


@mock_aws
def test_a_launch_with_dashboard_creates_it_for_the_new_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sg-bucket")
    assert main(["cloud", "sagemaker", "train", "gnn", "--data", "s3://sg-bucket/d", "--output", "s3://sg-bucket/o",
                 "--role", ROLE, "--region", "us-east-1", "--image", "1.dkr.ecr.us-east-1.amazonaws.com/sg:1",
                 "--allow-dirty", "--instance-count", "2", "--dashboard", "--ledger", str(tmp_path / "l.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    name = out["Dashboard"]["DashboardName"]
    stored = boto3.client("cloudwatch", region_name="us-east-1").get_dashboard(DashboardName=name)
    assert json.loads(stored["DashboardBody"]) == dashboard.body(out["TrainingJobName"], "us-east-1", 2)
