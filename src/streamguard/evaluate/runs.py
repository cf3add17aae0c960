"""Finding run directories, reading their predictions, and grouping seeds of one model together.

Grouping rule: ``--runs NAME=PATTERN`` puts every run the pattern matches under NAME. A bare PATTERN groups
its runs by ``(exp_config.model, base name)``, the base name being ``exp_config.name`` when present, else the
directory name with a trailing seed suffix (``-seed3``, ``_s3``, ``-3``) removed. Within a group every run must
have the same ``model`` and a distinct ``seed``: that is what makes them one model with several seeds.
"""
from __future__ import annotations

import dataclasses
import glob
import re
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.data.records import check_prediction, read_jsonl
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.provenance import sha256_file
from streamguard.rundir import EXP_FILE, RunDir

SEED_SUFFIX = re.compile(r"[-_](?:seed|s)?\d+$")
PRED_FIELDS = ("id", "label", "prob_vulnerable")


@dataclasses.dataclass
class Split:
    """One split's predictions, aligned to a common list of ids."""
    ids: list[str]
    label: np.ndarray
    prob: np.ndarray
    project: list[str]


@dataclasses.dataclass
class Run:
    path: Path
    model: str
    seed: int | None
    config: dict[str, Any]
    splits: dict[str, Split]
    curves: list[dict[str, float]]  # rows of metrics.csv, empty when the run has none


