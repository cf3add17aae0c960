"""Line evidence: which lines of a function moved a model's score towards "vulnerable", from the model itself.

Each kind computes its own (``line_scores`` of the kind contract, streamguard.train.kinds; docs/scanning.md says
how each does it); this module holds what is the same for every kind.

``explain(source, codes, k)`` -> per function, the top ``k`` (line, score) pairs, 1-based lines of the code.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def explain(source: Any, codes: Sequence[str], k: int = 3) -> list[list[tuple[int, float]]]:
    per_line = line_scores(source.kind, Path(source.model_dir), Path(source.prep_dir), codes)
    return [top_lines(s, k) for s in per_line]


def line_scores(kind: str, model_dir: Path, prep_dir: Path, codes: Sequence[str]) -> list[np.ndarray]:
    """Per function, one score per line (index 0 = line 1), by the model of ``kind`` in ``model_dir``."""
    from streamguard.train import registry
    return registry.get(kind).line_scores(model_dir, prep_dir, codes)


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
    from streamguard.data import preprocess as prep
    from streamguard.scan.model import featurizer_init
    out: list[dict[str, Any] | None] = [None] * len(codes)
    tasks = [("test", i, {"func": c, "target": 0}) for i, c in enumerate(codes)]
    with prep.worker_pool(1, featurizer_init(prep_dir)) as pool:
        for _, row, line, _, _ in pool.imap_unordered(prep.record_task, tasks):
            out[row] = json.loads(line) if line else None
    return out
