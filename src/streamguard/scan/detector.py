"""The Python API: ``streamguard.load(bundle_or_run)`` -> ``Detector`` with ``.score(code)`` and ``.scan(paths)``."""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from streamguard import thresholds
from streamguard.data.extract import CFile, CFunction, included, iter_c_files, matches_any
from streamguard.evaluate.calibration import Calibration
from streamguard.scan import diffs, stream
from streamguard.scan.bundle import open_model
from streamguard.scan.cache import ScoreCache, model_identity
from streamguard.scan.cache import entry as cache_entry
from streamguard.scan.model import ModelSource, Scorer
from streamguard.scan.results import FileResult, Finding, LineEvidence, ScanReport, Score

CHUNK = 2048                       # functions scored per batch: bounds memory on large trees
MAX_FUNCTION_BYTES = stream.MAX_FUNCTION_BYTES  # a bigger "function" is generated code; preprocessing it costs GBs
NO_FUNCTIONS = "no functions"      # a file with no function definition (the "empty tree")
Progress = Callable[[int, int, int], None]  # (files done, files in all, functions scored)


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
             progress: Progress | None = None, follow_symlinks: bool = False,
             cache: str | os.PathLike | None = None) -> ScanReport:
        """Score every function under ``paths`` (only those a git diff against ``diff`` touches, when given);
        evidence (``evidence`` lines) for the ``evidence_for`` highest-scored functions at/above threshold.
        File links leaving a scanned folder are skipped unless ``follow_symlinks``. Files stream through
        (scan/stream.py): parsed in the scorer's worker count of processes, scored CHUNK functions at a time;
        ``cache`` (a folder) keeps each file's scores for the next scan (scan/cache.py; not with ``diff``)."""
        t0 = time.perf_counter()
        root_path = Path(root or Path.cwd()).resolve()
        paths = [Path(p) for p in paths] or [Path(".")]
        changed = None
        if diff is not None:
            changed = diffs.changed_in(diff, paths)
            paths = _changed_files(paths, changed, include, exclude, root_path)
        report = ScanReport([], [], self.info(), self.threshold, str(root_path), calibration=self.calibration)
        store = None
        if cache is not None:  # ONNX graphs made from the weights (precision onnx/int8) are kept there too
            self._scorer.graphs = Path(cache) / "onnx"
        if cache is not None and changed is None:
            ident = model_identity(self.source, self._scorer.effective_precision(), MAX_FUNCTION_BYTES)
            store = ScoreCache(cache, ident)
        cands = stream.EvidenceCandidates(self.threshold, evidence_for if evidence else 0)
        total = stream.count_candidates(paths, include, exclude, root_path) if progress else 0
        batch = _Batch(store)
        cfiles = iter_c_files(paths, include, exclude, root_path, max_bytes, follow_symlinks)
        for cf, found, hit in stream.extracted(cfiles, self._scorer.workers, store.get if store else _no_hit):
            if hit is not None:
                _from_cache(cf, hit, report, cands)
            else:
                batch.add(cf, _file_functions(cf, found or [], changed, report), report)
            if batch.size >= CHUNK:
                self._flush(batch, report, cands)
            if progress:
                progress(len(report.files), total, len(report.findings))
        self._flush(batch, report, cands)
        report.findings.sort(key=lambda f: (-f.raw, f.path, f.start_line))
        chosen = cands.chosen()
        if evidence and chosen:
            ev = self._evidence([c for _, c in chosen], [f.raw for f, _ in chosen], evidence,
                                [f.start_line for f, _ in chosen])
            report.findings = stream.with_evidence(report.findings, {id(f): e for (f, _), e in zip(chosen, ev)})
        if store is not None:
            report.cache = store.summary()
        report.seconds = time.perf_counter() - t0
        return report

    def _flush(self, batch: _Batch, report: ScanReport, cands: stream.EvidenceCandidates) -> None:
        """Score the waiting functions; their texts go, but for the evidence candidates'."""
        if not batch.size:
            return
        probs, reasons = self._scorer.probabilities([fn.code for fn, _, _ in batch.items])
        shown = self.calibration.apply(probs)
        for (fn, fp, slot), p, c, why in zip(batch.items, probs, shown, reasons):
            if math.isnan(p):
                report.rejected.append(_rejected(fn, why or "not scored"))
            else:
                finding = Finding(fn.path, fn.name, fn.start_line, fn.end_line, float(c), self.threshold,
                                  thresholds.verdict(p, self.threshold), (), fp, float(p))
                report.findings.append(finding)
                cands.offer(finding, fn.code)
            batch.done(slot, cache_entry(fn, float(p), why if math.isnan(p) else None, fp))
        batch.clear()


