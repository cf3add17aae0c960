"""One MLflow store per workspace, shared by every kind: the runs of a workspace side by side in ``mlflow ui``.

The store is ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db`` in the current directory (beside
``runs/``); ``off`` turns tracking off. A run directory keeps its MLflow run id in ``mlflow_run_id`` so that a
rerun continues the same run. A run whose directory lies inside another tracked run's directory (the fold and
base models of a fusion: ``fusion/folds/gnn/fold-0``, ``fusion/base/lexical``) is nested under that run: the
nesting follows the directories, so no state is passed between the stages.

Kinds without a Lightning trainer (lexical, fusion) call ``record_run`` once; their metrics come from their
valid predictions under the engine's names (``val_accuracy``...), so every kind fills the same columns.
mlflow is imported lazily: a lexical run does not pay for it before it has something to log.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
STORE_FILE = "mlflow.db"
RUN_ID_FILE = "mlflow_run_id"
DEFAULT_EXPERIMENT = "streamguard"
PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests runs by
KIND_TAG = "streamguard.kind"
MAX_PARENT_DEPTH = 4  # fusion/folds/<kind>/fold-i is three levels below the fusion run


def store_uri(explicit: str | None = None) -> str | None:
    """The workspace's store: ``explicit`` (a config's ``tracking_uri``), else ``MLFLOW_TRACKING_URI``, else
    ``sqlite:///<cwd>/mlflow.db``; None when tracking is ``off``."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / STORE_FILE}"
    return None if uri.strip().lower() == "off" else uri


def short_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` for the default store of the current directory, else ``uri`` itself."""
    return f"sqlite:///{STORE_FILE}" if uri == f"sqlite:///{Path.cwd().resolve() / STORE_FILE}" else uri


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str = DEFAULT_EXPERIMENT) -> str:
    """The experiment's id, created when missing (so that Lightning's logger never announces creating it)."""
    from mlflow.exceptions import MlflowException

    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name)
    except MlflowException:  # another process created it meanwhile
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def parent_run_id(out_dir: Path) -> str | None:
    """The run id recorded by the nearest enclosing run directory (a fusion for its folds), if any."""
    here = Path(out_dir).resolve()
    for parent in list(here.parents)[:MAX_PARENT_DEPTH]:
        marker = parent / RUN_ID_FILE
        if marker.is_file():
            return marker.read_text().strip() or None
    return None


def run_name(out_dir: Path) -> str:
    """``gnn`` for a top-level run; ``gnn/fold-0`` or ``base/lexical`` for one nested in a fusion."""
    out_dir = Path(out_dir)
    return f"{out_dir.parent.name}/{out_dir.name}" if parent_run_id(out_dir) else out_dir.name


def run_tags(out_dir: Path, kind: str | None = None) -> dict[str, str]:
    tags = {KIND_TAG: kind} if kind else {}
    parent = parent_run_id(out_dir)
    if parent:
        tags[PARENT_TAG] = parent
    return tags


def recorded_run_id(c: Any, out_dir: Path) -> str | None:
    """The run id in ``out_dir/mlflow_run_id`` when that run exists in this store (else a fresh run)."""
    path = Path(out_dir) / RUN_ID_FILE
    run_id = path.read_text().strip() if path.is_file() else ""
    if not run_id:
        return None
    try:
        c.get_run(run_id)
    except Exception:  # another store, or a deleted run: MLflow raises its own and the store's errors
        return None
    return run_id


def log_params(c: Any, run_id: str, params: dict[str, Any]) -> list[str]:
    """Log the params the run lacks (MLflow refuses to change one); return the names whose value differs."""
    have = c.get_run(run_id).data.params
    new = {k: str(v)[:6000] for k, v in params.items()}
    from mlflow.entities import Param

    missing = [Param(k, v) for k, v in new.items() if k not in have]
    if missing:
        c.log_batch(run_id, params=missing)
    return [k for k, v in new.items() if k in have and have[k] != v]


def start_run(out_dir: Path, kind: str, params: dict[str, Any], tracking_uri: str | None = None,
              experiment: str = DEFAULT_EXPERIMENT) -> str | None:
    """Open (or continue) the run of ``out_dir`` with its params; a rerun with other params is a new run."""
    uri = store_uri(tracking_uri)
    if uri is None:
        return None
    c = client(uri)
    exp_id = ensure_experiment(uri, experiment)
    run_id = recorded_run_id(c, out_dir)
    if run_id is not None and log_params(c, run_id, params):
        run_id = None
    if run_id is None:
        run_id = c.create_run(exp_id, run_name=run_name(out_dir), tags=run_tags(out_dir, kind)).info.run_id
        log_params(c, run_id, params)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / RUN_ID_FILE).write_text(run_id + "\n")
    return run_id


def finish_run(out_dir: Path, metrics: dict[str, float], tracking_uri: str | None = None) -> None:
    """Log ``metrics`` (non-finite ones left out) to the run of ``out_dir`` and mark it finished."""
    uri = store_uri(tracking_uri)
    path = Path(out_dir) / RUN_ID_FILE
    if uri is None or not path.is_file():
        return
    from mlflow.entities import Metric

    c, run_id = client(uri), path.read_text().strip()
    now = _now_ms()
    batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
    if batch:
        c.log_batch(run_id, metrics=batch)
    c.set_terminated(run_id, "FINISHED")


def record_run(out_dir: Path, kind: str, params: dict[str, Any], metrics: dict[str, float] | None = None,
               tracking_uri: str | None = None) -> str | None:
    """A finished run of a kind without a trainer: params, extra ``metrics`` and those of its valid predictions."""
    run_id = start_run(out_dir, kind, params, tracking_uri)
    if run_id is not None:
        finish_run(out_dir, {**valid_metrics(out_dir), **(metrics or {})}, tracking_uri)
    return run_id


def fusion_metrics(models: list[str], meta: dict[str, Any]) -> dict[str, float]:
    """What a fusion learnt: one weight per base model, the bias and the threshold."""
    weights = {f"weight_{kind}": float(w) for kind, w in zip(models, meta.get("weights") or [])}
    return {**weights, "bias": float(meta.get("bias", math.nan)), "threshold": float(meta.get("threshold", math.nan))}


def valid_metrics(out_dir: Path) -> dict[str, float]:
    """The engine's validation metrics (decision at prob >= 0.5) from ``predictions/valid.jsonl``."""
    from streamguard.rundir import RunDir
    rows = RunDir(out_dir).read_predictions("valid", missing_ok=True)
    if not rows:
        return {}
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    y = np.array([int(r["label"]) for r in rows])
    p = np.clip(np.array([float(r["prob_vulnerable"]) for r in rows]), 1e-7, 1 - 1e-7)
    out = {"val_accuracy": float(accuracy_score(y, p >= 0.5)),
           "val_f1_vulnerable": float(f1_score(y, p >= 0.5, zero_division=0)),
           "val_loss": float(log_loss(y, p, labels=[0, 1]))}
    if len(set(y.tolist())) == 2:
        out["val_roc_auc"] = float(roc_auc_score(y, p))
    return out


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
