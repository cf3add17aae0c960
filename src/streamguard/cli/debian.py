"""Argument parsing of ``streamguard data collect debian`` (no heavy imports here)."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes
from streamguard.data.rawdir import MANIFEST_FILE, POOL, REJECTS_FILE

DEFAULT_CACHE = Path.home() / ".cache" / "streamguard" / "debian"


def add_collect_debian(data: argparse._SubParsersAction) -> None:
    c = data.add_parser("collect", help="collect labelled functions from a public source (debian)")
    c.add_argument("source_kind", choices=["debian"], help="debian: CVE patches of Debian source packages")
    c.add_argument("--out", required=True, type=Path, help=f"folder for {POOL}.jsonl, {REJECTS_FILE}, {MANIFEST_FILE}")
    c.add_argument("--suites", default="bullseye-security,bookworm-security,trixie-security",
                   help="comma-separated suites, read in this order (default %(default)s)")
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--packages", default=None, help="comma-separated source package names")
    which.add_argument("--all", action="store_true", help="every source package of the suites")
    c.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="download cache and apt state, reused across runs (default %(default)s)")
    c.add_argument("--jobs", type=argtypes.positive_int, default=1, help="packages processed in parallel (default 1)")
    c.add_argument("--mirror", default=None,
                   help="read dists/SUITE/main/source/Sources and the files from this mirror URL instead of apt's "
                        "(a local mirror or test server; the index's signature is not checked)")
    c.add_argument("--max-minutes", type=argtypes.positive_float, default=None,
                   help="start no package after this many minutes; write the dataset from those done (rerun to go on)")
    c.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> None:
    from streamguard.data.debian.collect import collect_debian
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    packages = None if args.all else [p.strip() for p in args.packages.split(",") if p.strip()]
    collect_debian(args.out, suites, packages, args.cache, jobs=args.jobs, mirror=args.mirror,
                   max_minutes=args.max_minutes)
