"""The ``data`` commands: ``import`` (CodeXGLUE or a collector format), ``download``, ``merge``, ``by-project``;
argument parsing only, no heavy imports here."""
from __future__ import annotations

import argparse
from pathlib import Path

from streamguard import argtypes
from streamguard.cli.common import DeprecatedAlias

COLLECT_FORMATS = ("jsonl", "csv", "bigvul", "primevul", "cdir")  # streamguard.data.collect.FORMATS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import or download raw datasets").add_subparsers(dest="data_cmd",
                                                                                        required=True)
    imp = data.add_parser("import", help="import a raw dataset into CodeXGLUE-format jsonl + manifest")
    imp.add_argument("source_kind", choices=["codexglue", *COLLECT_FORMATS],
                     help="the input's format: codexglue (Devign), or a collector format (docs/data-collection.md)")
    imp.add_argument("--source", required=True, type=Path,
                     help="folder with {train,valid,test}.jsonl, or Devign's function.json + train/valid/test.txt; "
                          "collector formats: a file (a folder for cdir)")
    imp.add_argument("--out", required=True, type=Path, help="raw dataset dir to write (jsonl splits + manifest)")
    imp.add_argument("--dedup", action="store_true", help="drop from train what also appears in valid/test")
    imp.set_defaults(func=_run_import)
    add_collect_commands(data, imp)
    dl = data.add_parser("download", help="fetch the public CodeXGLUE copy and verify its checksums")
    dl.add_argument("source_kind", choices=["codexglue"], help="the dataset to fetch")
    dl.add_argument("--out", required=True, type=Path, help="folder for the downloaded files")
    dl.add_argument("--url", default=None, help="base URL of the copy (default: the public one)")
    dl.add_argument("--timeout", type=argtypes.positive_float, default=30.0,
                    help="seconds per request (default %(default)s)")
    dl.set_defaults(func=_run_download)


def _run_import(args: argparse.Namespace) -> None:
    if args.source_kind != "codexglue":
        return run_collect_import(args)
    from streamguard.data.ingest import import_codexglue
    import_codexglue(args.source, args.out, dedup=args.dedup)


def _run_download(args: argparse.Namespace) -> None:
    from streamguard.data.download import download_codexglue
    download_codexglue(args.out, base_url=args.url, timeout=args.timeout)


def add_collect_commands(data: argparse._SubParsersAction, imp: argparse.ArgumentParser) -> None:
    """Extra options of ``data import`` for the collector formats, and the ``data merge`` command."""
    imp.add_argument("--map", default=None, metavar="DST=SRC,...",
                     help="collector formats: field mapping, e.g. func=func_before,target=vul,project=project")
    imp.add_argument("--name", default=None, help="collector formats: source name that prefixes ids (default FORMAT)")
    imp.add_argument("--labels", type=Path, default=None, help="cdir: labels CSV (file,target[,project,cve,...])")
    m = data.add_parser("merge", help="merge imports: dedup, near-dup, label conflicts, no leakage into train")
    m.add_argument("--base", required=True, type=Path, help="raw dataset with train/valid/test (kept as they are)")
    m.add_argument("--add", required=True, type=Path, action="append", help="an import to add (repeatable)")
    m.add_argument("--out", required=True, type=Path, help="merged raw dataset dir (+ rejects and a report)")
    m.add_argument("--holdout", default="", metavar="SOURCE=SHARE,...",
                   help="hold out a share of an added source's CVE/pair groups as OUT/heldout (never trained on)")
    m.add_argument("--near-dup-jaccard", dest="near_dup_jaccard", type=argtypes.probability, default=None,
                   help="MinHash/LSH Jaccard similarity at or above which two functions are near-duplicates "
                        "(default 0.8)")
    m.add_argument("--threshold", dest="near_dup_jaccard", type=argtypes.probability, action=DeprecatedAlias,
                   new="--near-dup-jaccard", help="deprecated: the old name of --near-dup-jaccard (warns)")
    m.add_argument("--seed", type=argtypes.non_negative_int, default=0, help="seed of the held-out group draw")
    m.set_defaults(func=_run_merge)
    b = data.add_parser("by-project", help="a cross-project split of processed data: train and valid from one "
                                           "project, test from another's test split")
    b.add_argument("--data", required=True, type=Path, help="a processed dataset (made by `preprocess`)")
    b.add_argument("--train-project", required=True, help="project whose train/valid functions are kept")
    b.add_argument("--test-project", required=True, help="project whose test functions form the test split")
    b.add_argument("--out", required=True, type=Path, help="processed dataset dir to write")
    b.set_defaults(func=_run_by_project)
    from streamguard.cli.debian import add_collect_debian
    add_collect_debian(data)


def run_collect_import(args: argparse.Namespace) -> None:
    from streamguard.data.collect import import_collected
    import_collected(args.source_kind, args.source, args.out, name=args.name, mapping=args.map, labels=args.labels)


def _run_by_project(args: argparse.Namespace) -> None:
    from streamguard.features.by_project import by_project
    by_project(args.data, args.out, args.train_project, args.test_project)


def _run_merge(args: argparse.Namespace) -> None:
    from streamguard.data.merge import DEFAULT_THRESHOLD, merge
    merge(args.base, args.add, args.out, holdout=args.holdout, seed=args.seed,
          threshold=DEFAULT_THRESHOLD if args.near_dup_jaccard is None else args.near_dup_jaccard)
