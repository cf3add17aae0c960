"""What ``streamguard scan`` and ``streamguard export`` run (their parsers are in streamguard.cli.scan): load a
detector, scan, write the report in the asked format, and the exit status."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamguard.atomic import write_text
from streamguard.errors import UserError

FORMATS = ("table", "json", "sarif", "html")
EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def run_export(args: argparse.Namespace) -> int:
    from streamguard.scan.bundle import export_run
    out = export_run(args.run, args.out, args.data)
    print(f"bundle written: {out}", file=sys.stderr)
    return EXIT_CLEAN


def _fail_on(value: str | None, threshold: float) -> float | None:
    if value is None:
        return threshold
    if value.lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"--fail-on takes a score in [0, 1] or 'none', got {value!r}") from None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    if out.is_dir():
        raise UserError(f"--out {out} is a directory")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    try:
        write_text(out, text)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None


def run_scan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamguard.scan import formats
    from streamguard.scan.detector import load
    for p in args.paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or directory")
    if args.top is not None and args.top < 1:
        raise UserError("--top must be at least 1")
    console = Console(stderr=args.format != "table" or args.out is not None)
    workers = args.workers or os.cpu_count() or 1
    detector = load(args.model, args.threshold, args.data, workers, args.precision)
    with detector, _progress(console) as progress:
        report = detector.scan(args.paths, args.include, args.exclude, args.root, args.diff, args.evidence,
                               args.evidence_for, args.max_file_size, progress)
    cut = _fail_on(args.fail_on, report.threshold)
    if args.format == "table":
        if args.out is not None:
            file_console = Console(file=open(args.out, "w", encoding="utf-8"), width=160)  # noqa: SIM115
            formats.print_table(report, file_console, args.top or 20)
            file_console.file.close()
        else:
            formats.print_table(report, console, args.top or 20)
    elif args.format == "html":
        from streamguard.scan.html import to_html
        _write(to_html(report, args.top or 50), args.out)
    else:
        obj = formats.to_json(report, args.top) if args.format == "json" else formats.to_sarif(report, args.top)
        _write(formats.dumps(obj), args.out)
    if args.format != "table" or args.out is not None:
        s = report.summary()
        console.print(f"{s['functions_scored']} functions in {s['files_scanned']} files, {s['vulnerable']} at or "
                      f"above {report.threshold:.3f}, {s['files_skipped']} files skipped "
                      f"{s['skipped_by_reason'] or ''}", markup=False, highlight=False)
    return EXIT_FINDINGS if cut is not None and report.above(cut) else EXIT_CLEAN


class _progress:
    """A rich progress bar on the terminal (nothing when stderr is not one, e.g. in CI logs)."""

    def __init__(self, console: object):
        self.console = console
        self.bar = None

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        err_console = getattr(self.console, "stderr", False) and self.console
        from rich.console import Console
        con = err_console or Console(stderr=True)
        if not con.is_terminal:
            return None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=con, transient=True)
        self.bar.start()
        self.tasks: dict[str, int] = {}
        return self.update

    def update(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task("parsing files" if phase == "parse" else "scoring functions",
                                                  total=total or None)
        self.bar.update(self.tasks[phase], completed=done, total=total or None)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
