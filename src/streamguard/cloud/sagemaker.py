"""``streamguard cloud sagemaker train``: one SageMaker training job for any kind, on the SDK 3 ModelTrainer.

Managed spot with a stopping condition, the engine's checkpoint mirror pointed at the job's CheckpointConfig
S3 URI (a restarted spot job, or a rerun of the same command, resumes), CloudWatch metric definitions made
from the engine's metric line, the resolved config as hyperparameters, and the project's source uploaded as
the ``code`` channel. ``--dry-run`` builds the same CreateTrainingJob request without credentials or network
and prints it as JSON. The same job pre-trains the encoder (``cloud sagemaker pretrain``): kind ``pretrain``,
the corpus as its ``train`` channel and Devign (and an encoder to continue from) as channels of their own.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from streamguard.cloud import awsinput, jobspec
from streamguard.cloud.package import ENTRY, package_source
from streamguard.config import load_config
from streamguard.errors import UserError
from streamguard.redact import redact

DEFAULT_INSTANCE = "ml.g4dn.xlarge"
# The AWS PyTorch training image used when no --image is given (its torch, the project's other pins).
DLC_VERSION, DLC_PY = "2.10.0", "py313"
ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# Lenient on the bucket's case and length (S3 itself has the last word); strict on the shape.
S3_RE = re.compile(r"^s3://(?P<bucket>[A-Za-z0-9][A-Za-z0-9._-]{0,62})(?:/(?P<key>[^\s]*))?$")
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,30}$")  # base job name: the SDK appends a timestamp
ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


@dataclasses.dataclass(frozen=True)
class JobOptions:
    kind: str
    data: str
    output: str
    role: str | None = None
    region: str | None = None
    config: Path | None = None
    sets: tuple[str, ...] = ()
    spot: bool = True
    instance_type: str = DEFAULT_INSTANCE
    instance_count: int = 1
    max_run: str = "4h"
    max_wait: str | None = "5h"
    image: str | None = None
    name: str | None = None
    register: str | None = None
    allow_dirty: bool = False
    dry_run: bool = False
    volume_gb: int = 50
    devign: str | None = None   # pretrain only: the CodeXGLUE prefix (its channel)
    init: str | None = None     # pretrain only: an exported encoder's prefix to continue from (its channel)

    def channels(self) -> dict[str, str]:
        """Channel name -> S3 prefix: the data, and pretrain's own inputs where given."""
        named = {name: getattr(self, name) for name in jobspec.PRETRAIN_CHANNELS}
        return {jobspec.CHANNEL: self.data, **{k: v for k, v in named.items() if v}}


