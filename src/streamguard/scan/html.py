"""A self-contained HTML page of a scan: every shown function's code, escaped, with its evidence lines marked.

No script, no external resource: the page is inline CSS and escaped text, so code holding ``</script>`` or
``<img onerror=...>`` shows as text (tested in headless Chromium).
"""
from __future__ import annotations

import html
from pathlib import Path

from streamguard.scan.results import Finding, ScanReport

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.sum td{padding:2px 10px} .fn{border:1px solid #ccc;border-radius:6px;margin:1.2em 0;padding:.2em .8em}
.fn h2{font-size:1.05em} .vulnerable{color:#b00} .clean{color:#070}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:12px;line-height:1.35}
.ln{color:#999;display:inline-block;width:4.5em;user-select:none} .ev{background:#ffd6d6;display:block}
.ev .sc{float:right;color:#900}
"""


def _lines(root: Path, path: str) -> list[str]:
    p = Path(path) if Path(path).is_absolute() else root / path
    try:
        return p.read_bytes().decode("utf-8", errors="replace").split("\n")
    except OSError:
        return []


def _code(f: Finding, lines: list[str]) -> str:
    marks = {e.line: e.score for e in f.evidence}
    out = []
    for n in range(f.start_line, min(f.end_line, len(lines)) + 1):
        text = html.escape(lines[n - 1].rstrip("\r"))
        num = f'<span class="ln">{n}</span>'
        if n in marks:
            out.append(f'<span class="ev" id="ev-{n}">{num}{text}<span class="sc">evidence {marks[n]:+.3g}</span>'
                       "</span>")
        else:
            out.append(f"{num}{text}\n")
    return "".join(out)


def to_html(report: ScanReport, top: int | None = 50) -> str:
    root = Path(report.root)
    cache: dict[str, list[str]] = {}
    s = report.summary()
    e = html.escape
    rows = "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in s.items())
    skipped = "".join(f"<li>{e(f.path)}: {e(f.reason or '')} {e(f.detail)}</li>"
                      for f in report.files if f.status == "skipped")
    parts = []
    for f in report.findings[:top] if top else report.findings:
        lines = cache.setdefault(f.path, _lines(root, f.path))
        parts.append(f'<section class="fn"><h2><span class="{e(f.verdict)}">{e(f.verdict)}</span> '
                     f"{f.score:.3f} &mdash; <code>{e(f.function)}</code> in <code>{e(f.path)}</code> "
                     f"lines {f.start_line}-{f.end_line}</h2><pre>{_code(f, lines)}</pre></section>")
    title = f"StreamGuard scan: {report.model.get('kind')} model {report.model.get('name')}"
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>"
            f"<p>Threshold {report.threshold:.3f} (functions at or above it are marked vulnerable). Evidence lines are "
            f"highlighted; they show what moved the model's score, not where a bug is.</p>"
            f'<table class="sum">{rows}</table>'
            + (f"<details><summary>Skipped files</summary><ul>{skipped}</ul></details>" if skipped else "")
            + "".join(parts) + "</body></html>\n")