@dataclasses.dataclass
class ModelGroup:
    name: str
    model: str
    runs: list[Run]  # sorted by seed

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def _read_predictions(path: Path) -> Split:
    rows = read_jsonl(path)
    if not rows:
        raise UserError(f"{path} holds no predictions")
    for i, row in enumerate(rows, start=1):
        missing = [f for f in PRED_FIELDS if f not in row]
        if missing:
            raise UserError(f"{path}:{i}: missing field(s) {', '.join(missing)}")
        check_prediction(row, f"{path}:{i}")
    ids = [str(r["id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: duplicate ids")
    return Split(ids=ids, label=np.array([int(r["label"]) for r in rows]),
                 prob=np.array([float(r["prob_vulnerable"]) for r in rows]),
                 project=[str(r.get("project") or "unknown") for r in rows])


def load_run(path: Path) -> Run:
    """Read one run directory; every problem is a UserError naming the file."""
    if not path.is_dir():
        raise UserError(f"run directory not found: {path}")
    run = RunDir(path)
    config = run.read_exp()
    splits = {}
    for split in ("valid", "test"):
        if not run.has_predictions(split):
            raise UserError(f"{path}: {run.predictions_path(split)} is missing (evaluate needs valid and test)")
        splits[split] = _read_predictions(run.predictions_path(split))
    seed = config.get("seed")
    return Run(path=path, model=str(config["model"]), seed=int(seed) if seed is not None else None,
               config=config, splits=splits, curves=run.read_metrics())


def _expand(pattern: str) -> list[Path]:
    matches = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
    if not matches:
        raise UserError(f"no run directory matches {pattern!r}")
    return matches


def group_runs(specs: list[str]) -> list[ModelGroup]:
    """Apply the grouping rule of this module's docstring to the ``--runs`` arguments."""
    groups: dict[tuple[str, str], list[Run]] = {}
    seen: set[Path] = set()
    for spec in specs:
        name, pattern = spec.split("=", 1) if "=" in spec and not Path(spec).exists() else (None, spec)
        for path in _expand(pattern):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            run = load_run(path)
            base = str(run.config.get("name") or SEED_SUFFIX.sub("", path.resolve().name) or run.model)
            # a named group may hold several model kinds; that is caught below with a clear message
            key = ("", name) if name else (run.model, base)
            groups.setdefault(key, []).append(run)
    out = []
    for (_, display), runs in groups.items():
        models = sorted({r.model for r in runs})
        if len(models) > 1:
            raise UserError(f"runs grouped as {display!r} mix model kinds {models}; name groups with NAME=PATTERN")
        seeds = [r.seed for r in runs]
        if len(runs) > 1 and len(set(seeds)) != len(seeds):
            raise UserError(f"runs grouped as {display!r} repeat a seed ({seeds}); they are not one model's seeds")
        out.append(ModelGroup(name=display, model=models[0], runs=sorted(runs, key=lambda r: r.seed or 0)))
    names = [g.name for g in out]
    if len(set(names)) != len(names):
        out = [dataclasses.replace(g, name=f"{g.model}:{g.name}") for g in out]
    return out


def select_seeds(groups: list[ModelGroup], seeds: str | None) -> list[ModelGroup]:
    """``--seeds N`` keeps each model's N lowest seeds; ``--seeds 1,2,3`` keeps runs with those seeds."""
    if not seeds:
        return groups
    try:
        values = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds must be a count or a comma-separated list of seeds, got {seeds!r}") from None
    out = []
    for g in groups:
        runs = g.runs[:values[0]] if len(values) == 1 else [r for r in g.runs if r.seed in values]
        if not runs:
            raise UserError(f"model {g.name!r} has no run with seed(s) {seeds}")
        out.append(dataclasses.replace(g, runs=runs))
    return out


PREDICTED_SPLITS = ("valid.jsonl", "test.jsonl")


def check_same_data(groups: list[ModelGroup]) -> list[str]:
    """Refuse runs predicted on different functions: ids are row numbers, so paired tests would pair different
    functions. Runs agree when their processed valid and test files are the same (exp_config.json
    ``data_sha256``), or when they were preprocessed differently (another tokenizer: the encoder ablation) from
    the same raw valid and test splits (``raw_sha256``): the ids then name the same functions. Runs that record
    no checksums cannot be checked; they and a raw-split match are named in the returned warnings."""
    seen: dict[tuple[str | None, ...], Run] = {}
    unchecked = []
    for run in (r for g in groups for r in g.runs):
        sums = run.config.get("data_sha256")
        if not isinstance(sums, dict) or not all(sums.get(s) for s in PREDICTED_SPLITS):
            unchecked.append(str(run.path))
            continue
        seen.setdefault(tuple(sums[s] for s in PREDICTED_SPLITS), run)
    notes = [f"{p}: {EXP_FILE} records no data checksums; same data not verified" for p in unchecked]
    if len(seen) <= 1:
        return notes
    raw = {_raw_splits(run) for run in seen.values()}
    if len(raw) == 1 and None not in raw:
        return notes + ["runs preprocessed differently from the same raw valid and test splits are compared by id: "
                        + ", ".join(str(r.path) for r in seen.values())]
    (a, ra), (b, rb) = list(seen.items())[:2]
    split = PREDICTED_SPLITS[0] if a[0] != b[0] else PREDICTED_SPLITS[1]
    raise UserError(f"runs were predicted on different data: the {split} of {ra.path} differs from the one of "
                    f"{rb.path} (sha256 in {EXP_FILE}), and their raw splits are not known to be the same; "
                    "evaluate only runs of one processed dataset, or of one raw dataset, together")


def _raw_splits(run: Run) -> tuple[str, ...] | None:
    """sha256 of the raw valid and test splits behind ``run``'s data: from its exp_config.json, or, for a run
    trained before that was recorded, from its data dir's metadata while that dir still holds the files the run
    predicted on."""
    splits = ("valid", "test")
    raw = run.config.get("raw_sha256")
    if not isinstance(raw, dict) or not all(raw.get(s) for s in splits):
        data = ProcessedDir(run.config.get("data_dir") or "")
        paths = [data.split_path(s) for s in splits]
        if not all(p.is_file() and sha256_file(p) == run.config["data_sha256"][p.name] for p in paths):
            return None
        raw = data.raw_hashes()
    return tuple(raw[s] for s in splits) if all(raw.get(s) for s in splits) else None
