"""``streamguard export RUN --out DIR``: one self-contained, pickle-free model directory to share.

Layout::

    bundle.json           kind, threshold, versions, source run, format
    manifest.json         sha256 + size of every other file; checked at load (no file may be added or changed)
    MODEL_CARD.md         data, metrics with 95% CIs, threshold, limits
    preprocess/           tokenizer/ (tokenizer.json ...), node_vocab.json, preprocessing_metadata.json
    model/                run-dir shaped: exp_config.json, threshold.json and the kind's weights
                          (lexical_model.{json,safetensors} | export/*.safetensors | gnn_weights.safetensors |
                          fusion.json + base/<kind>/...)

Every weight is safetensors or JSON, so loading a bundle executes no pickle.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from streamguard import thresholds
from streamguard.errors import UserError
from streamguard.provenance import git_state, package_versions, sha256_file
from streamguard.rundir import read_exp_config
from streamguard.scan.model import PREP_FILES, ModelSource

BUNDLE_FILE = "bundle.json"
TRANSFORMER_EXPORT = "hf_model"  # = streamguard.train.transformer.EXPORT_DIR (not imported: torch is slow to load)
MANIFEST = "manifest.json"
FORMAT = 1
# What each kind needs to predict; anything else in the run (checkpoints, tracking, folds) stays behind.
_KIND_FILES = {"lexical": ["lexical_model.json", "lexical_model.safetensors"], "fusion": ["fusion.json"],
               "transformer": [TRANSFORMER_EXPORT], "gnn": []}
_SAFE_SUFFIXES = {".json", ".safetensors", ".txt", ".md", ".jsonl", ".model"}


def _copy_model(run: Path, dst: Path, kind: str) -> None:
    """The run's files that ``predict`` needs, as a run-shaped folder (recursively for a fusion's bases)."""
    from streamguard.train.fuse import base_run_dir
    from streamguard.train.seeds import seed_runs
    dst.mkdir(parents=True)
    exp = json.loads((run / "exp_config.json").read_text())
    hyper = exp.get("hyperparameters") or {}
    if "cache_dir" in hyper:  # a bundle's graphs are cached beside the scanned data, never in the trainer's cache
        hyper["cache_dir"] = None
    (dst / "exp_config.json").write_text(json.dumps(exp, indent=2, sort_keys=True) + "\n")
    (dst / thresholds.THRESHOLD_FILE).write_text(json.dumps({"threshold": thresholds.run_threshold(run)}) + "\n")
    for name in _KIND_FILES[kind]:
        src = run / name
        if not src.exists():
            raise UserError(f"export: {run} has no {name}; the {kind} run did not finish")
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=lambda d, names: [n for n in names if (Path(d) / n).is_file()
                                                                     and Path(n).suffix not in _SAFE_SUFFIXES])
        else:
            shutil.copy2(src, dst / name)
    if kind == "gnn":
        from safetensors.torch import save_file

        from streamguard.train.gnn import TEXT_TOKENIZER, WEIGHTS, state_dict
        save_file({k: v.contiguous() for k, v in state_dict(run).items()}, str(dst / WEIGHTS))
        if (run / TEXT_TOKENIZER).is_file():  # a node-text GNN splits leaves with its own tokenizer
            shutil.copy2(run / TEXT_TOKENIZER, dst / TEXT_TOKENIZER)
    if kind == "fusion":
        meta = json.loads((run / "fusion.json").read_text())
        for base_kind in meta["models"]:
            base = base_run_dir(run, meta["base_runs"][base_kind])
            members = seed_runs(base)
            for member in members:  # a seed ensemble keeps its seed-N layout
                _copy_model(member, dst / "base" / base_kind / member.relative_to(base), base_kind)
            meta["base_runs"][base_kind] = f"base/{base_kind}"
        (dst / "fusion.json").write_text(json.dumps(meta, indent=2) + "\n")


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def export_run(run: Path, out: Path, data: Path | None = None) -> Path:
    """Write the bundle of ``run`` to ``out`` (which must not exist), atomically."""
    from streamguard.scan.card import model_card
    src = open_model(run, data)
    if src.is_bundle:
        raise UserError(f"{run} is already a bundle")
    out = Path(out)
    if out.exists():
        raise UserError(f"export: {out} exists; give a new directory")
    tmp = out.with_name(out.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _copy_model(Path(run), tmp / "model", src.kind)
        (tmp / "preprocess").mkdir()
        shutil.copytree(src.prep_dir / "tokenizer", tmp / "preprocess" / "tokenizer")
        for name in PREP_FILES:
            shutil.copy2(src.prep_dir / name, tmp / "preprocess" / name)
        exp = json.loads((Path(run) / "exp_config.json").read_text())
        info = {"format": FORMAT, "kind": src.kind, "threshold": src.threshold, "name": Path(run).resolve().name,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "source_run": {"path": str(Path(run).resolve()), "git": exp.get("git"),
                               "data_sha256": exp.get("data_sha256"), "data_identity": exp.get("data_identity")},
                "versions": {"bundle_format": FORMAT, **package_versions(), "exported_by_git": git_state()}}
        (tmp / BUNDLE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "MODEL_CARD.md").write_text(model_card(Path(run), exp, info))
        (tmp / MANIFEST).write_text(json.dumps({"files": _manifest(tmp)}, indent=2) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def verify(root: Path) -> None:
    """Refuse a bundle whose files differ from its manifest: changed, missing or added."""
    try:
        listed = json.loads((root / MANIFEST).read_text())["files"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise UserError(f"{root}: no readable {MANIFEST} ({type(exc).__name__}); not a complete bundle") from None
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    present.discard(MANIFEST)
    # Graph caches written beside the data are not in bundles (they go to the scanned data's temp dir).
    extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
    if extra or missing:
        what = f"unlisted file {extra[0]}" if extra else f"missing file {missing[0]}"
        raise UserError(f"{root}: bundle does not match its manifest ({what}); refused")
    for rel, entry in listed.items():
        path = root / rel
        if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
            raise UserError(f"{root}: {rel} is a link; refused")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise UserError(f"{root}: {rel} does not match its sha256 in {MANIFEST} (corrupt or changed); refused")


# open_model lives here, not in scan.model: it dispatches to open_bundle, and this module imports scan.model
def open_model(path: str | os.PathLike, data: str | os.PathLike | None = None) -> ModelSource:
    """A bundle (``bundle.json``; its manifest is checked) or a run directory (``exp_config.json``; its
    processed data dir, recorded or given as ``data``, supplies the tokenizer and vocabulary)."""
    p = Path(path)
    if (p / BUNDLE_FILE).is_file():
        return open_bundle(p)
    if not (p / "exp_config.json").is_file():
        raise UserError(f"{p} is neither a model bundle (bundle.json) nor a run directory (exp_config.json)")
    exp = read_exp_config(p)
    prep_dir = Path(data) if data else Path(str(exp.get("data_dir") or ""))
    if not all((prep_dir / f).is_file() for f in PREP_FILES) or not (prep_dir / "tokenizer").is_dir():
        raise UserError(f"run {p}: its processed data dir {str(prep_dir)!r} (tokenizer, node vocabulary) is not "
                        "here; pass --data DIR, or scan with a bundle made by `streamguard export`")
    return ModelSource(exp["model"], p, prep_dir, thresholds.run_threshold(p), p.name, False,
                       {"run": str(p), "data_dir": str(prep_dir)})


def open_bundle(root: Path) -> ModelSource:
    verify(root)
    info = json.loads((root / BUNDLE_FILE).read_text())
    if info.get("format") != FORMAT:
        raise UserError(f"{root}: bundle format {info.get('format')!r} is not supported (expected {FORMAT})")
    return ModelSource(info["kind"], root / "model", root / "preprocess",
                       thresholds.check(float(info["threshold"]), f"{root}/{BUNDLE_FILE}"),
                       info.get("name") or root.name, True, info)
