"""What ``streamguard scan`` and ``streamguard export`` run (their parsers are in streamguard.cli.scan): load a
detector, scan, write the report in the asked format, and the exit status."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from streamguard import argtypes
from streamguard.atomic import STDOUT, atomic_open
from streamguard.errors import UserError

FORMATS = ("table", "json", "sarif", "html")  # = scan.formats.REGISTRY (not imported: argparse must stay light)
EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def run_export(args: argparse.Namespace) -> int:
    from streamguard.scan.bundle import export_run
    out = export_run(args.run, args.out, args.data)
    print(f"bundle written: {out}", file=sys.stderr)
    return EXIT_CLEAN


def _fail_on(value: float | str | None, threshold: float) -> float | None:
    """--fail-on, range-checked by argparse: absent -> the threshold, 'none' -> never."""
    if value is None:
        return threshold
    return None if value == argtypes.NEVER else float(value)


def _to_stdout(out: Path | None) -> bool:
    return out is None or str(out) == STDOUT


def _write(writer: Callable[[TextIO], None], out: Path | None) -> None:
    """The report to stdout, to a special file in place, or atomically to a file in an existing folder;
    ``writer`` streams it to the handle (scan/formats.py), so the whole text is never one string."""
    if not _to_stdout(out):
        if out.is_dir():
            raise UserError(f"--out {out} is a directory")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
    try:
        with atomic_open(STDOUT if out is None else out) as fh:
            writer(fh)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None


def run_scan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamguard import thresholds
    from streamguard.scan import formats, results, triage
    from streamguard.scan.detector import load
    for p in args.paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or directory")
    known = triage.prepare(args.baseline, args.write_baseline, args.diff)  # a bad baseline stops before scanning
    console = Console(stderr=True)
    workers = args.workers or os.cpu_count() or 1
    root = args.root or results.default_root(args.paths, args.diff)
    detector = load(args.model, None, args.data, workers, args.precision)
    point = thresholds.scan_point(args.threshold, args.max_findings, detector.source.model_dir,
                                  detector.source.threshold)
    detector.threshold = point.threshold  # evidence goes to the functions at or above the cut
    with detector, _progress(console) as progress:
        report = detector.scan(args.paths, args.include, args.exclude, root, args.diff,
                               3 if args.evidence is None else args.evidence, args.evidence_for, args.max_file_size,
                               progress, args.follow_symlinks, getattr(args, "cache", None))
    triage.apply_suppressions(report)  # before the cut: --max-findings counts the unsuppressed functions
    report.recut(point.threshold, point.to_dict(), args.max_findings)
    recorded = triage.apply_baseline(report, known, args.write_baseline, None if args.diff else args.paths)
    cut = _fail_on(args.fail_on, report.threshold)
    _write(lambda fh: formats.write_to(fh, args.format, report, args.top, args.evidence is not None), args.out)
    if args.format != "table" or not _to_stdout(args.out):
        console.print(report.header(), markup=False, highlight=False, soft_wrap=True)
    if point.note:
        console.print(f"note: {point.note}", markup=False, highlight=False, soft_wrap=True)
    if recorded is not None:
        console.print(f"baseline written: {args.write_baseline} ({recorded} findings)", markup=False,
                      highlight=False, soft_wrap=True)
    return EXIT_FINDINGS if cut is not None and report.above(cut) else EXIT_CLEAN


class _progress:
    """A rich progress bar on stderr when it is a terminal (nothing in CI logs): files done of those found,
    functions scored, functions/s and the time left."""

    def __init__(self, console: object):
        self.console = console
        self.bar = None

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        if not getattr(self.console, "is_terminal", False):
            return None
        self.bar = Progress(TextColumn("scanning files"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[funcs]} functions, {task.fields[rate]}/s"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("scan", total=None, funcs=0, rate="-")
        self.t0 = time.perf_counter()
        return self.update

    def update(self, done: int, total: int, functions: int) -> None:
        rate = functions / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.update(self.task, completed=done, total=total or None, funcs=functions, rate=f"{rate:,.0f}")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
