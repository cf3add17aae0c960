"""``streamguard scan`` and ``streamguard export``: argument parsing and output; the work is in the modules."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamguard import argtypes
from streamguard.atomic import STDOUT, atomic_open
from streamguard.errors import UserError
from streamguard.scan import PRECISIONS

FORMATS = ("table", "json", "sarif", "html")  # = scan.formats.REGISTRY (not imported: argparse must stay light)
EXIT_CLEAN, EXIT_FINDINGS = 0, 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="score every C function under files/directories (or a git diff) with a model",
                       description="Exit status: 0 no finding at or above --fail-on, 1 findings, 2 usage or "
                                   "input error.")
    p.add_argument("paths", nargs="*", type=Path, help="files and directories (default: .)")
    p.add_argument("--model", required=True, type=Path, help="a bundle (streamguard export) or a run directory")
    p.add_argument("--data", type=Path, default=None, help="a run directory's processed data (if moved)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (terminal), json, sarif (code scanning) or html (default %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="write the report here ('-' or default: stdout; a pipe or device is written in place)")
    p.add_argument("--threshold", default=None, metavar="accuracy|fpr:RATE|P",
                   help="verdict cut: fpr:RATE (at most RATE of the clean validation functions flagged; default "
                        "fpr:0.02), accuracy (the cut that maximised accuracy on validation) or a probability")
    p.add_argument("--max-findings", type=argtypes.positive_int, default=None, metavar="N",
                   help="flag at most the N highest-scored functions (of those at or above --threshold, if given)")
    p.add_argument("--top", type=argtypes.positive_int, default=None,
                   help="show/report only the K highest-scored functions (default: table 20, html 50, others all)")
    p.add_argument("--fail-on", default=None, type=argtypes.probability_or_none, metavar="SCORE|none",
                   help="exit 1 when a function scores at or above SCORE (default: the threshold; 'none': never)")
    p.add_argument("--include", action="append", default=None, metavar="GLOB", help="files to scan (*.c, *.h)")
    p.add_argument("--exclude", action="append", default=None, metavar="GLOB", help="files or folders to skip")
    p.add_argument("--diff", default=None, metavar="REV", help="only functions a git diff against REV touches")
    p.add_argument("--evidence", type=argtypes.non_negative_int, nargs="?", const=3, default=None, metavar="N",
                   help="evidence lines per finding (default 3; 0: none); given, the table prints them too")
    p.add_argument("--evidence-for", type=argtypes.non_negative_int, default=20,
                   help="findings that get evidence, highest first")
    p.add_argument("--max-file-size", type=argtypes.positive_int, default=2 * 1024 * 1024,
                   help="bytes; larger files are skipped")
    p.add_argument("--workers", type=argtypes.non_negative_int, default=0, help="featurizing processes (0: all cores)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="neural forward passes: auto (bf16 where the CPU has it in hardware, else fp32; the "
                        "default), fp32 (the run's own scores, exactly) or bf16")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="read file links that point out of the scanned folders (default: skipped, with the reason)")
    p.add_argument("--root", type=Path, default=None, help="paths in reports are relative to it (default: .)")
    p.set_defaults(func=run_scan)
    e = sub.add_parser("export", help="write a self-contained, pickle-free model bundle of a run")
    e.add_argument("run", type=Path, help="a finished run dir of any kind, fusion included")
    e.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    e.add_argument("--data", type=Path, default=None, help="the run's processed data dir (if moved)")
    e.set_defaults(func=run_export)


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


def _write(text: str, out: Path | None) -> None:
    """The report to stdout, to a special file in place, or atomically to a file in an existing folder."""
    if not _to_stdout(out):
        if out.is_dir():
            raise UserError(f"--out {out} is a directory")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
    try:
        with atomic_open(STDOUT if out is None else out) as fh:
            fh.write(text)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None


def run_scan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamguard import thresholds
    from streamguard.scan import formats, results
    from streamguard.scan.detector import load
    for p in args.paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or directory")
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
                               progress, args.follow_symlinks)
    report.recut(point.threshold, point.to_dict(), args.max_findings)
    cut = _fail_on(args.fail_on, report.threshold)
    _write(formats.write(args.format, report, args.top, args.evidence is not None), args.out)
    if args.format != "table" or not _to_stdout(args.out):
        console.print(report.header(), markup=False, highlight=False, soft_wrap=True)
    if point.note:
        console.print(f"note: {point.note}", markup=False, highlight=False, soft_wrap=True)
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
