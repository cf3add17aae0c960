"""Model kinds by name: one typed entry each, which also generates the ``train KIND`` sub-command.

Adding a kind is one module implementing ``kinds.ModelKind`` (train, predict, line evidence, bundle files, config;
docs/contracts.md), one config dataclass and one entry in ``KINDS``; no other code names a kind. Modules are
imported only when a kind is used, so a kind whose module (or an optional dependency of it) is missing fails with
one clear line instead of breaking every other kind; a module missing a part of the contract fails the same way
when it is loaded (``get``) or registered (``register``).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from streamguard import argtypes, thresholds
from streamguard.errors import UserError
from streamguard.rundir import RunDir
from streamguard.train import kinds


@dataclasses.dataclass(frozen=True)
class Option:
    """A command-line flag of ``train KIND`` that sets the config key ``key``."""
    flag: str
    key: str
    help: str
    type: Any = str                   # bool: a switch (store_true)
    choices: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    module: str | Any                 # import path of the module implementing kinds.ModelKind (or the module)
    config: str | type                # config class, or its name in streamguard.config
    help: str
    neural: bool = False              # trained by the shared engine: gets ENGINE_OPTIONS
    trainable: bool = True            # has a ``train KIND`` sub-command (the fusion is trained by ``fuse``)
    options: tuple[Option, ...] = ()


# The engine's settings every neural kind shares on the command line.
ENGINE_OPTIONS = (
    Option("--seed", "seed", "random seed", argtypes.non_negative_int),
    Option("--epochs", "epochs", "maximum epochs", argtypes.positive_int),
    Option("--batch-size", "batch_size", "training batch size", argtypes.positive_int),
    Option("--monitor", "monitor", "early-stopping and best-checkpoint metric (default val_roc_auc)",
           choices=("val_roc_auc", "val_f1_vulnerable", "val_accuracy")),
    Option("--checkpoint-uri", "checkpoint_uri", "fsspec URL to mirror checkpoints to, e.g. s3://b/run"),
    Option("--sample-weights", "sample_weights", "json {id: weight} or jsonl of {id, weight}"),
    Option("--devices", "devices", "number of devices (processes)", argtypes.positive_int),
    Option("--strategy", "strategy", "auto, ddp (gloo on CPU), ..."),
    Option("--precision", "precision", "32-true, bf16-mixed (CPU), 16-mixed (CUDA)"),
    Option("--deterministic", "deterministic", "deterministic algorithms", bool),
    Option("--tracking-uri", "tracking_uri", "MLflow URI (default: the workspace store; 'off')"),
    Option("--quick-test", "quick_test", "a few items and at most two epochs, to check the setup", bool),
)

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("lexical", "streamguard.train.lexical", "LexicalConfig",
         "TF-IDF character n-grams + logistic regression, C chosen on valid"),
    Kind("gnn", "streamguard.train.gnn", "GNNConfig", "GCN over compacted AST graphs", neural=True,
         options=(Option("--auto-batch-size", "auto_batch_size",
                         "batch size from the graph statistics and memory_budget_gb", bool),)),
    Kind("transformer", "streamguard.train.transformer", "TransformerConfig",
         "Hugging Face encoder + attention pooling, on the processed tokens", neural=True,
         options=(Option("--model", "model", "hub name (default microsoft/codebert-base), a local saved model "
                         "dir, or 'tiny'"),
                  Option("--accumulate", "accumulate", "gradient accumulation steps", argtypes.positive_int))),
    Kind("analysers", "streamguard.train.analysers", "AnalysersConfig",
         "flawfinder + cppcheck finding counts + logistic regression (a fusion member)",
         options=(Option("--jobs", "jobs", "cppcheck processes", argtypes.positive_int),)),
    Kind("fusion", "streamguard.train.fuse", "FuseConfig", "out-of-fold stacking of base models",
         trainable=False),
)}


def register(kind: Kind) -> None:
    """Add a kind at run time (plug-ins, tests); its module is loaded and checked against the contract now."""
    _load(kind)
    KINDS[kind.name] = kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def known_kinds() -> list[str]:
    return sorted(KINDS)


def entry(name: str) -> Kind:
    if name not in KINDS:
        raise UserError(f"unknown model kind '{name}' (known: {', '.join(known_kinds())})")
    return KINDS[name]


def get(name: str) -> ModuleType:
    """The module of kind ``name``; a UserError when the kind is unknown, its code is not installed, or its
    module lacks a part of the kind contract."""
    return _load(entry(name))


def _load(kind: Kind) -> ModuleType:
    module = kind.module
    if isinstance(module, str):
        try:
            module = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only a missing kind module (or one of its dependencies) is the user's problem; other import
            # errors are bugs and keep their traceback.
            raise UserError(f"model kind '{kind.name}' is not available: {exc.msg}") from None
    return kinds.check(kind.name, module, _config(kind))


def config_class(name: str) -> type:
    return _config(entry(name))


def _config(kind: Kind) -> type:
    cls = kind.config
    if isinstance(cls, type):
        return cls
    from streamguard import config
    return getattr(config, cls)


# --- bundles: what only the registry can answer, for any kind ----------------------------------------------

def export_model(run: Path, dst: Path, kind: str) -> None:
    """A run-shaped folder with what ``predict`` of ``kind`` needs: exp_config.json, threshold.json and the kind's
    own files (a fusion calls this again for each base run)."""
    dst.mkdir(parents=True)
    exp = RunDir(run).read_exp()
    hyper = exp.get("hyperparameters") or {}
    if "cache_dir" in hyper:  # a bundle's graphs are cached beside the scanned data, never in the trainer's cache
        hyper["cache_dir"] = None
    RunDir(dst).exp_path.write_text(json.dumps(exp, indent=2, sort_keys=True) + "\n")
    (dst / thresholds.THRESHOLD_FILE).write_text(json.dumps(thresholds.export_record(run)) + "\n")
    get(kind).export_files(run, dst)


def missing_bundle_file(model_dir: Path, kind: str) -> str | None:
    """The first file of the kind's BUNDLE_FILES that ``model_dir`` lacks (None: all there)."""
    return next((n for n in get(kind).BUNDLE_FILES if not (Path(model_dir) / n).exists()), None)


def line_scores(kind: str, model_dir: Path, prep_dir: Path, codes: list[str]) -> list[Any]:
    """Per function, one score per line (index 0 = line 1), by the model of ``kind`` in ``model_dir``. The kind
    reads what its model was trained on: the normalised code where the data was (its lines are the code's)."""
    from streamguard.features.normalise import normaliser
    text = normaliser(prep_dir)
    return get(kind).line_scores(model_dir, prep_dir, [text(c) for c in codes])
