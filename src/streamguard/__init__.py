"""StreamGuard: detectors of vulnerable C functions. ``streamguard.load(bundle)`` gives a ready detector."""
from __future__ import annotations

from typing import Any


def load(path: Any, threshold: float | None = None, data: Any = None, workers: int = 1) -> Any:
    """A ``streamguard.scan.detector.Detector`` for a bundle (``streamguard export``) or a run directory.

    >>> detector = streamguard.load("bundle/")          # doctest: +SKIP
    >>> detector.score("int f(char *s) { char b[8]; strcpy(b, s); return 0; }")
    """
    from streamguard.scan.detector import load as _load  # heavy imports only when used
    return _load(path, threshold, data, workers)
