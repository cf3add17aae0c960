"""A self-contained HTML page of a scan that people navigate: the counts and flagged share, a histogram of the
scores (inline SVG), the summary as a table, a per-file table linking to the findings, and the findings collapsed
to their evidence lines (a few lines of context) and expandable to the whole function, with a filter by score and
by file.

No external resource and one inline script, allowed by its hash in the page's Content-Security-Policy (so it runs
offline and nothing injected could run); every text from the scanned tree is escaped, so code holding
``</script>`` or ``<img onerror=...>`` shows as text (tested in headless Chromium).
"""
from __future__ import annotations

import base64
import hashlib
from collections import defaultdict
from html import escape as e
from pathlib import Path
from urllib.parse import quote

from streamguard.scan.html_assets import CSS, SCRIPT
from streamguard.scan.results import Finding, ScanReport

CONTEXT = 2          # lines shown around each evidence line in the collapsed view
HEAD_LINES = 4       # lines shown of a function without evidence
BINS = 20
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = f"default-src 'none'; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'"


def _lines(root: Path, path: str) -> list[str]:
    p = Path(path) if Path(path).is_absolute() else root / path
    try:
        return p.read_bytes().decode("utf-8", errors="replace").split("\n")
    except OSError:
        return []


def _line(n: int, text: str, marks: dict[int, float]) -> str:
    num = f'<span class="ln">{n}</span>'
    if n in marks:
        return f'<span class="ev">{num}{e(text)}<span class="sc">evidence {marks[n]:+.3g}</span></span>'
    return f"{num}{e(text)}\n"


def _code(f: Finding, lines: list[str]) -> tuple[str, str]:
    """(the collapsed view: evidence lines with CONTEXT lines around them, the whole function)."""
    marks = {ev.line: ev.score for ev in f.evidence}
    last = min(f.end_line, len(lines))
    text = {n: lines[n - 1].rstrip("\r") for n in range(f.start_line, last + 1)}
    keep = sorted({n for m in marks for n in range(m - CONTEXT, m + CONTEXT + 1) if n in text}) if marks \
        else [n for n in text if n < f.start_line + HEAD_LINES]
    short, prev = [], None
    for n in keep:
        if prev is not None and n != prev + 1:
            short.append('<span class="gap">&#8942;</span>\n')
        short.append(_line(n, text[n], marks))
        prev = n
    if keep and keep[-1] < last:
        short.append('<span class="gap">&#8942;</span>\n')
    return "".join(short), "".join(_line(n, t, marks) for n, t in text.items())


def _histogram(report: ScanReport) -> str:
    counts = [0] * BINS
    for f in report.findings:
        counts[min(int(f.score * BINS), BINS - 1)] += 1
    top = max(counts) or 1
    cut = report.shown_threshold()  # the scores drawn are the shown (calibrated) ones
    w, h, pad = 600, 150, 24
    bw = (w - 2 * pad) / BINS
    bars = []
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        cls = "hot" if (i + 1) / BINS > cut else "cold"
        bars.append(f'<rect class="{cls}" x="{pad + i * bw:.1f}" y="{h - pad - bh:.1f}" width="{bw - 2:.1f}" '
                    f'height="{bh:.1f}"><title>{i / BINS:.2f}-{(i + 1) / BINS:.2f}: {c} functions</title></rect>')
    tx = pad + (w - 2 * pad) * min(cut, 1.0)
    return (f'<svg class="hist" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'aria-label="histogram of the scores">{"".join(bars)}'
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{pad / 2}" y2="{h - pad}" class="cut"/>'
            f'<text x="{tx + 3:.1f}" y="{pad}" class="lbl">threshold {cut:.3f}</text>'
            f'<text x="{pad}" y="{h - 6}" class="lbl">0</text><text x="{w / 2}" y="{h - 6}" class="lbl">0.5</text>'
            f'<text x="{w - pad - 6}" y="{h - 6}" class="lbl">1</text>'
            f'<text x="{pad}" y="{pad / 2 + 4}" class="lbl">{top} functions</text></svg>')


def _summary(report: ScanReport) -> str:
    s, op = report.summary(), report.operating_point
    by_reason = ", ".join(f"{n} {r}" for r, n in s["skipped_by_reason"].items()) or "none"
    rows = [("files scanned", s["files_scanned"]), ("files skipped", f"{s['files_skipped']} ({by_reason})"),
            ("non-UTF-8 files (decoded with replacement)", s["files_non_utf8"]),
            ("functions scored", s["functions_scored"]), ("functions not scored", s["functions_rejected"]),
            ("functions flagged", f"{s['vulnerable']} ({100 * s['flagged_share']:.1f}%)"),
            ("suppressed in source (streamguard: ignore)", s["suppressed"]),
            *([("baselined", f"{s['baselined']} of {report.baseline['entries']} in {report.baseline['file']}"
                + ("" if s["baseline_gone"] is None else f"; {s['baseline_gone']} baselined functions gone"))]
              if report.baseline is not None else []),
            ("threshold", f"{report.threshold:.4f}" + (f" (raw score; {report.shown_threshold():.4f} calibrated)"
                                                       if report.shown_threshold() != report.threshold else "")),
            ("how it was chosen", op.get("description", "")),
            ("model", f"{report.model.get('kind')} {report.model.get('name')} "
                      f"({'bundle' if report.model.get('bundle') else 'run directory'}"
                      + (f", {report.model['precision']}" if report.model.get("precision") else "") + ")"),
            ("seconds", f"{s['seconds']:.1f}")]
    return '<table class="sum">' + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows) \
        + "</table>"


