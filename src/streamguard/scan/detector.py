"""The Python API: ``streamguard.load(bundle_or_run)`` -> ``Detector`` with ``.score(code)`` and ``.scan(paths)``."""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from streamguard import thresholds
from streamguard.data.extract import CFunction, extract_functions, included, iter_c_files, matches_any
from streamguard.evaluate.calibration import Calibration
from streamguard.scan import diffs
from streamguard.scan.bundle import open_model
from streamguard.scan.model import ModelSource, Scorer
from streamguard.scan.results import FileResult, Finding, LineEvidence, ScanReport, Score, fingerprint

CHUNK = 2048                       # functions scored per batch: bounds memory on large trees
MAX_FUNCTION_BYTES = 200_000       # a bigger "function" is generated code; preprocessing it costs gigabytes
NO_FUNCTIONS = "no functions"      # a file with no function definition (the "empty tree")
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class Detector:
    """A loaded model. ``threshold`` defaults to the model's own (chosen on valid when it was trained)."""

    def __init__(self, source: ModelSource, threshold: float | None = None, workers: int = 1,
                 precision: str = "auto"):
        self.source = source
        self.kind = source.kind
        self.threshold = thresholds.check(threshold) if threshold is not None else source.threshold
        # raw score -> shown probability; verdicts stay on the raw score (scan/bundle.py reads it)
        self.calibration: Calibration = source.info.get("calibration") or Calibration()
        self._scorer = Scorer(source, workers, precision)

    def close(self) -> None:
        self._scorer.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        before, after = self.calibration.ece_before_after()
        return {"name": self.source.name, "kind": self.kind, "bundle": self.source.is_bundle,
                "threshold": self.threshold, "precision": self._scorer.effective_precision(),
                "calibration": {"method": self.calibration.method, "valid_ece_raw": before, "valid_ece": after}}

    def score(self, code: str | Sequence[str], evidence: int = 0) -> Score | list[Score]:
        """Score one function (a str) or several; ``evidence`` > 0 adds that many top lines to each."""
        codes = [code] if isinstance(code, str) else list(code)
        probs, reasons = self._scorer.probabilities(codes)
        ev = self._evidence(codes, probs, evidence) if evidence else [()] * len(codes)
        shown = self.calibration.apply(probs)
        out = [Score(float(c), self.threshold, thresholds.verdict(p, self.threshold), e, None, float(p))
               if not math.isnan(p) else Score(float("nan"), self.threshold, "error", (), r)
               for p, c, r, e in zip(probs, shown, reasons, ev)]
        return out[0] if isinstance(code, str) else out

    def _evidence(self, codes: list[str], probs: Any, k: int, first_lines: list[int] | None = None,
                  ) -> list[tuple[LineEvidence, ...]]:
        from streamguard.train import evidence as explain
        first_lines = first_lines or [1] * len(codes)
        keep = [i for i, p in enumerate(probs) if not math.isnan(p)]
        if not keep:  # nothing scored: no evidence to explain (an error result carries none)
            return [()] * len(codes)
        from streamguard.train import registry
        per_line = registry.line_scores(self.source.kind, Path(self.source.model_dir), Path(self.source.prep_dir),
                                        [codes[i] for i in keep])
        per = [explain.top_lines(s, k) for s in per_line]
        out: list[tuple[LineEvidence, ...]] = [()] * len(codes)
        for i, lines in zip(keep, per):
            text = codes[i].split("\n")
            out[i] = tuple(LineEvidence(first_lines[i] + ln - 1, round(s, 6), text[ln - 1].strip()[:200])
                           for ln, s in lines if 0 < ln <= len(text))
        return out

    def scan(self, paths: Iterable[str | os.PathLike], include: list[str] | None = None,
             exclude: list[str] | None = None, root: str | os.PathLike | None = None, diff: str | None = None,
             evidence: int = 3, evidence_for: int = 20, max_bytes: int = 2 * 1024 * 1024,
             progress: Progress | None = None, follow_symlinks: bool = False) -> ScanReport:
        """Score every function under ``paths`` (only those a git diff against ``diff`` touches, when given);
        evidence (``evidence`` lines) for the ``evidence_for`` highest-scored functions at/above threshold.
        File links leaving a scanned folder are skipped unless ``follow_symlinks``."""
        t0 = time.perf_counter()
        root_path = Path(root or Path.cwd()).resolve()
        paths = [Path(p) for p in paths] or [Path(".")]
        changed = None
        if diff is not None:
            changed = diffs.changed_in(diff, paths)
            paths = _changed_files(paths, changed, include, exclude, root_path)
        files, funcs = self._collect(paths, include, exclude, root_path, max_bytes, changed, progress,
                                     follow_symlinks)
        report = ScanReport([], files, self.info(), self.threshold, str(root_path), calibration=self.calibration)
        scorable = []
        for fn in funcs:
            if fn.end_byte - fn.start_byte > MAX_FUNCTION_BYTES:
                report.rejected.append(_rejected(fn, f"function over the size cap ({MAX_FUNCTION_BYTES} bytes)"))
            else:
                scorable.append(fn)
        findings: list[tuple[CFunction, float]] = []
        for start in range(0, len(scorable), CHUNK):
            part = scorable[start:start + CHUNK]
            probs, reasons = self._scorer.probabilities([f.code for f in part])
            for fn, p, why in zip(part, probs, reasons):
                if math.isnan(p):
                    report.rejected.append(_rejected(fn, why or "not scored"))
                else:
                    findings.append((fn, float(p)))
            if progress:
                progress("score", min(start + CHUNK, len(scorable)), len(scorable))
        findings.sort(key=lambda fp: (-fp[1], fp[0].path, fp[0].start_line))
        ev = self._scan_evidence(findings, evidence, evidence_for)
        shown = self.calibration.apply([p for _, p in findings])
        report.findings = [Finding(fn.path, fn.name, fn.start_line, fn.end_line, float(c), self.threshold,
                                   thresholds.verdict(p, self.threshold), ev.get(i, ()),
                                   fingerprint(fn.path, fn.name, fn.code), p)
                           for i, ((fn, p), c) in enumerate(zip(findings, shown))]
        report.seconds = time.perf_counter() - t0
        return report

    def _scan_evidence(self, findings: list[tuple[CFunction, float]], k: int, limit: int,
                       ) -> dict[int, tuple[LineEvidence, ...]]:
        chosen = [i for i, (_, p) in enumerate(findings[:limit]) if p >= self.threshold] if k and limit else []
        if not chosen:
            return {}
        codes = [findings[i][0].code for i in chosen]
        ev = self._evidence(codes, [findings[i][1] for i in chosen], k, [findings[i][0].start_line for i in chosen])
        return dict(zip(chosen, ev))

    def _collect(self, paths: list[Path], include: list[str] | None, exclude: list[str] | None, root: Path,
                 max_bytes: int, changed: dict[str, list[tuple[int, int]]] | None, progress: Progress | None,
                 follow_symlinks: bool = False) -> tuple[list[FileResult], list[CFunction]]:
        files: list[FileResult] = []
        funcs: list[CFunction] = []
        for cf in iter_c_files(paths, include, exclude, root, max_bytes, follow_symlinks):
            if cf.skip:
                files.append(FileResult(cf.path, "skipped", cf.skip, cf.detail))
                continue
            found = extract_functions(cf.data or b"", cf.path)
            if changed is not None:
                ranges = changed.get(str(cf.abspath.resolve()), changed.get(str(cf.abspath), []))
                found = [f for f in found if diffs.touches(ranges, f.start_line, f.end_line)]
            if not found:
                files.append(FileResult(cf.path, "skipped", NO_FUNCTIONS, "no function definition"
                                        + (" touched by the diff" if changed is not None else ""),
                                        non_utf8=cf.non_utf8))
                continue
            files.append(FileResult(cf.path, "scanned", "non-UTF-8" if cf.non_utf8 else None,
                                    "decoded with replacement" if cf.non_utf8 else "", len(found), cf.non_utf8))
            funcs.extend(found)
            if progress:
                progress("parse", len(files), 0)
        return files, funcs


