"""The evaluate stage: runs (+ peers) in, reports/<name>/{metrics.json, report.md, report.html} out."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamguard import atomic
from streamguard.config import EvaluateConfig, to_dict
from streamguard.errors import UserError
from streamguard.evaluate import analysis, calibration, plots
from streamguard.evaluate.entries import Entry, Items, common_items, model_entries, peer_entry, trivial_entry
from streamguard.evaluate.label_section import label_monitoring
from streamguard.evaluate.pairs import PAIR_FIELDS, entry_pair_metrics
from streamguard.evaluate.report import render_html, render_markdown
from streamguard.evaluate.runs import check_same_data, group_runs, select_seeds
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields
from streamguard.provenance import environment, sha256_file
from streamguard.rundir import RunDir
from streamguard.runlock import locked


def _examples(entries: list[Entry], test: Items, code: list[str] | None, k: int) -> dict[str, Any]:
    """Most confident mistakes of the best model (highest test accuracy; its lowest-seed run)."""
    models = [e for e in entries if e.kind == "model"]
    if not models or k <= 0:
        return {"note": "No model to show examples for.", "items": []}
    best = max(models, key=lambda e: float(np.mean([np.mean((s >= t) == test.label) for s, t in
                                                    zip(e.test, e.thresholds)])))
    prob, t = best.test[0], best.thresholds[0]
    fn = [i for i in np.argsort(prob) if test.label[i] == 1 and prob[i] < t][:k]
    fp = [i for i in np.argsort(-prob) if test.label[i] == 0 and prob[i] >= t][:k]
    items = [{"kind": kind, "id": test.ids[i], "project": test.project[i], "label": int(test.label[i]),
              "prob": float(prob[i]), "code": code[i] if code is not None else None}
             for kind, idx in (("false negative", fn), ("false positive", fp)) for i in idx]
    return {"note": f"Most confident mistakes of {best.name} (seed {best.seeds[0]}, threshold {t:.3f}).",
            "items": items, "model": best.name}


def _inputs(entries: list[Entry]) -> dict[str, Any]:
    out = {}
    for e in entries:
        for run in e.runs:
            out[run] = {split: sha256_file(RunDir(run).predictions_path(split)) for split in ("valid", "test")}
    return out


def _load(specs: list[str], seeds: str | None, cfg: EvaluateConfig,
          data_dir: Path | None, out_dir: Path) -> tuple[list[Entry], Items, Items, list[str], list[str] | None]:
    groups = select_seeds(group_runs(specs), seeds)
    unchecked = check_same_data(groups)
    valid, _ = common_items(groups, "valid")
    test, dropped = common_items(groups, "test")
    warnings = [f"{path}: {n} test ids not predicted by every run were left out" for path, n in dropped.items() if n]
    warnings += unchecked
    entries = model_entries(groups, valid, test, cfg.threshold_metric)
    code = None
    if cfg.peers and data_dir is None:
        raise UserError("--peers needs --data PROCESSED_DIR: the peers run on the raw functions")
    for name in cfg.peers:
        entry, code = peer_entry(name, data_dir, valid, test, cfg.threshold_metric, out_dir / "peer_cache")
        entries.append(entry)
    if code is None and data_dir is not None:
        from streamguard.evaluate.peers import raw_functions
        code = raw_functions(data_dir, "test", test.ids)
    entries.append(trivial_entry(valid, test))
    return entries, valid, test, warnings, code


def evaluate(specs: list[str], out_dir: Path, cfg: EvaluateConfig, data_dir: Path | None = None,
             seeds: str | None = None) -> dict[str, Any]:
    """Score every run and peer on the shared test items and write the three reports into ``out_dir``."""
    if cfg.threshold_metric not in ("accuracy", "f1"):
        raise UserError(f"threshold_metric must be accuracy or f1, got {cfg.threshold_metric!r}")
    if cfg.bootstrap < 1000:
        raise UserError(f"bootstrap must be at least 1000 resamples, got {cfg.bootstrap}")
    if not specs:
        raise UserError("--runs needs at least one run directory")
    with locked(out_dir, "--out"):
        return _evaluate(specs, Path(out_dir), cfg, data_dir, seeds)


def _evaluate(specs: list[str], out_dir: Path, cfg: EvaluateConfig, data_dir: Path | None,
              seeds: str | None) -> dict[str, Any]:
    started = time.time()
    entries, valid, test, warnings, code = _load(specs, seeds, cfg, data_dir, out_dir)
    if cfg.primary is not None and cfg.primary not in [e.name for e in entries]:
        raise UserError(f"--primary {cfg.primary!r} is none of the entries: {', '.join(e.name for e in entries)}")
    results, dists = analysis.entry_metrics(entries, valid, test, cfg)
    res: dict[str, Any] = {
        "settings": to_dict(cfg), "test_items": len(test.ids), "valid_items": len(valid.ids),
        "test_vulnerable_share": float(test.label.mean()), "entries": results,
        "published": analysis.published_rows(),
        "paired": analysis.paired_tests(entries, test, results, dists, cfg.primary),
        "across_seeds": analysis.across_seeds(entries, results),
        "per_project": analysis.per_project(entries, test, cfg), "warnings": warnings,
        "inputs": _inputs(entries), "data_dir": str(data_dir) if data_dir else None,
        "labels": label_monitoring(data_dir) if data_dir else None,
        "pairs": _pairs(entries, test, data_dir)}
    examples = _examples(entries, test, code, cfg.examples)
    res["examples"] = [{k: v for k, v in ex.items() if k != "code"} for ex in examples["items"]]
    res["calibration"] = calibration_rows(entries, valid, test)
    images = _figures(entries, valid, test, warnings)
    res["environment"] = environment()
    res["seconds"] = round(time.time() - started, 2)
    res = _clean(res)
    atomic.write_text(out_dir / "metrics.json", json.dumps(res, indent=2, allow_nan=False) + "\n")
    atomic.write_text(out_dir / "report.md", render_markdown(res))
    atomic.write_json(out_dir / "evaluate_config.json", to_dict(cfg), sort_keys=True)
    atomic.write_text(out_dir / "report.html", render_html(res, images, examples))  # last: the done marker
    return res


def calibration_rows(entries: list[Entry], valid: Items, test: Items) -> dict[str, Any]:
    """Per model (first seed): both calibrations fitted on its valid scores, ECE and Brier on valid and test."""
    out = {}
    for e in entries:
        if e.kind == "model":
            c = calibration.fit(e.valid[0], valid.label, test=(e.test[0], test.label))
            out[e.name] = {"temperature": c.temperature, **c.stats}
    return out


def _pairs(entries: list[Entry], test: Items, data_dir: Path | None) -> dict[str, Any]:
    """Pair and within-file ranking metrics (evaluate/pairs.py) where the raw rows carry pairs or file context."""
    if data_dir is None:
        return {}
    recs = [{"id": i, "metadata": m} for i, m in zip(test.ids, _metadata(data_dir, test.ids))]
    return entry_pair_metrics(entries, test.ids, test.label.tolist(), raw_fields(data_dir, "test", recs, PAIR_FIELDS))


def _metadata(data_dir: Path, ids: list[str]) -> list[dict[str, Any]]:
    """The processed test records' metadata (its raw row number) in ``ids`` order; {} for an id not there."""
    by_id = {r["id"]: r.get("metadata") for r in ProcessedDir(data_dir).read_split("test", keep=("id", "metadata"))}
    return [by_id.get(i) or {} for i in ids]


def _figures(entries: list[Entry], valid: Items, test: Items, warnings: list[str]) -> dict[str, str | None]:
    """Every figure, each on its own: one that fails is left out with a warning, never the report."""
    makers = {"roc_pr": lambda: plots.roc_pr(entries, test), "confusion": lambda: plots.confusion(entries, test),
              "calibration": lambda: plots.calibration(entries, valid, test),
              "training": lambda: plots.training_curves(entries)}
    images: dict[str, str | None] = {}
    for key, make in makers.items():
        try:
            images[key] = make()
        except Exception as exc:  # noqa: BLE001 - a figure is decoration; the numbers are the report
            plots.plt.close("all")
            images[key] = None
            why = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:200]
            warnings.append(f"figure {key} left out: {type(exc).__name__}: {why}")
    return images


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN (a metric undefined on one class) to null."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
