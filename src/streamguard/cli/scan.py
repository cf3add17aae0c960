"""``streamguard scan`` and ``streamguard export``: argument parsing; what they run is streamguard.scan.run."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes
from streamguard.scan import PRECISIONS
from streamguard.scan.run import FORMATS, run_export, run_scan


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="score every C function under files/directories (or a git diff) with a model",
                       description="Exit status: 0 no finding at or above --fail-on, 1 findings, 2 usage or "
                                   "input error.")
    p.add_argument("paths", nargs="*", type=Path, help="files and directories (default: .)")
    p.add_argument("--model", type=Path, default=None,
                   help="a bundle (streamguard export) or a run directory (default: the bundled default model, "
                        "docs/transfer.md)")
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
    p.add_argument("--jobs", "-j", "--workers", dest="workers", type=argtypes.non_negative_int, default=0,
                   metavar="N", help="processes that parse files and featurize functions (0: all cores; the "
                                     "option was --workers)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="keep each file's scores here; a rescan re-scores only changed files (not with --diff)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="neural forward passes: auto (bf16 where the CPU has it in hardware, else fp32; the "
                        "default), fp32 (the run's own scores, exactly), bf16, or the transformer's on ONNX "
                        "Runtime: onnx (fp32) or int8 (dynamic quantisation; needs the [onnx] extra)")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="read file links that point out of the scanned folders (default: skipped, with the reason)")
    p.add_argument("--baseline", type=Path, default=None, metavar="FILE",
                   help="report only the flagged functions not in this baseline (--write-baseline)")
    p.add_argument("--write-baseline", type=Path, default=None, metavar="FILE",
                   help="record the flagged functions (not suppressed) in FILE, for --baseline")
    p.add_argument("--root", type=Path, default=None, help="paths in reports are relative to it (default: .)")
    p.set_defaults(func=run_scan)
    e = sub.add_parser("export", help="write a self-contained, pickle-free model bundle of a run")
    e.add_argument("run", type=Path, help="a finished run dir of any kind, fusion included")
    e.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    e.add_argument("--data", type=Path, default=None, help="the run's processed data dir (if moved)")
    e.set_defaults(func=run_export)
