"""The SageMaker launcher: dry-run requests for every kind, the request moto's SageMaker receives, bad input
in one line, and metric definitions that read the lines the engine really printed."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from streamguard.cli import main
from streamguard.cloud import jobspec
from streamguard.cloud import sagemaker as sm
from streamguard.cloud.sagemaker import JobOptions, launch
from streamguard.train import registry

ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BASE = ["--data", "s3://sg-bucket/processed/devign", "--output", "s3://sg-bucket/jobs", "--role", ROLE,
        "--region", "us-east-1"]


def dry_run(capsys: pytest.CaptureFixture, kind: str, *extra: str) -> dict:
    assert main(["cloud", "sagemaker", "train", kind, *BASE, *extra, "--dry-run"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", registry.known_kinds())
def test_dry_run_prints_a_complete_spot_request_for_every_kind(kind: str, capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)  # a dry run needs no credentials
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    req = dry_run(capsys, kind)
    assert req["EnableManagedSpotTraining"] is True
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 4 * 3600, "MaxWaitTimeInSeconds": 5 * 3600}
    ckpt = f"s3://sg-bucket/jobs/streamguard-{kind}/checkpoints"
    assert req["CheckpointConfig"] == {"S3Uri": ckpt, "LocalPath": "/opt/ml/checkpoints"}
    assert req["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge" and req["ResourceConfig"]["InstanceCount"] == 1
    assert [m["Name"] for m in req["AlgorithmSpecification"]["MetricDefinitions"]] == [
        "epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_vulnerable", "val_roc_auc", "lr"]
    assert "pytorch-training" in req["AlgorithmSpecification"]["TrainingImage"]
    hp = req["HyperParameters"]
    assert hp["sg_kind"] == kind and re.fullmatch(r"[0-9a-f]{40}", hp["sg_git_commit"])
    if "cfg.checkpoint_uri" in hp:  # the engine mirrors to the very URI SageMaker restores from
        assert hp["cfg.checkpoint_uri"] == ckpt
    decoded_kind, cfg, _ = jobspec.decode_hyperparameters(hp)  # the container reads back the same config
    assert decoded_kind == kind and type(cfg) is registry.config_class(kind)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert channels["train"] == "s3://sg-bucket/processed/devign"
    assert channels["code"].startswith(f"s3://sg-bucket/jobs/streamguard-{kind}/") and "sm_drivers" in channels
    assert req["OutputDataConfig"]["S3OutputPath"] == f"s3://sg-bucket/jobs/streamguard-{kind}"


def test_config_and_overrides_pass_through_and_multi_node_uses_torchrun(capsys: pytest.CaptureFixture) -> None:
    req = dry_run(capsys, "gnn", "--config", str(ROOT / "configs" / "gnn.yaml"), "--set", "hidden=64",
                  "--instance-count", "2", "--no-spot", "--image", "1.dkr.ecr.us-east-1.amazonaws.com/sg:1",
                  "--name", "nightly")
    hp = req["HyperParameters"]
    assert hp["cfg.hidden"] == "64" and hp["cfg.strategy"] == "ddp"
    assert req["ResourceConfig"]["InstanceCount"] == 2
    assert "EnableManagedSpotTraining" not in req or req["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in req["StoppingCondition"]
    assert req["AlgorithmSpecification"]["TrainingImage"] == "1.dkr.ecr.us-east-1.amazonaws.com/sg:1"
    assert req["CheckpointConfig"]["S3Uri"] == "s3://sg-bucket/jobs/nightly/checkpoints"


PRETRAIN = ["cloud", "sagemaker", "pretrain", "--corpus", "s3://sg-bucket/corpus/kernel", "--devign",
            "s3://sg-bucket/devign", "--output", "s3://sg-bucket/jobs", "--role", ROLE, "--region", "us-east-1"]


def test_a_pretrain_job_reads_the_corpus_devign_and_an_encoder_from_their_channels(
        capsys: pytest.CaptureFixture) -> None:
    assert main([*PRETRAIN, "--init", "s3://sg-bucket/encoders/v1", "--set", "hidden=256", "heads=4",
                 "precision=bf16-mixed", "--dry-run"]) == 0
    req = json.loads(capsys.readouterr().out)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in req["InputDataConfig"]}
    assert {k: v for k, v in channels.items() if k not in ("code", "sm_drivers")} == {
        "train": "s3://sg-bucket/corpus/kernel", "devign": "s3://sg-bucket/devign",
        "init": "s3://sg-bucket/encoders/v1"}
    hp = req["HyperParameters"]
    assert hp["sg_kind"] == "pretrain" and "sg_register" not in hp
    assert hp["cfg.checkpoint_uri"] == req["CheckpointConfig"]["S3Uri"] == \
        "s3://sg-bucket/jobs/streamguard-pretrain/checkpoints"
    assert req["ResourceConfig"]["InstanceCount"] == 1 and req["EnableManagedSpotTraining"] is True
    kind, cfg, _ = jobspec.decode_hyperparameters(hp)
    assert kind == "pretrain" and type(cfg).__name__ == "PretrainConfig"
    assert (cfg.hidden, cfg.heads, cfg.precision) == (256, 4, "bf16-mixed")
    assert (cfg.devign, cfg.init) == ("s3://sg-bucket/devign", "s3://sg-bucket/encoders/v1")  # for the record


@pytest.mark.parametrize("args, message", [
    (["--set", "hidden=100", "heads=3"], "hidden 100 must be a multiple of heads 3"),
    (["--init", "encoders/v1"], "--init must be an S3 URI"),
    (["--set", "max_lenght=256"], "max_lenght"),
])
def test_a_bad_pretrain_job_ends_in_one_clear_line(args: list[str], message: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert main([*PRETRAIN, *args, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_devign_and_init_channels_belong_to_pretrain_only() -> None:
    opts = JobOptions(kind="gnn", data="s3://b/d", output="s3://b/o", role=ROLE, region="us-east-1",
                      devign="s3://b/devign")
    with pytest.raises(Exception, match="belong to a pretrain job"):
        sm.validate(opts)
    opts = JobOptions(kind="pretrain", data="s3://b/c", output="s3://b/o", role=ROLE, region="us-east-1")
    with pytest.raises(Exception, match="--devign is required"):
        sm.validate(opts)


@pytest.mark.parametrize("args, message", [
    (["--data", "s3://b/d", "--output", "s3://b/o", "--region", "us-east-1"], "--role is required"),
    (["--data", "b/d", "--output", "s3://b/o", "--role", ROLE, "--region", "us-east-1"], "--data must be an S3 URI"),
    (["--data", "s3://b/d", "--output", "s3:/b", "--role", ROLE, "--region", "us-east-1"],
     "--output must be an S3 URI"),
    (["--data", "s3://b/d", "--output", "s3://b/o", "--role", ROLE, "--region", "us-east-1", "--max-run", "4h",
      "--max-wait", "3h"], "--max-wait (3h) must be at least --max-run (4h)"),
    (["--data", "s3://b/d", "--output", "s3://b/o", "--role", "admin", "--region", "us-east-1"],
     "--role must be an IAM role ARN"),
    (["--data", "s3://b/d", "--output", "s3://b/o", "--role", ROLE, "--region", "moon-1"],
     "unknown AWS region 'moon-1'"),
])
def test_bad_input_ends_in_one_clear_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["cloud", "sagemaker", "train", "gnn", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@mock_aws
def test_launch_under_moto_creates_the_job_with_the_requested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # mock_aws provides fake credentials itself; a monkeypatch.setenv here would restore moto's fake keys after
    # moto restored the real ones, and the tests against the real S3 server would then fail to authenticate
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="sg-bucket")
    sent: dict = {}
    real_session = sm._session

    def capturing_session(*args: object) -> object:  # what the SDK puts on the wire, as moto received it
        session = real_session(*args)
        session.boto_session.events.register("provide-client-params.sagemaker.CreateTrainingJob",
                                             lambda params, **_: sent.update(params))
        return session

    monkeypatch.setattr(sm, "_session", capturing_session)
    opts = JobOptions(kind="gnn", data="s3://sg-bucket/processed/devign", output="s3://sg-bucket/jobs", role=ROLE,
                      region="us-east-1", sets=("epochs=7",), allow_dirty=True, register="devign-gnn",
                      image="123456789012.dkr.ecr.us-east-1.amazonaws.com/streamguard:latest", instance_count=2)
    out = launch(opts)
    job = boto3.client("sagemaker", region_name="us-east-1").describe_training_job(
        TrainingJobName=out["TrainingJobName"])
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 14400, "MaxWaitTimeInSeconds": 18000}
    assert job["CheckpointConfig"]["S3Uri"] == out["CheckpointS3Uri"] == "s3://sg-bucket/jobs/streamguard-gnn/checkpoints"
    assert job["HyperParameters"]["cfg.checkpoint_uri"] == out["CheckpointS3Uri"]
    assert job["HyperParameters"]["cfg.epochs"] == "7" and job["HyperParameters"]["sg_register"] == "devign-gnn"
    assert job["AlgorithmSpecification"]["TrainingImage"] == opts.image
    # moto answers describe with canned metric definitions; the request it was sent holds ours
    assert sent["AlgorithmSpecification"]["MetricDefinitions"] == jobspec.metric_definitions()
    assert sent["HyperParameters"] == job["HyperParameters"]
    assert job["ResourceConfig"]["InstanceCount"] == 2 and job["RoleArn"] == ROLE
    # the source really went up, next to the job's outputs, with the entry script and the package
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sg-bucket", Prefix="jobs/")["Contents"]]
    assert any(k.endswith("/input/code/sg_entry.py") for k in keys)
    assert any(k.endswith("/input/code/src/streamguard/cloud/container.py") for k in keys)
    assert not any(k.endswith("requirements.txt") for k in keys)  # the project's image has the pins already


@mock_aws
def test_launch_without_credentials_or_with_a_dirty_tree_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamguard.cloud.package.packaged_state", lambda root: {"commit": "abc", "dirty": True})
    opts = JobOptions(kind="lexical", data="s3://b/d", output="s3://b/o", role=ROLE, region="us-east-1")
    with pytest.raises(Exception, match="uncommitted changes"):
        launch(opts)


def real_epoch_lines() -> list[str]:
    """Lines the engine printed on full Devign (recorded by the GNN compaction benchmark)."""
    data = json.loads((ROOT / "benchmarks" / "results" / "gnn_compaction_plain.json").read_text())
    return data["epoch_lines"]


def test_metric_definitions_read_the_engine_lines_and_nothing_else() -> None:
    lines = real_epoch_lines()
    # a CloudWatch log stream mixes stdout and the progress bar on stderr, carriage returns included
    noise = ["Epoch 3: 100%|##########| 683/683 [01:30<00:00, 7.5it/s, loss=0.693, val_loss=0.671]",
             "\rValidation DataLoader 0:  40%|####      | 35/86 [00:02<00:03, val_loss=0.123]"]
    log = "\n".join(noise[:1] + ["\r" + lines[0]] + noise[1:] + lines[1:])
    found = {d["Name"]: re.findall(d["Regex"], log) for d in jobspec.metric_definitions()}
    assert found["epoch"] == [str(i) for i in range(len(lines))]
    expected = [dict(p.split("=") for p in ln.split()) for ln in lines]
    for name in ("train_loss", "val_loss", "val_accuracy", "val_f1_vulnerable", "val_roc_auc", "lr"):
        assert found[name] == [e[name] for e in expected], name


def test_metric_definitions_match_the_csv_the_engine_wrote(tmp_path: Path) -> None:
    """Against a live run: the metric lines on stdout, read with the definitions, equal metrics.csv."""
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "streamguard.cli", "train", "gnn", "--data",
                           str(ROOT / "tests" / "fixtures" / "gnn_processed"), "--out", str(out), "--epochs", "2",
                           "--tracking-uri", "off", "--set", "hidden=16", "embed_dim=8", "head_hidden=16",
                           "layers=1", f"cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stderr + proc.stdout
    rows = list(csv.DictReader(open(out / "metrics.csv", newline="")))
    for d in jobspec.metric_definitions():
        values = [float(v) for v in re.findall(d["Regex"], log)]
        assert values == pytest.approx([float(r[d["Name"]]) for r in rows], rel=1e-3, abs=1e-4), d["Name"]


def test_building_the_cli_parser_imports_neither_lightning_nor_the_sdk() -> None:
    """`streamguard --help` and every other command build the whole parser, cloud included: keep it light."""
    import subprocess
    import sys

    code = ("import sys; from streamguard.cli import build_parser; build_parser(); "
            "print(sorted({'lightning', 'torch', 'sagemaker', 'mlflow'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "[]"
