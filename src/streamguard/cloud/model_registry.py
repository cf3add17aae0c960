"""A model registry on MLflow's: register a finished run (its model files, metrics and, where one was
exported, its bundle), list the versions, and load one back as a run dir that ``streamguard predict`` reads.

Works with any MLflow store that has a registry: the project's sqlite file locally, a server remotely.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from streamguard.errors import UserError

# What of a run dir a registered version carries: everything but the per-epoch checkpoints and stores.
SKIP_NAMES = {"mlflow.db", "mlflow_run_id"}
# A registered name goes into MLflow search filters (quoted) and artifact paths: letters, digits, . _ - only.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not _MODEL_NAME.fullmatch(name):
        raise UserError(f"model name {name!r}: use 1-100 letters, digits, '.', '_' or '-' (starting with a letter "
                        "or digit)")
    return name


def tracking_uri(explicit: str | None = None, run_dir: Path | None = None) -> str:
    """The workspace's store, the one training logs to (``mlflow_store.store_uri``): explicit >
    MLFLOW_TRACKING_URI > ``sqlite:///<cwd>/mlflow.db``. Never a run dir's own ``mlflow.db``: ``models
    register`` must write where ``models list`` and ``models load`` read, or a new version lands in a store
    nobody lists and the listing shows an older one as the latest. ``run_dir`` is accepted for callers."""
    from streamguard.train.mlflow_store import store_uri

    if explicit and explicit.lower() == "off":
        explicit = None
    return store_uri(explicit) or f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _model_files(run_dir: Path, dest: Path) -> None:
    ckpts = run_dir / "checkpoints"
    keep = "best.ckpt" if (ckpts / "best.ckpt").is_file() else "last.ckpt"
    for src in sorted(run_dir.rglob("*")):
        rel = src.relative_to(run_dir)
        if src.is_dir() or src.name in SKIP_NAMES or src.name.endswith(".tmp"):
            continue
        if rel.parts[0] == "checkpoints" and rel.name != keep:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def _metrics(run_dir: Path) -> tuple[list[tuple[int, dict[str, float]]], dict[str, float]]:
    per_epoch = []
    from streamguard.rundir import RunDir
    run = RunDir(run_dir)
    for row in run.read_metrics():
        vals = {k: v for k, v in row.items() if k != "epoch"}
        per_epoch.append((int(row["epoch"]), {k: v for k, v in vals.items() if math.isfinite(v)}))
    summary = {}
    if run.summary_path.is_file():
        data = run.read_summary()
        summary = {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(float(v))}
    return per_epoch, summary


def register_run(run_dir: Path, name: str, uri: str | None = None, bundle: Path | None = None) -> str:
    """Log the run's model files (and ``bundle``) to a new MLflow run and register them as a new version of
    ``name``; return the version."""
    from streamguard.rundir import RunDir

    check_name(name)
    run_dir = Path(run_dir)
    exp = RunDir(run_dir).read_exp()
    if bundle is not None and not Path(bundle).is_dir():
        raise UserError(f"bundle {bundle} not found (make it with `streamguard export RUN --out BUNDLE`)")
    if bundle is not None:  # a bundle whose files differ from its manifest is refused before anything is logged
        from streamguard.scan.bundle import verify
        verify(Path(bundle))
    store = tracking_uri(uri, run_dir)
    client = _client(store)
    experiment = client.get_experiment_by_name("streamguard-registry")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("streamguard-registry")
    git = exp.get("git") or {}
    tags = {"kind": str(exp["model"]), "git_commit": str(git.get("commit")), "source_run_dir": str(run_dir)}
    mlrun = client.create_run(exp_id, run_name=f"{name}-{run_dir.name}", tags=tags)
    run_id = mlrun.info.run_id
    per_epoch, summary = _metrics(run_dir)
    for step, vals in per_epoch:
        for key, value in vals.items():
            client.log_metric(run_id, key, value, step=step)
    for key, value in summary.items():
        client.log_metric(run_id, key, value)
    for key, value in list((exp.get("hyperparameters") or {}).items())[:100]:
        client.log_param(run_id, key, json.dumps(value)[:500])
    with tempfile.TemporaryDirectory(prefix="sg-register-") as tmp:
        _model_files(run_dir, Path(tmp) / "model")
        client.log_artifacts(run_id, str(Path(tmp) / "model"), artifact_path="model")
    if bundle is not None:
        client.log_artifacts(run_id, str(bundle), artifact_path="bundle")
    client.set_terminated(run_id)
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MlflowException RESOURCE_DOES_NOT_EXIST: first version of this name
        client.create_registered_model(name, tags={"kind": tags["kind"]})
    version = client.create_model_version(name, source=f"{mlrun.info.artifact_uri}/model", run_id=run_id,
                                          tags=tags)
    return str(version.version)


def list_versions(uri: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """Registered versions, newest first: name, version, kind, commit, best score, run id, created."""
    client = _client(tracking_uri(uri))
    query = f"name='{name}'" if name else ""
    rows = []
    for mv in client.search_model_versions(query):
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append({"name": mv.name, "version": int(mv.version), "kind": mv.tags.get("kind"),
                     "git_commit": (mv.tags.get("git_commit") or "")[:12], "best_score": metrics.get("best_score"),
                     "run_id": mv.run_id, "created_ms": mv.creation_timestamp})
    return sorted(rows, key=lambda r: (r["name"], -r["version"]))


def load_version(name: str, version: str | None, out: Path, uri: str | None = None) -> Path:
    """Download a registered version's model files to ``out`` (a run dir ``streamguard predict`` reads)."""
    import mlflow.artifacts

    check_name(name)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory (a run dir is written there)")
    if version not in (None, "latest") and not str(version).isdigit():
        raise UserError(f"--version takes a version number or 'latest', got {version!r}")
    client = _client(tracking_uri(uri))
    versions = [int(mv.version) for mv in client.search_model_versions(f"name='{name}'")]
    if not versions:
        raise UserError(f"no registered model named {name!r} in {tracking_uri(uri)}")
    chosen = int(version) if version not in (None, "latest") else max(versions)
    if chosen not in versions:
        raise UserError(f"{name} has no version {version} (versions: {', '.join(map(str, sorted(versions)))})")
    mv = client.get_model_version(name, str(chosen))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty")
    with tempfile.TemporaryDirectory(prefix="sg-load-") as tmp:
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp,
                                                       tracking_uri=tracking_uri(uri)))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        shutil.move(str(got), str(out))
    return out