def parse_duration(text: str, what: str) -> int:
    """Seconds of ``4h``, ``90m``, ``3600s`` or ``3600``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise UserError(f"{what}: expected a duration such as 4h, 90m or 3600s, got {text!r}")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    seconds = int(float(match.group(1)) * scale)
    if seconds <= 0:
        raise UserError(f"{what} must be positive, got {text!r}")
    return seconds


def split_s3(uri: str, what: str) -> tuple[str, str]:
    match = S3_RE.match(uri or "")
    if not match or ".." in match.group("bucket"):
        raise UserError(f"{what} must be an S3 URI such as s3://bucket/prefix, got {redact(uri)!r}")
    return match.group("bucket"), (match.group("key") or "").strip("/")


def validate(opts: JobOptions) -> tuple[int, int | None, str]:
    """One clear line for each input a user can get wrong; returns (max run s, max wait s, region)."""
    if opts.kind not in jobspec.kinds():
        raise UserError(f"unknown model kind '{opts.kind}' (known: {', '.join(jobspec.kinds())})")
    if not opts.role:
        raise UserError("--role is required: the ARN of a SageMaker execution role, "
                        "arn:aws:iam::<account>:role/<name> (see docs/cloud-sagemaker.md)")
    if not ROLE_RE.match(opts.role):
        raise UserError(f"--role must be an IAM role ARN such as arn:aws:iam::123456789012:role/Name, "
                        f"got {redact(opts.role)!r}")
    _validate_inputs(opts)
    split_s3(opts.output, "--output")
    region = awsinput.check_region(opts.region)
    awsinput.check_instance_type(opts.instance_type)
    if opts.instance_count < 1:
        raise UserError(f"--instance-count must be at least 1, got {opts.instance_count}")
    if opts.name and not NAME_RE.match(opts.name):
        raise UserError(f"--name must be 1-32 letters, digits or hyphens, got {redact(opts.name)!r}")
    max_run = parse_duration(opts.max_run, "--max-run")
    max_wait = parse_duration(opts.max_wait, "--max-wait") if opts.spot and opts.max_wait else None
    if opts.spot and max_wait is None:
        raise UserError("--max-wait is required with --spot (how long to wait for spot capacity plus the run)")
    if max_wait is not None and max_wait < max_run:
        raise UserError(f"--max-wait ({opts.max_wait}) must be at least --max-run ({opts.max_run}): "
                        "it counts the wait for spot capacity plus the run itself")
    return max_run, max_wait, region


def _validate_inputs(opts: JobOptions) -> None:
    pretrain = opts.kind == jobspec.PRETRAIN
    for channel, uri in opts.channels().items():
        data_option = "--corpus" if pretrain else "--data"
        split_s3(uri, data_option if channel == jobspec.CHANNEL else f"--{channel}")
    if pretrain and not opts.devign:
        raise UserError("--devign is required: the S3 prefix of CodeXGLUE train/valid jsonl (BPE and held-out loss)")
    if not pretrain and (opts.devign or opts.init):
        raise UserError("--devign and --init belong to a pretrain job")
    if pretrain and (opts.instance_count > 1 or opts.register):
        raise UserError("a pretrain job runs on one instance and registers nothing (its encoder is in model.tar.gz)")


def job_name(opts: JobOptions) -> str:
    return opts.name or f"streamguard-{opts.kind}"


def checkpoint_uri(opts: JobOptions) -> str:
    """Stable per job name, so a spot restart and a rerun of the same command find the same checkpoints."""
    return f"{opts.output.rstrip('/')}/{job_name(opts)}/checkpoints"


def resolve_config(opts: JobOptions) -> Any:
    """The kind's config from defaults, --config and --set, with the engine's mirror on the job's URI."""
    try:
        cfg = load_config(jobspec.config_class(opts.kind), opts.config, None, list(opts.sets))
    except UserError as exc:  # a config error may quote the value given: never a credential in it
        raise UserError(redact(str(exc))) from None
    fields = {f.name for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    if opts.kind == jobspec.PRETRAIN:  # where the inputs come from, for the record: the container reads channels
        from streamguard.pretrain.train import check_config
        check_config(dataclasses.replace(cfg, init=""))  # the shape and ranges; the encoder itself is in S3
        changes.update(devign=opts.devign, init=opts.init or "")
    if "checkpoint_uri" in fields:
        changes["checkpoint_uri"] = checkpoint_uri(opts)
    if "sample_weights" in fields and cfg.sample_weights and Path(cfg.sample_weights).is_absolute():
        raise UserError("sample_weights: give a path relative to the data prefix (the job reads it from there)")
    if opts.instance_count > 1 and "strategy" in fields:
        changes["strategy"] = "ddp"
    if opts.instance_count > 1 and "strategy" not in fields:
        raise UserError(f"kind '{opts.kind}' does not train with the engine; it runs on one instance only")
    cfg = dataclasses.replace(cfg, **changes)
    awsinput.refuse_credentials(dataclasses.asdict(cfg), "setting")
    return cfg


def default_image(region: str, instance_type: str) -> str:
    from sagemaker.core import image_uris

    try:
        return image_uris.retrieve("pytorch", region=region, version=DLC_VERSION, py_version=DLC_PY,
                                   instance_type=instance_type, image_scope="training")
    except ValueError as exc:  # an unknown region or instance type: say which, in one line
        first = str(exc).split(". ")[0]
        raise UserError(f"no AWS PyTorch training image for --region {region} / --instance-type {instance_type} "
                        f"({first}); check them or give --image URI") from None


def _trainer_class() -> type:
    from sagemaker.train import ModelTrainer

    class StagedTrainer(ModelTrainer):
        """Stages the code under --output (not the SDK's default bucket, whose lookup needs credentials)."""

        def _resolve_staging_bucket(self) -> tuple[str, str]:
            bucket, prefix = split_s3(self.output_data_config.s3_output_path, "--output")
            parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""  # the SDK adds the job name itself
            return bucket, parent or None

    return StagedTrainer


def _session(region: str, bucket: str, dry_run: bool) -> Any:
    import boto3
    from sagemaker.core.helper.session_helper import Session

    class DryRunSession(Session):
        """Says where an upload would go and sends nothing."""

        def upload_data(self, path: str, bucket: str, key_prefix: str = "data", **_: Any) -> str:
            return f"s3://{bucket}/{key_prefix}"

    cls = DryRunSession if dry_run else Session
    return cls(boto_session=boto3.Session(region_name=region), default_bucket=bucket)


def build_trainer(opts: JobOptions, source_dir: Path) -> tuple[Any, list[Any]]:
    """The ModelTrainer of a job and its input channels."""
    from sagemaker.core.shapes import MetricDefinition
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        InputData,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
    )
    from sagemaker.train.distributed import Torchrun

    max_run, max_wait, region = validate(opts)
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")  # the role is checked by CreateTrainingJob itself
    cfg = resolve_config(opts)
    image = opts.image or default_image(region, opts.instance_type)
    state = package_source(source_dir, allow_dirty=opts.allow_dirty or opts.dry_run,
                           with_requirements=opts.image is None)
    control = {jobspec.COMMIT: state["commit"], jobspec.DIRTY: json.dumps(bool(state["dirty"])),
               jobspec.REGISTER: opts.register}
    bucket, _ = split_s3(opts.output, "--output")
    trainer = _trainer_class()(
        sagemaker_session=_session(region, bucket, opts.dry_run), role=opts.role, base_job_name=job_name(opts),
        training_image=image,
        source_code=SourceCode(source_dir=str(source_dir), entry_script=ENTRY,
                               requirements="requirements.txt" if opts.image is None else None),
        distributed=Torchrun() if opts.instance_count > 1 else None,
        compute=Compute(instance_type=opts.instance_type, instance_count=opts.instance_count,
                        volume_size_in_gb=opts.volume_gb, enable_managed_spot_training=opts.spot),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=max_run, max_wait_time_in_seconds=max_wait),
        output_data_config=OutputDataConfig(s3_output_path=f"{opts.output.rstrip('/')}/{job_name(opts)}",
                                            compression_type="GZIP"),
        checkpoint_config=CheckpointConfig(s3_uri=checkpoint_uri(opts), local_path="/opt/ml/checkpoints"),
        hyperparameters=jobspec.encode_hyperparameters(opts.kind, cfg, control),
        environment=dict(ENVIRONMENT),
    )
    trainer.with_metric_definitions([MetricDefinition(name=d["Name"], regex=d["Regex"])
                                     for d in jobspec.metric_definitions()])
    return trainer, [InputData(channel_name=name, data_source=uri) for name, uri in opts.channels().items()]


