"""The analysers' findings as one fixed feature vector per function (the ``analysers`` model kind's input).

Every feature is a count, and every count comes from lines of the function (``events``: (feature, line) pairs),
so a model over them can say which lines moved its score (the kind's line evidence). The vector:

- ``lines``: the function's lines (findings grow with length; the model must be able to tell the two apart);
- ``risky_lines``: lines calling a risky API (``data/risky_api.py``); the sink proxy of the taint-flow graph;
- ``ff_level_0`` .. ``ff_level_5``: flawfinder hits per level;
- ``ff_cat_<c>``: flawfinder hits per category (FF_CATEGORIES, then ``ff_cat_other``);
- ``cc_<severity>``: cppcheck findings per severity (CC_SEVERITIES);
- ``cc_failed``: cppcheck could not analyse the function (unknown macro, syntax error): 0 or 1;
- ``ff_on_risky``, ``cc_on_risky``: findings on a line that calls a risky API;
- ``cc_rule_<id>``: cppcheck findings per rule id, for the ``top_rules`` ids most frequent in the training
  functions (chosen by ``top_rule_ids``; kept in the model, so the vector is the same at prediction time).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamguard.data.risky_api import risky_name

FF_LEVELS = tuple(range(6))
FF_CATEGORIES = ("access", "buffer", "crypto", "format", "free", "input", "integer", "misc", "obsolete", "race",
                 "random", "shell", "tmpfile")
CC_SEVERITIES = ("error", "warning", "style", "performance", "portability")
FIXED = ("lines", "risky_lines", *(f"ff_level_{lv}" for lv in FF_LEVELS), *(f"ff_cat_{c}" for c in FF_CATEGORIES),
         "ff_cat_other", *(f"cc_{s}" for s in CC_SEVERITIES), "cc_failed", "ff_on_risky", "cc_on_risky")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def feature_names(rules: Sequence[str]) -> list[str]:
    return [*FIXED, *(f"cc_rule_{r}" for r in rules)]


def risky_lines(code: str) -> set[int]:
    """The 1-based lines of ``code`` that call a risky API."""
    return {n for n, text in enumerate(code.split("\n"), start=1)
            if any(risky_name(m.group(1)) for m in _CALL.finditer(text))}


def top_rule_ids(found: Sequence[dict[str, list[Any]]], n: int) -> list[str]:
    """The ``n`` cppcheck rule ids found in most functions of ``found`` (ties: by name, so the choice is stable)."""
    per_func = Counter(rule for f in found for rule in {x[2] for x in f["cppcheck"] if x[1] != "failed"})
    return [rule for rule, _ in sorted(per_func.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def events(code: str, found: dict[str, list[Any]], rules: Sequence[str]) -> list[tuple[int, int]]:
    """(feature index, 1-based line) for each unit of each count of ``code``'s vector."""
    index = {name: i for i, name in enumerate(feature_names(rules))}
    n_lines = code.count("\n") + 1
    risky = risky_lines(code)
    out = [(index["lines"], n) for n in range(1, n_lines + 1)] + [(index["risky_lines"], n) for n in sorted(risky)]
    for line, level, category in found["flawfinder"]:
        out.append((index[f"ff_level_{level}"], line))
        out.append((index.get(f"ff_cat_{category}", index["ff_cat_other"]), line))
        if line in risky:
            out.append((index["ff_on_risky"], line))
    for line, severity, rule in found["cppcheck"]:
        if severity == "failed":
            out.append((index["cc_failed"], 1))
            continue
        if f"cc_{severity}" in index:
            out.append((index[f"cc_{severity}"], line))
        if f"cc_rule_{rule}" in index:
            out.append((index[f"cc_rule_{rule}"], line))
        if line in risky:
            out.append((index["cc_on_risky"], line))
    return out


def vector(code: str, found: dict[str, list[Any]], rules: Sequence[str]) -> np.ndarray:
    evs = events(code, found, rules)
    counts = np.bincount([f for f, _ in evs], minlength=len(feature_names(rules))).astype(np.float64)
    counts[FIXED.index("cc_failed")] = min(counts[FIXED.index("cc_failed")], 1.0)  # one flag, however reported
    return counts


def matrix(codes: Sequence[str], found: Sequence[dict[str, list[Any]]], rules: Sequence[str]) -> np.ndarray:
    """(n functions, n features) counts."""
    return np.stack([vector(c, f, rules) for c, f in zip(codes, found)]) if codes else \
        np.zeros((0, len(feature_names(rules))))
