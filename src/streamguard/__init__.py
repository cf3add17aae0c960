"""StreamGuard: detectors of vulnerable C functions. ``streamguard.load(bundle)`` gives a ready detector.

The public Python API is this package's top level: ``import_dataset``, ``preprocess``, ``train_model``,
``export`` (streamguard.api: each a stage of the command line), ``load``, and ``UserError``;
examples/scan_quickstart.py uses all of them.
"""
from __future__ import annotations

from typing import Any

from streamguard.api import export, import_dataset, preprocess, train_model
from streamguard.errors import UserError  # what bad input raises: one line to show, no traceback

__all__ = ["UserError", "export", "import_dataset", "load", "preprocess", "train_model"]


def load(path: Any = None, threshold: float | None = None, data: Any = None, workers: int = 1,
         precision: str = "auto") -> Any:
    """A ``streamguard.scan.detector.Detector`` for a bundle (``streamguard export``) or a run directory; with no
    path, the default model shipped in the package (``streamguard.resources.default_model_dir()``).
    ``precision``: of the neural forward passes; "fp32" reproduces the run's scores exactly, "auto" (the
    default) uses bf16 where the CPU has it (faster, scores within about 0.004); "onnx" and "int8" run the
    transformer's on ONNX Runtime (the [onnx] extra). ``Score.prob`` is calibrated
    (the bundle's calibration.json), ``Score.raw_prob`` the model's own; ``threshold`` cuts the raw one.

    >>> detector = streamguard.load("bundle/")          # doctest: +SKIP
    >>> detector.score("int f(char *s) { char b[8]; strcpy(b, s); return 0; }")
    """
    from streamguard.scan.detector import load as _load  # heavy imports only when used
    return _load(path, threshold, data, workers, precision)
