"""The container entry point of a SageMaker training job (``sg_entry.py`` calls ``main``).

It reads SageMaker's contract and runs the stage of the job's kind:

- ``/opt/ml/input/config/hyperparameters.json``: the kind and its resolved config (``jobspec``);
- ``SM_CHANNEL_TRAIN`` (or ``/opt/ml/input/data/train``): the processed dataset; for ``pretrain``, the corpus,
  with Devign (and an encoder to continue from) in the ``devign`` (and ``init``) channels;
- ``/opt/ml/checkpoints``: the run's ``checkpoints/`` folder. SageMaker restores it from the job's
  CheckpointConfig S3 URI before a restarted spot job starts, and the engine mirrors to that same URI,
  so the engine's own resume picks up where the interrupted job stopped;
- ``/opt/ml/output/data/run``: the run dir (uploaded as output.tar.gz);
- ``SM_MODEL_DIR`` (``/opt/ml/model``): the run without its per-epoch checkpoints (model.tar.gz); for
  ``pretrain``, the exported encoder and the run's records, without checkpoints or the token cache;
- ``/opt/ml/output/failure``: one line saying why the job failed, which SageMaker shows as FailureReason.

Under torchrun (several instances) every process runs this; the engine's DDP does the rest.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from streamguard.atomic import write_text
from streamguard.cloud import jobspec
from streamguard.errors import UserError

log = logging.getLogger("streamguard.cloud.container")
MAX_FAILURE = 1024  # SageMaker keeps the first 1024 characters of the failure file


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def write_failure(paths: jobspec.SageMakerPaths, message: str) -> None:
    if _rank() != 0:
        return
    paths.failure.parent.mkdir(parents=True, exist_ok=True)
    write_text(paths.failure, message[:MAX_FAILURE] + "\n")


def read_hyperparameters(paths: jobspec.SageMakerPaths) -> dict[str, Any]:
    if not paths.hyperparameters.is_file():
        raise UserError(f"{paths.hyperparameters} not found: not a SageMaker training container?")
    try:
        hp = json.loads(paths.hyperparameters.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{paths.hyperparameters} is not valid JSON: {exc.msg}") from None
    if not isinstance(hp, dict):
        raise UserError(f"{paths.hyperparameters} must hold an object")
    return hp


def _distributed(cfg: Any) -> Any:
    """Under torchrun: one engine device per local process, as many nodes as the world holds. One instance
    with several GPUs: the engine's DDP over all of them (Lightning starts the other processes)."""
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if not hasattr(cfg, "num_nodes"):
        return cfg
    if world > 1:
        return dataclasses.replace(cfg, devices=local, num_nodes=world // local, strategy="ddp")
    gpus = int(os.environ.get("SM_NUM_GPUS", "0") or 0)
    if gpus > 1 and cfg.devices == 1:
        return dataclasses.replace(cfg, devices=gpus, strategy="ddp")
    return cfg


def prepare_run_dir(paths: jobspec.SageMakerPaths) -> Path:
    """The run dir, its ``checkpoints`` being SageMaker's checkpoint dir (restored on a spot restart)."""
    run_dir = paths.output_data / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    link = run_dir / "checkpoints"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(paths.checkpoints.resolve(), target_is_directory=True)
    return run_dir


def resolve(kind: str, cfg: Any, run_dir: Path, data_dir: Path, paths: jobspec.SageMakerPaths) -> Any:
    """The config as this container runs it: tracking in the run dir, files named by it in the data channel,
    pretrain's inputs in their channels."""
    changes: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(cfg)}
    for channel in jobspec.PRETRAIN_CHANNELS if kind == jobspec.PRETRAIN else ():
        if getattr(cfg, channel):  # the launcher recorded the S3 prefix there: read its channel instead
            changes[channel] = str(_channel_dir(paths, channel))
    if "tracking_uri" in fields and not cfg.tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        changes["tracking_uri"] = f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"  # lands in output.tar.gz
    if "sample_weights" in fields and cfg.sample_weights:
        changes["sample_weights"] = str(data_dir / cfg.sample_weights)
    cfg = dataclasses.replace(cfg, **changes)
    return cfg if kind == jobspec.PRETRAIN else _distributed(cfg)  # pre-training runs on one device


