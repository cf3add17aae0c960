"""VulnerableCodeTrimmer: when a function exceeds the token budget, keep the window holding its risky code.

Risky spans are calls of APIs that are classic sources of memory-safety and injection bugs. The window of
``budget`` tokens that covers the most risky spans is kept (with some context before the first one);
a function without any is truncated from the start.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from streamguard.data.risky_api import risky_name

_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")  # cheap first pass: every call site


@dataclass(frozen=True)
class TrimResult:
    start: int        # first kept token (index into the unbudgeted token list)
    end: int          # one past the last kept token
    strategy: str     # "none" | "risky_window" | "truncate"
    risky_apis: tuple[str, ...]


def find_risky_spans(code: str) -> list[tuple[int, int, str]]:
    """Character spans (start, end, api name) of risky API calls, in order."""
    spans = []
    for m in _CALL.finditer(code):
        name = risky_name(m.group(1))
        if name:
            spans.append((m.start(), m.end(), name))
    return spans


def choose_window(offsets: list[tuple[int, int]], spans: list[tuple[int, int, str]], budget: int) -> TrimResult:
    """Pick the ``budget``-token window that covers the most risky spans (earliest on ties)."""
    n = len(offsets)
    apis = tuple(sorted({name for _, _, name in spans}))
    if n <= budget:
        return TrimResult(0, n, "none", apis)
    if not spans:
        return TrimResult(0, budget, "truncate", apis)
    starts = [a for a, _ in offsets]
    # token index where each risky span starts
    hits = [max(0, bisect.bisect_right(starts, s) - 1) for s, _, _ in spans]
    context = budget // 8  # a little code before the first risky call explains its arguments
    best_start, best_count = 0, -1
    for first in hits:
        start = min(max(0, first - context), n - budget)
        count = bisect.bisect_left(hits, start + budget) - bisect.bisect_left(hits, start)
        if count > best_count:
            best_start, best_count = start, count
    kept = {name for (s, _, name), h in zip(spans, hits) if best_start <= h < best_start + budget}
    return TrimResult(best_start, best_start + budget, "risky_window", tuple(sorted(kept)))
