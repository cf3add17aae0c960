"""The spend ledger and budget guard: a launch is recorded, a job driven to Completed and to Stopped gets its
billable cost and spot saving from DescribeTrainingJob, `cloud budget` adds the checkpoints' S3 storage, and a
launch that would break the budget is refused in one line before anything is sent."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from streamguard.cli import main
from streamguard.cloud import ledger
from streamguard.cloud.estimate import INSTANCES, SPOT_DISCOUNT

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/streamguard:latest"


def train_args(led: Path, *extra: str) -> list[str]:
    return ["cloud", "sagemaker", "train", "lexical", "--data", "s3://sg-bucket/processed/devign", "--output",
            "s3://sg-bucket/jobs", "--role", ROLE, "--region", "us-east-1", "--image", IMAGE, "--allow-dirty",
            "--ledger", str(led), *extra]


def drive(job: str, status: str, training_s: int, billable_s: int) -> None:
    """What SageMaker reports once a job ends, set on moto's own record of the job."""
    fake = sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].training_jobs[job]
    fake.training_job_status = fake.secondary_status = status
    fake.training_time_in_seconds, fake.billable_time_in_seconds = training_s, billable_s


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@mock_aws
def test_launches_are_recorded_and_finished_jobs_priced_from_describe(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sg-bucket")
    led = tmp_path / "ledger.json"
    jobs = []
    for name, extra in (("phase1", ["--phase", "phase-1", "--max-run", "2h", "--max-wait", "3h"]),
                        ("phase2", ["--phase", "phase-2", "--no-spot", "--max-run", "1h",
                                    "--instance-type", "ml.m5.xlarge"])):
        assert main(train_args(led, "--name", name, *extra)) == 0
        jobs.append(json.loads(capsys.readouterr().out)["TrainingJobName"])
    recorded = ledger.load(led)["jobs"]
    assert [(j["phase"], j["spot"], j["instance_type"], j["status"]) for j in recorded] == [
        ("phase-1", True, "ml.g4dn.xlarge", "InProgress"), ("phase-2", False, "ml.m5.xlarge", "InProgress")]
    g4, m5 = INSTANCES["ml.g4dn.xlarge"].on_demand_usd_h, INSTANCES["ml.m5.xlarge"].on_demand_usd_h
    assert recorded[0]["estimate_usd"] == pytest.approx(2 * g4 * (1 - SPOT_DISCOUNT), abs=1e-3)
    assert recorded[1]["estimate_usd"] == pytest.approx(1 * m5, abs=1e-3)

    drive(jobs[0], "Completed", training_s=3000, billable_s=900)   # managed spot: 70% saved
    drive(jobs[1], "Stopped", training_s=1800, billable_s=1800)
    assert main(["cloud", "sagemaker", "status", jobs[0], "--ledger", str(led)]) == 0
    out = capsys.readouterr().out
    assert "Completed" in out and "training 3000 s, billable 900 s" in out
    first = ledger.load(led)["jobs"][0]
    assert (first["status"], first["training_s"], first["billable_s"]) == ("Completed", 3000, 900)
    assert first["cost_usd"] == pytest.approx(900 / 3600 * g4, abs=1e-4)
    assert first["spot_saving_usd"] == pytest.approx(2100 / 3600 * g4, abs=1e-4)

    # checkpoints in S3: cloud budget counts their storage, and refreshes the job status did not ask about
    s3.put_object(Bucket="sg-bucket", Key="jobs/phase1/checkpoints/last.ckpt", Body=b"x" * 4096)
    assert main(["cloud", "budget", "--ledger", str(led), "--budget-usd", "10", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = {r["phase"]: r for r in summary["jobs"]}
    assert rows["phase-2"]["status"] == "Stopped" and rows["phase-2"]["cost_usd"] == pytest.approx(0.5 * m5, abs=1e-4)
    assert ledger.load(led)["jobs"][0]["checkpoint_bytes"] == 4096
    assert summary["spent_usd"] == pytest.approx(first["cost_usd"] + 0.5 * m5 + rows["phase-1"]["storage_usd"],
                                                 abs=1e-3)
    assert summary["left_usd"] == pytest.approx(10 - summary["spent_usd"], abs=1e-6)
    assert main(["cloud", "budget", "--ledger", str(led), "--phase", "phase-1", "--offline"]) == 0
    table = capsys.readouterr().out
    assert "phase phase-1:" in table and jobs[0] in table and jobs[1] not in table


def test_a_launch_over_the_budget_is_refused_in_one_line_before_anything_is_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    led = tmp_path / "ledger.json"
    led.write_text(json.dumps({"jobs": [{"job": "old", "phase": "phase-1", "status": "Completed",
                                         "cost_usd": 9.5, "instance_type": "ml.g4dn.xlarge"}]}))
    # 4 h of ml.g4dn.xlarge at the spot discount is about $0.88; $0.50 is left of $10
    assert main(train_args(led, "--budget-usd", "10")) == 2
    line = one_error_line(capsys)
    assert "launch refused" in line and "$0.50 left of the $10.00 budget" in line
    assert len(ledger.load(led)["jobs"]) == 1
    assert main(train_args(led, "--budget-usd", "-1")) == 2
    assert "zero or more" in one_error_line(capsys)
    assert main(train_args(led, "--instance-type", "ml.g6.xlarge")) == 2  # real type, no price in the table
    assert "no price" in one_error_line(capsys)


@mock_aws
def test_over_budget_launches_anyway_and_an_unknown_job_is_one_line(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sg-bucket")
    led = tmp_path / "ledger.json"
    assert main(train_args(led, "--budget-usd", "0", "--over-budget")) == 0
    assert len(ledger.load(led)["jobs"]) == 1
    capsys.readouterr()
    assert main(["cloud", "sagemaker", "status", "no-such-job", "--region", "us-east-1", "--ledger", str(led)]) == 2
    assert "Could not find training job" in one_error_line(capsys)
    assert main(["cloud", "budget", "--ledger", str(led), "--phase", "phase-9", "--offline"]) == 2
    assert "no job in phase 'phase-9'" in one_error_line(capsys)


def test_no_credentials_and_bad_regions_are_one_line_and_never_show_a_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    led = tmp_path / "ledger.json"
    assert main(["cloud", "sagemaker", "status", "job-1", "--region", "us-east-1", "--ledger", str(led)]) == 2
    assert "no AWS credentials found" in one_error_line(capsys)
    assert main(["cloud", "sagemaker", "dashboard", "job-1", "--region", "moon-1"]) == 2
    assert "unknown AWS region 'moon-1'" in one_error_line(capsys)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSENTINEL"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASENTINEL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    for args in (["cloud", "sagemaker", "status", "job-1", "--region", "atlantis-9", "--ledger", str(led)],
                 ["cloud", "budget", "--ledger", str(led), "--budget-usd", "lots"]):
        assert main(args) == 2
        captured = capsys.readouterr()
        assert secret not in captured.out + captured.err and len(captured.err.strip().splitlines()) == 1