class _Batch:
    """Functions waiting to be scored; with a cache, each file's entry is written once all its functions are."""

    def __init__(self, store: ScoreCache | None):
        self.store = store
        self.items: list[tuple[CFunction, str, tuple[list, int]]] = []
        self.files: dict[int, tuple[CFile, list[Any]]] = {}

    @property
    def size(self) -> int:
        return len(self.items)

    def add(self, cf: CFile, found: stream.Extracted, report: ScanReport) -> None:
        if cf.skip:
            return
        entries: list[Any] = [None] * len(found)
        if self.store is not None:
            self.files[id(entries)] = (cf, entries)
        for i, (fn, fp) in enumerate(found):
            if fn.end_byte - fn.start_byte > MAX_FUNCTION_BYTES:
                reason = f"function over the size cap ({MAX_FUNCTION_BYTES} bytes)"
                report.rejected.append(_rejected(fn, reason))
                entries[i] = cache_entry(fn, math.nan, reason, "")
            else:
                self.items.append((fn, fp, (entries, i)))
        self._maybe_store(entries)

    def done(self, slot: tuple[list, int], entry: dict[str, Any]) -> None:
        entries, i = slot
        entries[i] = entry
        self._maybe_store(entries)

    def _maybe_store(self, entries: list[Any]) -> None:
        if self.store is not None and id(entries) in self.files and all(e is not None for e in entries):
            cf, _ = self.files.pop(id(entries))
            self.store.put(cf, entries)

    def clear(self) -> None:
        if self.store is not None:
            self.store.rescored += len(self.items)
        self.items = []


def _no_hit(cf: CFile) -> None:
    return None


def _file_functions(cf: CFile, found: stream.Extracted, changed: dict[str, list[tuple[int, int]]] | None,
                    report: ScanReport) -> stream.Extracted:
    """The file's accounting line; its functions (those the diff touches, with one)."""
    if cf.skip:
        report.files.append(FileResult(cf.path, "skipped", cf.skip, cf.detail))
        return []
    if changed is not None:
        ranges = changed.get(str(cf.abspath.resolve()), changed.get(str(cf.abspath), []))
        found = [(f, fp) for f, fp in found if diffs.touches(ranges, f.start_line, f.end_line)]
    if not found:
        report.files.append(FileResult(cf.path, "skipped", NO_FUNCTIONS, "no function definition"
                                       + (" touched by the diff" if changed is not None else ""),
                                       non_utf8=cf.non_utf8))
        return []
    report.files.append(FileResult(cf.path, "scanned", "non-UTF-8" if cf.non_utf8 else None,
                                   "decoded with replacement" if cf.non_utf8 else "", len(found), cf.non_utf8))
    return found


def _from_cache(cf: CFile, entries: list[dict[str, Any]], report: ScanReport,
                cands: stream.EvidenceCandidates) -> None:
    """A file scored before, unchanged: its accounting, findings and rejections as they were."""
    if not entries:
        report.files.append(FileResult(cf.path, "skipped", NO_FUNCTIONS, "no function definition",
                                       non_utf8=cf.non_utf8))
        return
    report.files.append(FileResult(cf.path, "scanned", "non-UTF-8" if cf.non_utf8 else None,
                                   "decoded with replacement" if cf.non_utf8 else "", len(entries), cf.non_utf8))
    thr = report.threshold
    shown = report.calibration.apply([math.nan if e["score"] is None else e["score"] for e in entries]) \
        if report.calibration is not None else [e["score"] for e in entries]
    for e, c in zip(entries, shown):
        if e["score"] is None:
            report.rejected.append({"path": cf.path, "function": e["name"], "start_line": e["start_line"],
                                    "end_line": e["end_line"], "reason": e["reason"] or "not scored"})
            continue
        finding = Finding(cf.path, e["name"], e["start_line"], e["end_line"], float(c), thr,
                          thresholds.verdict(e["score"], thr), (), e["fingerprint"], float(e["score"]))
        report.findings.append(finding)
        cands.offer(finding, None, cf.abspath)


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
