"""The scan loop's streaming parts: files are read and their functions extracted a window at a time (in ``jobs``
processes when there are enough files), so a scan holds a bounded number of files and function texts whatever
the tree's size; the texts are dropped once scored, except those of the few functions that will get evidence.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamguard.data.extract import (
    DEFAULT_INCLUDE,
    CFile,
    CFunction,
    extract_functions,
    function_nodes,
    matches_any,
    walk_files,
)
from streamguard.scan.fingerprint import fingerprint
from streamguard.scan.results import Finding, LineEvidence

WINDOW = 64          # files per window handed to the extraction processes; at most IN_FLIGHT windows are out
IN_FLIGHT = 3
MAX_FUNCTION_BYTES = 200_000  # a bigger "function" is generated code: not scored (nor fingerprinted)
Extracted = list[tuple[CFunction, str]]  # each function and its fingerprint


def extract_task(item: tuple[bytes, str]) -> Extracted:
    """A file's functions and their fingerprints, from one parse of the file."""
    data, path = item
    return [(fn, fingerprint(fn.path, fn.name, fn.code, node) if fn.end_byte - fn.start_byte <= MAX_FUNCTION_BYTES
             else "") for fn, node in function_nodes(data, path)]


def _windows(items: Iterable[CFile], size: int) -> Iterator[list[CFile]]:
    it = iter(items)
    while window := list(itertools.islice(it, size)):
        yield window


def extracted(cfiles: Iterable[CFile], jobs: int, lookup: Callable[[CFile], Any]
              ) -> Iterator[tuple[CFile, Extracted | None, Any]]:
    """(file, its functions, ``lookup(file)``) in file order. A skipped file, or one ``lookup`` answers (a cache
    hit), is not parsed: its functions are None. With ``jobs`` > 1 and more than one window of files, parsing
    runs in that many processes while the caller scores what came back before."""
    pool = None
    pending: deque[tuple[list[CFile], list[Any], Any]] = deque()
    try:
        for window in _windows(cfiles, WINDOW):
            hits = [None if cf.skip else lookup(cf) for cf in window]
            todo = [cf for cf, hit in zip(window, hits) if cf.skip is None and hit is None]
            if pool is None and jobs > 1 and len(window) == WINDOW:
                pool = mp.get_context("spawn").Pool(jobs)  # spawn: the parent may run torch's threads
            if pool is None:
                yield from _joined(window, hits, [extract_task((cf.data or b"", cf.path)) for cf in todo])
                continue
            pending.append((window, hits, pool.map_async(extract_task, [(cf.data or b"", cf.path) for cf in todo],
                                                         chunksize=4)))
            if len(pending) >= IN_FLIGHT:
                window, hits, res = pending.popleft()
                yield from _joined(window, hits, res.get())
        while pending:
            window, hits, res = pending.popleft()
            yield from _joined(window, hits, res.get())
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _joined(window: list[CFile], hits: list[Any], found: list[Extracted]
            ) -> Iterator[tuple[CFile, Extracted | None, Any]]:
    parsed = iter(found)
    for cf, hit in zip(window, hits):
        yield cf, (None if cf.skip or hit is not None else next(parsed)), hit


def count_candidates(paths: list[Path], include: list[str] | None, exclude: list[str] | None, root: Path) -> int:
    """How many files the scan will look at (a walk without reading them): the progress bar's total."""
    include = list(include) if include else list(DEFAULT_INCLUDE)
    n = 0
    for p in paths:
        top = Path(os.path.abspath(p))
        if top.is_dir():
            n += sum(1 for _ in walk_files(top, root, include, list(exclude or [])))
        else:
            n += 0 if exclude and matches_any(str(p), exclude) else 1
    return n


@dataclass
class EvidenceCandidates:
    """The ``limit`` highest-scored findings at or above ``threshold`` (the scan's final order: score, then path
    and line), with the text their evidence is computed from; every other function's text is let go."""
    threshold: float
    limit: int
    items: list[tuple[Finding, str | None, Path | None]] = field(default_factory=list)

    def offer(self, finding: Finding, code: str | None, abspath: Path | None = None) -> None:
        """``code`` None: a cached score, whose text is read again only if it ends up getting evidence."""
        if self.limit and finding.raw >= self.threshold:  # verdicts and order are on the raw score
            self.items.append((finding, code, abspath))
            if len(self.items) > 4 * self.limit + 64:
                self._prune()

    def _prune(self) -> None:
        self.items.sort(key=lambda it: (-it[0].raw, it[0].path, it[0].start_line))
        del self.items[self.limit:]

    def chosen(self) -> list[tuple[Finding, str]]:
        self._prune()
        return [(f, code if code is not None else _reread(f, abspath)) for f, code, abspath in self.items]


def _reread(finding: Finding, abspath: Path | None) -> str:
    """A cached function's text, from its file (unchanged: its content hash was the cache key)."""
    for fn in extract_functions(Path(abspath).read_bytes() if abspath else b"", finding.path):
        if fn.name == finding.function and fn.start_line == finding.start_line:
            return fn.code
    return ""


def with_evidence(findings: list[Finding], evidence: dict[int, tuple[LineEvidence, ...]]) -> list[Finding]:
    """``findings`` with the evidence keyed by ``id(finding)`` attached."""
    return [replace(f, evidence=evidence[id(f)]) if id(f) in evidence else f for f in findings]
