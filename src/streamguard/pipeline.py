"""The main job: every stage in order, each skipped when its output is already there (resumable).

A pipeline file (configs/pipeline-*.yaml) lists steps; each is a ``streamguard`` command line with
``{name}``-style placeholders and the file whose presence means the step is done. Steps run in this process;
each one's output goes to ``<logs>/<step>.log`` (``logs`` param, default ``<runs>/logs``).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from streamguard import logs
from streamguard.atomic import write_json
from streamguard.errors import UserError
from streamguard.progress import StageDisplay
from streamguard.provenance import git_state
from streamguard.train import mlflow_store


def load_steps(path: Path, values: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    if not path.is_file():
        raise UserError(f"pipeline file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:  # a tag safe_load refuses (!!python/object ...), or broken YAML
        raise UserError(f"{path}: not a pipeline file safe YAML can read ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a pipeline file is a mapping with params and steps")
    params = _resolve({**{k: str(v) for k, v in (spec.get("params") or {}).items()}, **values})
    steps = []
    for step in spec.get("steps") or []:
        try:
            args = [a.format(**params) for a in shlex.split(step["run"])]
            done = step["done"].format(**params) if step.get("done") else None
        except KeyError as exc:
            raise UserError(f"{path}: step {step.get('name', '?')} uses unknown placeholder {exc}") from None
        steps.append({"name": step["name"], "args": args, "done": done})
    return steps, params


def _resolve(params: dict[str, str]) -> dict[str, str]:
    """Params may name other params (``raw: data/raw/{name}``): substitute until nothing changes."""
    for _ in range(10):
        try:
            resolved = {k: v.format(**params) for k, v in params.items()}
        except KeyError as exc:
            raise UserError(f"pipeline param refers to unknown param {exc}") from None
        if resolved == params:
            return resolved
        params = resolved
    raise UserError("pipeline params refer to each other in a cycle")


def _marker(step: dict[str, Any]) -> Path | None:
    """The pipeline's own done marker beside the step's ``done`` file, written after the step returned 0:
    the ``done`` file alone can survive from an earlier run while a rerun was killed half-way through."""
    if not step["done"]:
        return None
    done = Path(step["done"])
    return done.with_name(f".{done.name}.step-done")


def forget(path: Path, values: dict[str, str], first: str) -> None:
    """Make step ``first`` and every step after it run again next time: its inputs changed outside the pipeline (a
    finished step is otherwise skipped whatever its inputs), so their done markers go."""
    steps, _ = load_steps(path, values)
    names = [s["name"] for s in steps]
    if first not in names:
        raise UserError(f"{path}: no step named {first!r}")
    for step in steps[names.index(first):]:
        marker = _marker(step)
        if marker is not None:
            marker.unlink(missing_ok=True)


def _finished(step: dict[str, Any], marker: Path) -> bool:
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return Path(step["done"]).exists() and isinstance(record, dict) and record.get("args") == step["args"]


def run_pipeline(path: Path, values: dict[str, str], only: list[str] | None = None, *,
                 main: Callable[[list[str]], int]) -> list[dict[str, Any]]:
    """Run the steps with ``main`` (the ``streamguard`` command's, which the CLI passes in: this module sits
    below the CLI); a failing step stops the job with its name, and a rerun resumes from it.

    The console shows one line per step with its time, a live progress line while a step runs, the warnings,
    and at the end the test results and the report path; each step's whole output goes to its log file."""
    steps, params = load_steps(path, values)
    todo = [s for s in steps if not only or s["name"] in only]
    logs_dir = logs_folder(params)
    console = Console(file=sys.stderr, highlight=False, soft_wrap=True)  # a line stays one line in a log file
    console.print(f"pipeline {path}: {len(todo)} steps; the full output of each is in {logs_dir}/<step>.log")
    if git_state().get("dirty"):
        console.print("! the checkout has uncommitted changes: the runs will record dirty: true (headline results "
                      "come from a clean commit)")
    results, started = [], time.time()
    with StageDisplay(console) as display:
        for step in todo:
            results.append(_run_step(step, main, display, logs_dir))
    summarize(params, results, time.time() - started, Console(file=sys.stdout, highlight=False, soft_wrap=True))
    return results


