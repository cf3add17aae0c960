"""Line evidence: which lines of a function moved a model's score towards "vulnerable", from the model itself.

Each kind computes its own (``line_scores`` of the kind contract, streamguard.train.kinds; docs/scanning.md says
how each does it); this module holds what is the same for every kind.

``streamguard.train.registry.line_scores`` asks a kind for per-line scores; ``top_lines`` keeps the top ``k``
(line, score) pairs, 1-based lines of the code. This module imports no kind: the kinds import it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def top_lines(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i) + 1, float(scores[i])) for i in order if scores[i] > 0]


def line_of(code: str) -> np.ndarray:
    """The 0-based line of every character (and one past the end)."""
    return np.concatenate([[0], np.cumsum(np.frombuffer(code.encode("utf-32-le"), dtype=np.uint32) == 10)])


def empty_scores(code: str) -> np.ndarray:
    """One zero per line of ``code``."""
    return np.zeros(int(line_of(code)[-1]) + 1)


def processed_records(prep_dir: Path, codes: Sequence[str]) -> list[dict[str, Any] | None]:
    """The processed record of each function (None where preprocessing rejected it), in order: made by the
    preprocessing worker with the model's tokenizer, budget and vocabulary."""
    from streamguard.features import preprocess as prep
    out: list[dict[str, Any] | None] = [None] * len(codes)
    tasks = [("test", i, {"func": c, "target": 0}) for i, c in enumerate(codes)]
    with prep.worker_pool(1, prep.featurizer_init(prep_dir)) as pool:
        for _, row, line, _, _ in pool.imap_unordered(prep.record_task, tasks):
            out[row] = json.loads(line) if line else None
    return out
