"""One owner per format (issue 23): a format's file names appear as string literals only in the module that owns
that format. Every other module reaches those files through the owner (RunDir, RawDir, ProcessedDir), so a
layout change is made in one place and no reader can drift from the writer.

The scan parses src/ with ``ast`` (docstrings and comments may name files; code may not) and looks at every
string constant, f-string parts included.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "streamguard"

# file name -> the modules (relative to src/streamguard) that own a format holding a file of that name
OWNERS: dict[str, set[str]] = {
    "exp_config.json": {"rundir.py"},
    "predictions": {"rundir.py"},
    "threshold.json": {"rundir.py"},
    "train_summary.json": {"rundir.py"},
    "metrics.csv": {"rundir.py"},
    "oof": {"rundir.py"},
    "fold_key": {"rundir.py"},
    "seed-": {"rundir.py"},
    "manifest.json": {"data/rawdir.py"},
    "rejects.jsonl": {"data/rawdir.py", "features/processed.py"},  # a raw dataset's and a processed dataset's
    "preprocessing_metadata.json": {"features/processed.py"},
    "node_vocab.json": {"features/processed.py"},
    "calibration.json": {"scan/bundle.py"},
}

# Genuinely different files that share a name with a format's file: (module, name) -> why it is not that file.
ALLOWED: dict[tuple[str, str], str] = {
    ("train/checkpoint.py", "manifest.json"): "a checkpoint folder's own manifest (size, sha256, epoch per file)",
    ("scan/bundle_check.py", "manifest.json"): "a model bundle's own manifest (its files' checksums), not a raw "
                                               "dataset's",
    ("data/corpus.py", "manifest.json"): "the pre-training corpus folder's manifest: corpus.py owns that format",
    ("data/corpus.py", "rejects.jsonl"): "the pre-training corpus folder's rejects: corpus.py owns that format",
    ("pretrain/train.py", "metrics.csv"): "a pre-training output folder's own per-epoch log, not a run directory's",
}

# TEMPORARY: code that still names an owner's file instead of asking the owner (empty: keep it so)
TEMPORARY: dict[tuple[str, str], str] = {}


def _names_in(value: str) -> set[str]:
    """The format file names a string constant mentions (a path part for the folder-like names)."""
    found = set()
    for name in OWNERS:
        if name == "seed-":
            hit = value.startswith(name) or f"/{name}" in value
        elif name in ("predictions", "oof"):
            hit = value == name or value.startswith(f"{name}/") or f"/{name}/" in value
        else:  # the whole file name: pretrain_summary.json is not train_summary.json
            hit = re.search(rf"(?<![\w.-]){re.escape(name)}", value) is not None
        if hit:
            found.add(name)
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def literals(path: Path) -> list[tuple[int, str, str]]:
    """(line, file name, constant) of every format file name in ``path``'s string constants."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            hits.extend((node.lineno, name, node.value) for name in sorted(_names_in(node.value)))
    return hits


def violations() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for line, name, value in literals(path):
            if rel in OWNERS[name] or (rel, name) in ALLOWED or (rel, name) in TEMPORARY:
                continue
            out.append(f"src/streamguard/{rel}:{line}: {value[:60]!r} names {name}, owned by "
                       f"{' / '.join(sorted(OWNERS[name]))}")
    return out


def test_format_file_names_appear_only_in_their_owner():
    assert violations() == []


def test_every_allowlist_entry_is_still_needed_and_says_why():
    """A stale entry would let a new literal slip in unnoticed; each one must match a literal and give a reason."""
    used = {(p.relative_to(SRC).as_posix(), name) for p in SRC.rglob("*.py") for _, name, _ in literals(p)}
    for key, reason in {**ALLOWED, **TEMPORARY}.items():
        assert reason.strip(), key
        if key in TEMPORARY:
            continue  # the kind-contract work may already have removed it; the integrator deletes the entry
        assert key in used, f"allowlist entry {key} matches no literal any more: remove it"


def test_the_scan_finds_a_literal_and_ignores_docstrings(tmp_path):
    """The check can fail: a planted literal is found, a docstring naming the same file is not."""
    f = tmp_path / "x.py"
    f.write_text('"""Reads RUN/exp_config.json."""\n\ndef g(run):\n    """predictions/valid.jsonl"""\n'
                 '    return run / "exp_config.json", f"{run}/predictions/{1}.jsonl", "seed-3"\n')
    assert sorted(name for _, name, _ in literals(f)) == ["exp_config.json", "predictions", "seed-"]
