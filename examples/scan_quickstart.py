"""From a labelled dataset to findings in your C code, with the public Python API only (``import streamguard``).

    python examples/scan_quickstart.py                       # the bundled sample, then tests/fixtures/kernel_c
    python examples/scan_quickstart.py --scan path/to/src    # your own code
    python examples/scan_quickstart.py --quick               # a smoke test: 100 functions per split, ~20 s

The steps are the command line's (``streamguard data import`` ... ``streamguard scan``), called as functions:
import the Devign sample (data/sample), preprocess it (a BPE tokenizer trained on its train split), train the
lexical kind (TF-IDF n-grams + logistic regression: CPU, about a minute), export a bundle, load it, scan a
folder of C, and print the highest-scored functions with the lines that drove their scores. A rerun reuses what
the work folder already holds (each stage skips finished work).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import streamguard

REPO = Path(__file__).resolve().parents[1]
# The quick settings: a smaller n-gram range and one regularisation value keep the smoke test to seconds.
QUICK_LEXICAL = {"ngram_min": 3, "ngram_max": 4, "max_features": 20000, "c_grid": [1.0]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "sample",
                   help="CodeXGLUE-format {train,valid,test}.jsonl (default: the bundled Devign sample)")
    p.add_argument("--scan", type=Path, default=REPO / "tests" / "fixtures" / "kernel_c",
                   help="a C file or folder to scan (default: real Linux kernel files of the test fixtures)")
    p.add_argument("--work", type=Path, default=None, help="folder for the dataset, run and bundle (default: temp)")
    p.add_argument("--top", type=int, default=5, help="findings to print (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="100 functions per split and a small model (smoke test)")
    return p.parse_args(argv)


def build_bundle(data: Path, work: Path, quick: bool) -> Path:
    """Raw dataset -> processed records -> trained run -> bundle; each step returns the folder it wrote."""
    raw = streamguard.import_dataset(data, work / "raw")
    processed = streamguard.preprocess(raw, work / "processed", tokenizer="bpe", workers=1, quick_test=quick)
    run = streamguard.train_model("lexical", processed, work / "runs" / "lexical", **(QUICK_LEXICAL if quick else {}))
    bundle = work / "bundle"
    return bundle if (bundle / "bundle.json").is_file() else streamguard.export(run, bundle)


def print_findings(report: object, top: int) -> None:
    summary = report.summary()
    print(f"scanned {summary['functions_scored']} functions in {summary['files_scanned']} files; "
          f"{summary['vulnerable']} at or above the model's threshold {report.threshold:.3f}")
    for finding in report.findings[:top]:  # highest score first
        print(f"\n{finding.score:.3f} {finding.verdict:<14} {finding.path}:{finding.start_line} {finding.function}()")
        for ev in finding.evidence:  # the lines that moved the score most towards "vulnerable"
            print(f"    line {ev.line:>5} (+{ev.score:.3f})  {ev.text.strip()[:90]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamguard-quickstart-") as tmp:
        work = args.work or Path(tmp)
        try:
            bundle = build_bundle(args.data, work, args.quick)
            print(f"bundle: {bundle}")
            with streamguard.load(bundle) as detector:
                report = detector.scan([args.scan], root=args.scan, evidence=3, evidence_for=args.top)
        except streamguard.UserError as exc:  # bad input (a missing folder, a broken dataset): one line, exit 2
            print(f"scan_quickstart: error: {exc}", file=sys.stderr)
            return 2
        print_findings(report, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
