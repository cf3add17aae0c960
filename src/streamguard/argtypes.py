"""Range-checked number types for argparse: every numeric command-line option uses one of these, so a value
out of range (``--fail-on 90``, ``--bootstrap 0``, ``--max-file-size -1``, ``nan``, ``inf``) stops at parse
time with argparse's ``error:`` line and exit 2 instead of silently changing what the command does or crashing
later. ``tests/test_hardening_scan2.py`` walks the parser to keep it so.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _ranged(kind: type, low: float | None, high: float | None, name: str, low_open: bool = False,
            ) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        value = _number(text, kind)
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}")
        return value
    parse.__name__ = name  # argparse names the type in its messages
    parse.range_checked = True  # type: ignore[attr-defined]
    return parse


def int_at_least(low: int) -> Callable[[str], float | int]:
    return _ranged(int, low, None, f"an integer >= {low}")


probability = _ranged(float, 0.0, 1.0, "a number in [0, 1]")
positive_float = _ranged(float, 0.0, None, "a number > 0", low_open=True)
non_negative_float = _ranged(float, 0.0, None, "a number >= 0")
positive_int = _ranged(int, 1, None, "an integer >= 1")
non_negative_int = _ranged(int, 0, None, "an integer >= 0")


NEVER = "none"


def probability_or_none(text: str) -> float | str:
    """A score in [0, 1], or 'none' (returned as ``NEVER``)."""
    if text.strip().lower() == NEVER:
        return NEVER
    return probability(text)


probability_or_none.range_checked = True  # type: ignore[attr-defined]


def two_names(text: str) -> tuple[str, str]:
    """Two comma-separated, non-empty names (``compare --names a,b``)."""
    names = tuple(n.strip() for n in text.split(","))
    if len(names) != 2 or not all(names):
        raise argparse.ArgumentTypeError(f"expected two names separated by a comma, got {text!r}")
    return names  # type: ignore[return-value]
