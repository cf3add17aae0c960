"""Label monitoring: label balance per split / project / source, and a flagged shift between two sets of rows.

A shift is flagged when the vulnerable share differs by at least ``SHIFT_DIFF`` (5 points) and a two-sided
test of equal shares (Fisher's exact test on the 2x2 table) gives p < ``SHIFT_P``: both a size that matters and
one that is not sampling noise. Rows are raw rows (``target``) or processed / prediction rows (``label``).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from scipy import stats

SHIFT_DIFF = 0.05
SHIFT_P = 0.01


def _label(row: dict[str, Any]) -> int:
    return int(row["target"] if "target" in row else row["label"])


def _key(row: dict[str, Any], key: str) -> str:
    meta = row.get("metadata") or {}
    return str(row.get(key) or meta.get(key) or "")


def balance(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    labels = [_label(r) for r in rows]
    n = len(labels)
    return {"count": n, "vulnerable": sum(labels), "vulnerable_share": round(sum(labels) / n, 4) if n else None}


def balance_by(rows: list[dict[str, Any]], key: str, top: int = 20) -> dict[str, dict[str, Any]]:
    """Balance per value of ``key`` (``project``, ``source``), the ``top`` largest groups."""
    groups = Counter(_key(r, key) for r in rows)
    return {k: balance([r for r in rows if _key(r, key) == k]) for k, _ in groups.most_common(top)}


def label_shift(a: list[dict[str, Any]], b: list[dict[str, Any]], what: str = "") -> dict[str, Any]:
    """Vulnerable share of ``a`` and ``b``, their difference (b - a), Fisher's p, and whether it is flagged."""
    ba, bb = balance(a), balance(b)
    out: dict[str, Any] = {"what": what, "a": ba, "b": bb, "difference": None, "p_value": None, "flagged": False}
    if not ba["count"] or not bb["count"]:
        return out
    diff = bb["vulnerable_share"] - ba["vulnerable_share"]
    table = [[ba["vulnerable"], ba["count"] - ba["vulnerable"]], [bb["vulnerable"], bb["count"] - bb["vulnerable"]]]
    p = float(stats.fisher_exact(table).pvalue)
    out.update({"difference": round(diff, 4), "p_value": p, "flagged": abs(diff) >= SHIFT_DIFF and p < SHIFT_P})
    return out


def shifts_by(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str, top: int = 20) -> list[dict[str, Any]]:
    """``label_shift`` per value of ``key`` present in both sets (the ``top`` largest in ``b``)."""
    in_a = {_key(r, key) for r in a}
    values = [k for k, _ in Counter(_key(r, key) for r in b).most_common() if k in in_a][:top]
    return [label_shift([r for r in a if _key(r, key) == v], [r for r in b if _key(r, key) == v], f"{key}={v}")
            for v in values]


def monitor(named: dict[str, list[dict[str, Any]]], reference: str, keys: tuple[str, ...] = ("project", "source")
            ) -> dict[str, Any]:
    """Balance of every named set overall and per key, and the shift of each set against ``reference``."""
    out: dict[str, Any] = {"rule": f"flag when |share difference| >= {SHIFT_DIFF} and Fisher p < {SHIFT_P}",
                           "balance": {}, "shifts": []}
    for name, rows in named.items():
        out["balance"][name] = {"all": balance(rows), **{f"by_{k}": balance_by(rows, k) for k in keys}}
    ref = named.get(reference, [])
    for name, rows in named.items():
        if name == reference or not rows or not ref:
            continue
        out["shifts"].append(label_shift(ref, rows, f"{reference} -> {name}"))
        for k in keys:
            out["shifts"].extend({**s, "what": f"{reference} -> {name}, {s['what']}"} for s in shifts_by(ref, rows, k))
    out["flagged"] = [s["what"] for s in out["shifts"] if s["flagged"]]
    return out
