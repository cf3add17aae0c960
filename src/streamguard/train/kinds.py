"""The contract every model kind implements in its own module, and the kind-neutral code around it.

A kind is one module (``streamguard.train.lexical``, ``.gnn``, ``.transformer``, ``.fuse``) with the members of
``ModelKind``, one config class and one line in ``registry.KINDS``. Nothing outside the kind's module knows what
its files are, how it scores or how it explains a score: export, scan, predict and explain ask the module.
A module that lacks a part of the contract is refused when it is loaded (``check``), in one line naming it.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.rundir import read_exp_config

# Every weight and setting in a bundle is JSON or safetensors (or plain text): loading one executes no pickle.
SAFE_SUFFIXES = frozenset({".json", ".safetensors", ".txt", ".md", ".jsonl", ".model"})


@runtime_checkable
class ModelKind(Protocol):
    """What a kind's module provides (a module satisfies it structurally: these are its top-level names)."""

    CONFIG: type                      # the kind's config dataclass (the one its registry line names)
    BUNDLE_FILES: tuple[str, ...]     # what a bundle's model/ dir must hold for ``predict`` (files or folders)

    def train(self, data_dir: Path, out_dir: Path, cfg: Any, train_ids: set[str] | None = None) -> Path:
        """Fit on the train split (only ``train_ids`` when given) and write a finished run dir."""

    def predict(self, run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
        """Rows of the predictions contract (docs/contracts.md) for ``split`` of ``data_dir``."""

    def line_scores(self, model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
        """Per function, one evidence score per line of its code (index 0 = line 1), from the model itself."""

    def export_files(self, run: Path, dst: Path) -> None:
        """Copy (or convert) the run's model files that ``predict`` needs into ``dst``, a bundle's model dir."""

    def config_from_run(self, exp: dict[str, Any]) -> Any:
        """The kind's config rebuilt from a run's exp_config.json (its ``hyperparameters``)."""

    def uses_torch(self, model_dir: Path) -> bool:
        """Whether ``predict`` runs neural forward passes (scan then chooses their precision)."""

    def reads_features(self, model_dir: Path) -> bool:
        """Whether ``predict`` reads processed tokens or graphs; if not, scan skips preprocessing functions and
        gives it records with the raw text only."""


# The contract's names, read off the protocol: annotated constants, then methods.
PARTS = tuple(ModelKind.__annotations__) + tuple(n for n, v in vars(ModelKind).items()
                                                 if callable(v) and not n.startswith("_"))
_DATA = set(ModelKind.__annotations__)


def check(name: str, module: Any, config: type | None = None) -> Any:
    """``module`` if it implements every part of the contract, else a UserError naming the first missing part."""
    where = getattr(module, "__name__", repr(module))
    for part in PARTS:
        value = getattr(module, part, None)
        if value is None or (part not in _DATA and not callable(value)):
            kind = "" if part in _DATA else "()"
            raise UserError(f"model kind '{name}' does not implement the kind contract: {where} has no {part}{kind}")
    if config is not None and not (isinstance(module.CONFIG, type) and issubclass(config, module.CONFIG)):
        raise UserError(f"model kind '{name}': the registry's config {config.__name__} is not a {where}.CONFIG "
                        f"({getattr(module.CONFIG, '__name__', module.CONFIG)})")
    return module


# --- the shared predict preamble ----------------------------------------------------------------------------

def open_run(run_dir: Path, data_dir: Path, kind: str) -> tuple[dict[str, Any], ProcessedDir]:
    """The run's exp_config and the dataset, checked before any model is loaded: the run is a finished run of
    ``kind``, and the data was encoded with the run's tokenizer and node vocabulary."""
    run_dir, data = Path(run_dir), ProcessedDir(data_dir)
    exp = read_exp_config(run_dir)
    if exp.get("model") != kind:
        raise UserError(f"{run_dir} is a {exp.get('model')} run, not a {kind} run")
    data.check_compatible(exp.get("data_identity"), run_dir)
    return exp, data


def check_ids(found: Sequence[str], ids: set[str] | None, where: Path) -> None:
    """Every requested id was found in the split."""
    if ids is not None and len(found) != len(ids):
        missing = sorted(ids - set(found))
        raise UserError(f"{len(missing)} requested id(s) are not in {where}, e.g. {missing[0]}")


def config_from_run(cls: type, exp: dict[str, Any]) -> Any:
    """``cls`` from the run's hyperparameters (keys it does not know are ignored; values are checked)."""
    from streamguard.config import load_config
    fields = getattr(cls, "__dataclass_fields__", {})
    return load_config(cls, overrides={k: v for k, v in (exp.get("hyperparameters") or {}).items() if k in fields})


# --- bundles ------------------------------------------------------------------------------------------------

def copy_files(run: Path, dst: Path, names: Sequence[str], kind: str) -> None:
    """The named files (or folders: their safe files) of ``run`` into ``dst``; a missing one means an unfinished run."""
    for name in names:
        src = run / name
        if not src.exists():
            raise UserError(f"export: {run} has no {name}; the {kind} run did not finish")
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=lambda d, names: [n for n in names if (Path(d) / n).is_file()
                                                                     and Path(n).suffix not in SAFE_SUFFIXES])
        else:
            shutil.copy2(src, dst / name)
