"""StreamGuard: detectors of vulnerable C functions. ``streamguard.load(bundle)`` gives a ready detector."""
from __future__ import annotations

from typing import Any


def load(path: Any, threshold: float | None = None, data: Any = None, workers: int = 1,
         precision: str = "auto") -> Any:
    """A ``streamguard.scan.detector.Detector`` for a bundle (``streamguard export``) or a run directory.
    ``precision``: of the neural forward passes; "fp32" reproduces the run's scores exactly, "auto" (the
    default) uses bf16 where the CPU has it (faster, scores within about 0.004).

    >>> detector = streamguard.load("bundle/")          # doctest: +SKIP
    >>> detector.score("int f(char *s) { char b[8]; strcpy(b, s); return 0; }")
    """
    from streamguard.scan.detector import load as _load  # heavy imports only when used
    return _load(path, threshold, data, workers, precision)