def _channel_dir(paths: jobspec.SageMakerPaths, name: str) -> Path:
    folder = paths.channel(name)
    if not folder.is_dir():
        raise UserError(f"{name} channel {folder} not found (is --{name} the right S3 prefix?)")
    return folder


def export_model(run_dir: Path, model_dir: Path, with_checkpoint: bool = True) -> None:
    """The run without per-epoch checkpoints: best.ckpt (else last.ckpt) is what prediction loads. A pretrain
    run is used through its exported encoder: no checkpoint (they stay under the checkpoint URI), no token cache."""
    ckpts = run_dir / "checkpoints"
    keep = "best.ckpt" if (ckpts / "best.ckpt").is_file() else "last.ckpt"
    keep = keep if with_checkpoint else None
    for src in sorted(run_dir.rglob("*")):
        rel = src.relative_to(run_dir)
        if src.is_dir() or src.name.endswith(".tmp") or (rel.parts[0] == "checkpoints" and rel.name != keep):
            continue
        if rel.parts[0] == "cache":
            continue
        dst = model_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    # Checkpoints under a symlinked folder are not found by rglob on every Python: copy the kept one by name.
    if keep and (ckpts / keep).is_file():
        (model_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ckpts / keep, model_dir / "checkpoints" / keep)


def run(paths: jobspec.SageMakerPaths) -> Path:
    from streamguard.runtime import prepare_torch_cpu
    from streamguard.train import registry

    kind, cfg, control = jobspec.decode_hyperparameters(read_hyperparameters(paths))
    data_dir = paths.channel(jobspec.CHANNEL)
    if not data_dir.is_dir():
        raise UserError(f"data channel {data_dir} not found (is --data the processed dataset prefix?)")
    run_dir = prepare_run_dir(paths)
    cfg = resolve(kind, cfg, run_dir, data_dir, paths)
    log.warning("streamguard %s on %s, commit %s, rank %d", kind, data_dir, control.get(jobspec.COMMIT), _rank())
    prepare_torch_cpu()
    if kind == jobspec.PRETRAIN:
        from streamguard.pretrain.train import check_config, pretrain
        check_config(cfg)
        pretrain(data_dir, run_dir, cfg)
    else:
        registry.get(kind).train(data_dir, run_dir, cfg)
    if _rank() == 0:
        export_model(run_dir, paths.model, with_checkpoint=kind != jobspec.PRETRAIN)
        if control.get(jobspec.REGISTER):
            from streamguard.cloud.model_registry import register_run

            uri = getattr(cfg, "tracking_uri", None)
            if not uri or uri.lower() == "off":  # still a store that comes back with the job's outputs
                uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
            version = register_run(paths.model, control[jobspec.REGISTER], uri)
            log.warning("registered %s version %s", control[jobspec.REGISTER], version)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 143 stopped by SIGTERM (resumable), 2 bad input, 1 anything else."""
    del argv  # SageMaker's drivers append the hyperparameters as arguments; hyperparameters.json is the source
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = jobspec.SageMakerPaths.from_env()
    try:
        run(paths)
    except UserError as exc:
        write_failure(paths, f"streamguard: {exc}")
        print(f"streamguard: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        if exc.code == 143:  # the engine flushed its checkpoints; SageMaker restarts a spot job from them
            log.warning("stopped by SIGTERM; checkpoints are in %s", paths.checkpoints)
            return 143
        raise
    except Exception as exc:  # noqa: BLE001 - whatever it was, SageMaker must be told why in one line
        traceback.print_exc()
        write_failure(paths, f"{type(exc).__name__}: {exc}")
        return 1
    return 0
