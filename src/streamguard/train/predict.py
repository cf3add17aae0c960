"""``streamguard predict``: score a processed dataset with any trained run (every kind, fusion included).

A model only means something on data encoded like its training data, so the dataset's tokenizer and node
vocabulary must be the run's (``preprocess --reuse-from``); anything else is refused before scoring.
"""
from __future__ import annotations

import logging
from pathlib import Path

from streamguard import thresholds
from streamguard.atomic import check_writable_file
from streamguard.data.records import write_jsonl
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.rundir import RunDir
from streamguard.train import registry

log = logging.getLogger(__name__)


def predict_run(run_dir: Path, data_dir: Path, split: str, out: Path, threshold: float | None = None) -> int:
    """Write the predictions contract for ``split`` of ``data_dir`` to ``out``, each row with the threshold
    (the run's, chosen on valid, unless given) and its verdict; return the row count."""
    run_dir, data = Path(run_dir), ProcessedDir(data_dir)
    check_writable_file(Path(out))  # before scoring: a directory or unwritable --out fails in one line
    exp = RunDir(run_dir).read_exp()
    data.check_compatible(exp.get("data_identity"), run_dir)
    if not data.has_split(split):
        raise UserError(f"{data_dir} has no {split} split")
    rows = registry.get(exp["model"]).predict(run_dir, data_dir, split)
    cut = thresholds.run_threshold(run_dir) if threshold is None else thresholds.check(threshold)
    rows = [{**r, "threshold": cut, "verdict": thresholds.verdict(r["prob_vulnerable"], cut)} for r in rows]
    n = write_jsonl(out, rows)
    log.info("predict: %d %s rows of %s scored by %s run %s", n, split, data_dir, exp["model"], run_dir)
    return n