def training_request(opts: JobOptions) -> dict[str, Any]:
    """The CreateTrainingJob request (the API's field names) that ``launch`` sends."""
    with tempfile.TemporaryDirectory(prefix="sg-source-") as tmp:
        trainer, channels = build_trainer(dataclasses.replace(opts, dry_run=True), Path(tmp) / "source")
        return _json_ready(trainer._create_training_job_args(input_data_config=channels, boto3=True))


def launch(opts: JobOptions) -> dict[str, Any]:
    """Dry run: the request. Otherwise create the job (no waiting) and return its name and ARN."""
    if opts.dry_run:
        return training_request(opts)
    with tempfile.TemporaryDirectory(prefix="sg-source-") as tmp:
        trainer, channels = build_trainer(opts, Path(tmp) / "source")
        try:
            trainer.train(input_data_config=channels, wait=False, logs=False)
        except Exception as exc:  # botocore ClientError, NoCredentialsError...: one line, not a traceback
            if type(exc).__module__.startswith(("botocore", "boto3")):
                raise UserError(f"SageMaker refused the job: {redact(str(exc))}") from None
            raise
        job = trainer._latest_training_job
        return {"TrainingJobName": job.training_job_name, "TrainingJobArn": job.training_job_arn,
                "CheckpointS3Uri": checkpoint_uri(opts)}


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