def _rejected(fn: CFunction, reason: str) -> dict[str, Any]:
    return {"path": fn.path, "function": fn.name, "start_line": fn.start_line, "end_line": fn.end_line,
            "reason": reason}


def _changed_files(paths: list[Path], changed: dict[str, list[tuple[int, int]]], include: list[str] | None,
                   exclude: list[str] | None, root: Path) -> list[Path]:
    """The changed files that still exist, lie under ``paths`` and pass include/exclude."""
    from streamguard.data.extract import DEFAULT_INCLUDE, relative_path
    tops = [p.resolve() for p in paths]
    out = []
    for name in sorted(changed):
        p = Path(name)
        rel = relative_path(p, root)
        if p.is_file() and any(p == t or p.is_relative_to(t) for t in tops) \
                and included(rel, p.name, list(include or DEFAULT_INCLUDE)) \
                and not (exclude and matches_any(rel, exclude)):
            out.append(p)
    return out


def load(path: str | os.PathLike | None, threshold: float | None = None, data: str | os.PathLike | None = None,
         workers: int = 1, precision: str = "auto") -> Detector:
    """A detector from a bundle (``streamguard export``) or a run directory (``data``: its processed data);
    ``path`` None: the default model shipped in the package."""
    if path is None:
        from streamguard.resources import default_model_dir
        path = default_model_dir()
    return Detector(open_model(path, data), threshold, workers, precision)
