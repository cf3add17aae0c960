"""The terminal table of a scan: one line per function that fits the terminal (``COLUMNS``, 80 by default),
evidence lines under their row on request, a closing summary line."""
from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import Any

from streamguard.scan.results import Finding, ScanReport

FIXED = 19          # "0.912  vulnerable  ": score, verdict and their gaps
MIN_WIDTH = 40


def terminal_width() -> int:
    """``COLUMNS`` when set (as ``ls`` and ``git`` honour it), the terminal's width on a terminal, else 80."""
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
    return max(width, MIN_WIDTH)


def _clean(text: str) -> str:
    """Control characters (a newline in a file name) would break the one-line-per-row layout."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _cut_left(text: str, width: int) -> str:
    """Paths lose their start first: the file name and line stay readable."""
    return text if len(text) <= width else "..." + text[len(text) - width + 3:] if width > 3 else text[-width:]


def _cut_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..." if width > 3 else text[:width]


def _evidence(f: Finding, width: int) -> list[str]:
    return [_cut_right(f"       line {e.line} ({e.score:+.3g}): {_clean(e.text)}", width) for e in f.evidence]


def _summary(report: ScanReport, shown: int) -> str:
    s = report.summary()
    skipped = ", ".join(f"{n} {r}" for r, n in s["skipped_by_reason"].items())
    parts = [f"{s['vulnerable']} of {s['functions_scored']} functions flagged ({100 * s['flagged_share']:.1f}%) "
             f"in {s['files_scanned']} files",
             f"{s['files_skipped']} files skipped" + (f" ({skipped})" if skipped else ""),
             f"{s['files_non_utf8']} non-UTF-8 files decoded with replacement",
             f"{s['functions_rejected']} functions not scored", f"{s['seconds']:.1f} s"]
    if report.triage_note():  # suppressed in source, baselined
        parts.insert(1, report.triage_note())
    if shown < len(report.findings):
        parts.append(f"table shows the {shown} highest (--top)")
    return "; ".join(parts)


def render(report: ScanReport, opts: Any) -> str:  # opts: scan.formats.Options (formats imports this module)
    """The table of ``opts.top`` rows at ``opts.width`` columns, evidence under each row with ``opts.evidence``."""
    width = max(opts.width, MIN_WIDTH)
    top = opts.top
    rows = report.findings if top is None else report.findings[:top]
    locs = [_clean(f"{f.path}:{f.start_line}") for f in rows]
    names = [_clean(f.function) for f in rows]
    avail = width - FIXED - 2
    want_fn = min(max((len(n) for n in names), default=8), 24)
    loc_w = min(max((len(x) for x in locs), default=8), max(avail - want_fn, avail // 2))
    loc_w = max(loc_w, len("location"))
    fn_w = avail - loc_w
    model = report.model
    lines = [_cut_right(_clean(f"StreamGuard scan: {model.get('kind')} model {model.get('name')}"), width),
             "root: " + _cut_left(_clean(report.root), width - 6),
             *textwrap.wrap(_clean(report.operating_point.get("description")
                                   or f"threshold {report.threshold:.4f}"), width),
             f"{'score':>5}  {'verdict':<10}  {'location':<{loc_w}}  function"]
    for f, loc, name in zip(rows, locs, names):
        lines.append(f"{f.score:5.3f}  {f.verdict:<10}  {_cut_left(loc, loc_w):<{loc_w}}  "
                     f"{_cut_right(name, fn_w)}".rstrip())
        if opts.evidence:
            lines.extend(_evidence(f, width))
    if not rows:
        lines.append("(no function scored)" if not report.scored() else "(no function left to report)")
    lines.extend(textwrap.wrap(_summary(report, len(rows)), width, break_on_hyphens=False))
    return "\n".join(lines) + "\n"
