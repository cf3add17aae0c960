"""The Python API's steps, one function each, re-exported by the ``streamguard`` package (``train_model``,
not ``train``: that is a subpackage's name). They run the command line's stages, with settings as keyword
arguments: the keys of the stage's config, checked the same way (an unknown key or an out-of-range value raises
``streamguard.errors.UserError``).

    raw = streamguard.import_dataset("data/sample", "work/raw")
    data = streamguard.preprocess(raw, "work/processed", tokenizer="bpe")
    run = streamguard.train_model("lexical", data, "work/runs/lexical")
    bundle = streamguard.export(run, "work/bundle")
    with streamguard.load(bundle) as detector:
        report = detector.scan(["src/"])

Heavy libraries (torch, scikit-learn, tree-sitter) are imported by the step that needs them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike


def import_dataset(source: PathLike, out: PathLike, dedup: bool = False) -> Path:
    """A CodeXGLUE dataset (``{train,valid,test}.jsonl``, or Devign's ``function.json`` with the split index
    files) validated and written to ``out``, with its manifest; ``streamguard data import codexglue``."""
    from streamguard.data.ingest import import_codexglue
    import_codexglue(Path(source), Path(out), dedup=dedup)
    return Path(out)


def preprocess(raw: PathLike, out: PathLike, config: PathLike | None = None, **settings: Any) -> Path:
    """Tokenized, trimmed and parsed records of a raw dataset (``streamguard preprocess``). ``config``: a YAML
    file; ``settings``: PreprocessConfig keys (``tokenizer="bpe"``, ``max_length=256``, ``workers=1`` ...)."""
    from streamguard.config import PreprocessConfig, load_config
    from streamguard.features.preprocess import preprocess as run
    run(Path(raw), Path(out), load_config(PreprocessConfig, config, settings))
    return Path(out)


def train_model(kind: str, data: PathLike, out: PathLike, config: PathLike | None = None,
          seeds: list[int] | None = None, **settings: Any) -> Path:
    """Train ``kind`` (lexical, gnn, transformer) on a processed dataset into the run dir ``out`` (a rerun
    resumes); ``settings`` are the kind's config keys. With ``seeds``, one run per seed in ``out/seed-N``
    (``streamguard train KIND --seeds``); ``out`` is returned either way."""
    from streamguard.config import load_config
    from streamguard.runtime import prepare_torch_cpu
    from streamguard.train import registry
    from streamguard.train.seeds import train_seeds
    if registry.entry(kind).neural:  # an unknown kind: a UserError naming the known ones
        prepare_torch_cpu()
    cfg = load_config(registry.config_class(kind), config, settings)
    if seeds:
        train_seeds(kind, Path(data), Path(out), cfg, seeds)
        return Path(out)
    return Path(registry.get(kind).train(Path(data), Path(out), cfg))


def export(run: PathLike, out: PathLike, data: PathLike | None = None) -> Path:
    """A self-contained, pickle-free bundle of a finished run (``streamguard export``) that ``load`` reads;
    ``out`` must not exist. ``data``: the run's processed data, if it moved."""
    from streamguard.scan.bundle import export_run
    return Path(export_run(Path(run), Path(out), Path(data) if data is not None else None))
