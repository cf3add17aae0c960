"""A small real lexical run on ``processed_small`` (a real BPE tokenizer) and its bundle, for scan tests."""
from __future__ import annotations

from pathlib import Path

from streamguard.config import LexicalConfig
from streamguard.scan.bundle import export_run
from streamguard.train import lexical

FAST = {"ngram_min": 3, "ngram_max": 4, "max_features": 20000, "c_grid": [1.0]}


def make_bundle(processed: Path, root: Path) -> tuple[Path, Path]:
    """(run dir, bundle dir) of a lexical model trained on ``processed``."""
    run = lexical.train(processed, root / "run", LexicalConfig(**FAST))
    return run, export_run(run, root / "bundle")
