"""A cross-project split of a processed dataset: train and valid from one project, test from another.

``streamguard data by-project --data PROCESSED --train-project FFmpeg --test-project qemu --out DIR`` writes a
processed folder (same tokenizer, node vocabulary and preprocessing record, so models trained on it are
compatible with the parent) whose train and valid splits hold only the train project's functions and whose test
split holds only the test project's test functions. Every model then meets code of a project it never saw,
which is what a scanner run on a user's tree does; the counts kept and left out are in ``SUBSET.json``.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from streamguard import atomic
from streamguard.errors import UserError
from streamguard.features.processed import META_FILE, VOCAB_FILE, ProcessedDir

log = logging.getLogger(__name__)
SUBSET_FILE = "SUBSET.json"


def _project(line: str) -> str:
    return str((json.loads(line).get("metadata") or {}).get("project", ""))


def by_project(data: Path, out: Path, train_project: str, test_project: str) -> dict:
    """Write the cross-project folder; return the counts recorded in SUBSET.json."""
    data, out = Path(data), Path(out)
    ProcessedDir(data).identity()  # a processed dataset, or one clear error
    if train_project == test_project:
        raise UserError(f"--train-project and --test-project are both {train_project!r}; they must differ")
    want = {"train": train_project, "valid": train_project, "test": test_project}
    kept, counts = {}, {}
    for split, project in want.items():  # everything is checked before anything is written
        lines = (data / f"{split}.jsonl").read_text().splitlines()
        seen = Counter(_project(line) for line in lines)
        if not seen[project]:
            raise UserError(f"{data}/{split}.jsonl has no function of project {project!r} "
                            f"(projects: {', '.join(sorted(seen))})")
        kept[split] = [line for line in lines if _project(line) == project]
        counts[split] = {"read": len(lines), "kept": len(kept[split]),
                         "left_out_other_projects": len(lines) - len(kept[split])}
    out.mkdir(parents=True, exist_ok=True)
    for name in (META_FILE, VOCAB_FILE):
        shutil.copy(data / name, out / name)
    shutil.copytree(data / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    for split, lines in kept.items():
        atomic.write_text(out / f"{split}.jsonl", "\n".join(lines) + "\n")
    record = {"from": str(data.resolve()), "train_project": train_project, "test_project": test_project,
              "splits": want, "counts": counts}
    atomic.write_json(out / SUBSET_FILE, record)
    log.warning("by-project: train %d and valid %d functions of %s, test %d of %s -> %s", counts["train"]["kept"],
                counts["valid"]["kept"], train_project, counts["test"]["kept"], test_project, out)
    return record
