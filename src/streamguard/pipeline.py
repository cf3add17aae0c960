"""The main job: every stage in order, each skipped when its output is already there (resumable).

A pipeline file (configs/pipeline-*.yaml) lists steps; each is a ``streamguard`` command line with
``{name}``-style placeholders and the file whose presence means the step is done.
"""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

from streamguard.atomic import write_json
from streamguard.errors import UserError


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


def _finished(step: dict[str, Any], marker: Path) -> bool:
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return Path(step["done"]).exists() and isinstance(record, dict) and record.get("args") == step["args"]


def run_pipeline(path: Path, values: dict[str, str], only: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the steps; a failing step stops the job with its name, and a rerun resumes from it."""
    from streamguard.cli import main

    steps, params = load_steps(path, values)
    results = []
    for step in steps:
        if only and step["name"] not in only:
            continue
        marker = _marker(step)
        if marker is not None and _finished(step, marker):
            print(f"[pipeline] {step['name']}: done already ({step['done']})")
            results.append({"name": step["name"], "seconds": 0.0, "skipped": True})
            continue
        if marker is not None:
            marker.unlink(missing_ok=True)  # a rerun killed half-way must not look finished
        print(f"[pipeline] {step['name']}: streamguard {shlex.join(step['args'])}", flush=True)
        started = time.time()
        if main(step["args"]) != 0:
            raise UserError(f"pipeline step '{step['name']}' failed; fix it and rerun: finished steps are kept")
        if marker is not None and Path(step["done"]).exists():
            write_json(marker, {"step": step["name"], "args": step["args"], "finished": time.time()})
        results.append({"name": step["name"], "seconds": round(time.time() - started, 1), "skipped": False})
    total = sum(r["seconds"] for r in results)
    print("[pipeline] " + ", ".join(f"{r['name']} {r['seconds']:.0f}s" for r in results) + f"; total {total:.0f}s")
    if params.get("report"):
        print(f"[pipeline] report: {params['report']}")
    return results
