"""The HTML report of ``streamguard denoise``: label balance before/after per split, project and source, the
ranked label issues and the hard set, with their code (escaped)."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from streamguard.atomic import write_text

CODE_CHARS = 3000

_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        "pre{background:#f6f6f6;padding:6px;overflow-x:auto;font-size:12px;max-height:300px}")


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _items(title: str, rows: list[dict], code: dict[str, str]) -> str:
    parts = [f"<h2>{html.escape(title)}</h2>"]
    for r in rows:
        text = code.get(r["id"], "")
        cut = text[:CODE_CHARS] + ("\n..." if len(text) > CODE_CHARS else "")
        meta = ", ".join(f"{k} {r[k]}" for k in ("rank", "label", "self_confidence", "weight", "project", "source")
                         if k in r)
        parts.append(f"<h3>{html.escape(r['id'])}</h3><p>{html.escape(meta)}</p><pre>{html.escape(cut)}</pre>")
    return "".join(parts)


def write_report(path: Path, summary: dict[str, Any], issues: list[dict], hard: list[dict],
                 code: dict[str, str]) -> None:
    parts = [f"<!doctype html><meta charset='utf-8'><title>denoise</title><style>{_CSS}</style>",
             "<h1>Label noise: confident learning on out-of-fold probabilities</h1>",
             f"<p>{summary['n_flagged']} of {summary['n_train']} train labels flagged "
             f"({summary['flagged_share']:.1%}; by given label {html.escape(str(summary['flagged_by_label']))}), "
             f"mode <b>{html.escape(summary['mode'])}</b>, {summary['n_hard']} items with self-confidence below "
             f"{summary['hard_below']}. 'After' = weighted by the sample weights (valid/test are not reweighted).</p>"]
    cols = ["value", "count", "vulnerable_share", "weight", "weighted_vulnerable_share"]
    for split, by in summary["balance"].items():
        for key, groups in by.items():
            parts.append(f"<h2>{html.escape(split)}: by {html.escape(key)}</h2>")
            parts.append(_table([{"value": k, **v} for k, v in groups.items()], cols))
    parts.append(_items(f"Top {len(issues)} suspected label issues", issues, code))
    parts.append(_items(f"Hardest {len(hard)} items", hard, code))
    write_text(path, "".join(parts))