def _files(report: ScanReport, anchors: dict[str, int]) -> str:
    per: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        per[f.path].append(f)
    rows = []
    for fr in sorted((x for x in report.files if x.status == "scanned"),
                     key=lambda x: (-max((f.score for f in per[x.path]), default=0), x.path)):
        fs = per[fr.path]
        flagged = sum(f.raw >= report.threshold for f in fs)
        best = max((f.score for f in fs), default=None)
        best_cell = "" if best is None else (f'<a href="#f-{anchors[fr.path]}">{best:.3f}</a>'
                                            if fr.path in anchors else f"{best:.3f}")
        name = f"<code>{e(fr.path)}</code>"
        if fr.path in anchors:  # the link filters the findings to this file's
            name = f'<a href="#file={e(quote(fr.path, safe="/"))}">{name}</a>'
        rows.append(f'<tr class="{"hot" if flagged else ""}"><td>{name}</td><td>{len(fs)}</td><td>{flagged}</td>'
                    f"<td>{best_cell}</td></tr>")
    return ('<table class="files"><thead><tr><th>file (shows its findings)</th><th>functions scored</th>'
            "<th>flagged</th><th>highest score</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _finding(i: int, f: Finding, lines: list[str]) -> str:
    short, whole = _code(f, lines)
    note = "" if f.evidence else ('<p class="note">No evidence lines for this function (computed for the '
                                  "highest flagged ones: --evidence-for).</p>")
    return (f'<section class="fn {e(f.verdict)}" id="f-{i}" data-score="{f.score:.6f}" data-file="{e(f.path)}">'
            f'<h3><span class="verdict">{e(f.verdict)}</span> {f.score:.3f} <code>{e(f.function)}</code> in '
            f'<a href="#f-{i}"><code>{e(f.path)}:{f.start_line}-{f.end_line}</code></a></h3>{note}'
            f"<pre>{short}</pre><details><summary>whole function ({f.end_line - f.start_line + 1} lines)</summary>"
            f"<pre>{whole}</pre></details></section>")


def to_html(report: ScanReport, top: int | None = 50) -> str:
    root = Path(report.root)
    cache: dict[str, list[str]] = {}
    shown = report.findings[:top] if top else report.findings
    anchors: dict[str, int] = {}
    for i, f in enumerate(shown):
        anchors.setdefault(f.path, i)
    parts = [_finding(i, f, cache.setdefault(f.path, _lines(root, f.path))) for i, f in enumerate(shown)]
    files = sorted(anchors)
    options = "".join(f'<option value="{e(p)}">{e(p)}</option>' for p in files)
    skipped = "".join(f"<li><code>{e(f.path)}</code>: {e(f.reason or '')} {e(f.detail)}</li>"
                      for f in report.files if f.status == "skipped")
    rejected = "".join(f"<li><code>{e(r['path'])}</code> {e(r['function'])}: {e(r['reason'])}</li>"
                       for r in report.rejected)
    s = report.summary()
    title = f"StreamGuard scan: {report.model.get('kind')} model {report.model.get('name')}"
    note = report.operating_point.get("note")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{CSS}</style></head><body><header><h1>{e(title)}</h1>"
            f'<p class="lead"><b>{s["vulnerable"]}</b> of <b>{s["functions_scored"]}</b> functions flagged '
            f'(<b>{100 * s["flagged_share"]:.1f}%</b>) in {s["files_scanned"]} files under <code>{e(report.root)}'
            f"</code></p><p>{e(report.operating_point.get('description') or f'threshold {report.threshold:.4f}')}"
            f"{f' <b>{e(note)}</b>' if note else ''}. A score ranks code for review; evidence lines show what moved "
            "the model's score, not where a bug is.</p>"
            '<nav><a href="#overview">overview</a> <a href="#files">files</a> <a href="#findings">findings</a></nav>'
            f'</header><h2 id="overview">Overview</h2>{_histogram(report)}{_summary(report)}'
            + (f"<details><summary>Skipped files</summary><ul>{skipped}</ul></details>" if skipped else "")
            + (f"<details><summary>Functions not scored</summary><ul>{rejected}</ul></details>" if rejected else "")
            + f'<h2 id="files">Files</h2>{_files(report, anchors)}'
            f'<h2 id="findings">Findings</h2><p>The {len(shown)} highest-scored functions (of '
            f'{len(report.findings)}; --top).</p><form id="filter" class="filter"><label>score at least '
            f'<input type="range" id="min" min="0" max="1" step="0.01" value="0"> <output id="minv">0.00</output>'
            f'</label> <label>file <select id="file"><option value="">all files</option>{options}</select></label> '
            f'<span id="shown"></span></form>' + "".join(parts)
            + f"<script>{SCRIPT}</script></body></html>\n")