def logs_folder(params: dict[str, str]) -> Path:
    """``logs`` when the pipeline file names it, else ``<runs>/logs``."""
    if params.get("logs"):
        return Path(params["logs"])
    return Path(params.get("runs") or ".") / "logs"


def _run_step(step: dict[str, Any], main: Callable[[list[str]], int], display: StageDisplay,
              logs_dir: Path) -> dict[str, Any]:
    name, out = step["name"], display.console
    marker = _marker(step)
    if marker is not None and _finished(step, marker):
        out.print(f"- {name:<12} {'done':>8}  already ({step['done']})")
        return {"name": name, "seconds": 0.0, "skipped": True}
    if marker is not None:
        marker.unlink(missing_ok=True)  # a rerun killed half-way must not look finished
    log_path = logs_dir / f"{name}.log"
    display.start(name)
    started, rc = time.time(), 1
    try:
        with logs.capture(log_path, display.echo):
            print(f"$ streamguard {shlex.join(step['args'])}", flush=True)
            rc = main(step["args"])
    finally:
        seconds = time.time() - started
        display.end()
        if rc != 0:
            out.print(f"x {name:<12} {duration(seconds):>8}  failed: {last_error(log_path)}")
            out.print(f"  {'':<12} {'':>8}  full output: {log_path}")
    if rc != 0:
        raise UserError(f"pipeline step '{name}' failed; fix it and rerun: finished steps are kept")
    if marker is not None and Path(step["done"]).exists():
        write_json(marker, {"step": name, "args": step["args"], "finished": time.time()})
    out.print(f"✓ {name:<12} {duration(seconds):>8}" + (f"  -> {step['done']}" if step["done"] else ""))
    return {"name": name, "seconds": round(seconds, 1), "skipped": False}


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def last_error(log_path: Path) -> str:
    """The step's error line (the CLI's ``streamguard: error: ...``), else the last line it wrote."""
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()] \
        if log_path.is_file() else []
    errors = [ln for ln in lines if ln.startswith("streamguard: error:")]
    if errors:
        return errors[-1].removeprefix("streamguard: error:").strip()
    return lines[-1] if lines else "(no output)"


def summarize(params: dict[str, str], results: list[dict[str, Any]], seconds: float, console: Console) -> None:
    """The closing lines: time, the test results of the report, where the report and the runs are."""
    ran = [r for r in results if not r["skipped"]]
    console.print(f"pipeline finished in {duration(seconds)} ({len(ran)} steps run, "
                  f"{len(results) - len(ran)} already done)")
    report = Path(params["report"]) if params.get("report") else None
    table = results_table(report.with_name("metrics.json")) if report else None
    if table is not None:
        console.print(table)
    if report is not None:
        console.print(f"report: {report}")
    uri = mlflow_store.store_uri()
    if uri is not None:
        console.print(f"runs tracked in MLflow: mlflow ui --backend-store-uri {mlflow_store.short_uri(uri)}")


def results_table(metrics_path: Path) -> Table | None:
    """Model, test accuracy (95% CI) and ROC-AUC of every entry of the evaluation, as the report has them."""
    if not metrics_path.is_file():
        return None
    res = json.loads(metrics_path.read_text())
    table = Table(title=f"test set: {res.get('test_items', '?')} functions, thresholds chosen on valid",
                  title_justify="left")
    table.add_column("model")
    table.add_column("accuracy [95% CI]", justify="right")
    table.add_column("ROC-AUC", justify="right")
    for name, entry in (res.get("entries") or {}).items():
        at = entry.get("test_at_valid_threshold") or {}
        acc, auc = at.get("accuracy") or {}, at.get("roc_auc") or {}
        ci = acc.get("ci") or [None, None]
        table.add_row(name, f"{_num(acc.get('value'))} [{_num(ci[0])}, {_num(ci[1])}]", _num(auc.get("value")))
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
