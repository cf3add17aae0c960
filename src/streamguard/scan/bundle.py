"""``streamguard export RUN --out DIR``: one self-contained, pickle-free model directory to share.

Layout::

    bundle.json           kind, threshold, versions, source run, format
    manifest.json         sha256 + size of every other file; checked at load (no file may be added or changed)
    MODEL_CARD.md         data, metrics with 95% CIs, threshold, calibration, limits
    calibration.json      raw score -> calibrated probability, fitted on the run's valid predictions
                          (streamguard.evaluate.calibration); absent in bundles exported before it: scores raw
    preprocess/           tokenizer/ (tokenizer.json ...), node_vocab.json, preprocessing_metadata.json
    model/                run-dir shaped: exp_config.json, threshold.json and the kind's files (its
                          ``BUNDLE_FILES``, written by its ``export_files``: streamguard.train.kinds), e.g.
                          lexical_model.{json,safetensors} | hf_model/ | gnn_weights.safetensors |
                          fusion.json + base/<kind>/...

Every weight is safetensors or JSON, so loading a bundle executes no pickle.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamguard import thresholds
from streamguard.atomic import make_dir
from streamguard.errors import UserError
from streamguard.provenance import git_state, package_versions, sha256_file
from streamguard.rundir import EXP_FILE, RunDir, read_exp_config
from streamguard.runlock import locked_file
from streamguard.scan import bundle_check
from streamguard.scan.bundle_check import MANIFEST
from streamguard.scan.model import PREP_FILES, ModelSource
from streamguard.train import registry

if TYPE_CHECKING:
    from streamguard.evaluate.calibration import Calibration

BUNDLE_FILE = "bundle.json"
CALIBRATION = "calibration.json"
FORMAT = 1
log = logging.getLogger(__name__)


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def export_run(run: Path, out: Path, data: Path | None = None) -> Path:
    """Write the bundle of ``run`` to ``out`` (which must not exist), atomically; one writer per ``out``."""
    src = open_model(run, data)
    if src.is_bundle:
        raise UserError(f"{run} is already a bundle")
    out = Path(out)
    if out.exists():
        raise UserError(f"export: {out} exists; give a new directory")
    make_dir(out.parent, "export folder")
    with locked_file(out.parent / f".{out.name}.export.lock", out):  # a second export to `out` stops here
        if out.exists():
            raise UserError(f"export: {out} exists; give a new directory")
        # A temp folder of its own, beside `out` (same filesystem, so the final rename is atomic).
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-export-", dir=out.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the bundle unreadable to others
        _write_bundle(Path(run), src, tmp, out)
    return out


def _write_bundle(run: Path, src: ModelSource, tmp: Path, out: Path) -> None:
    from streamguard.evaluate.calibration import fit_run
    from streamguard.scan.card import model_card
    try:
        registry.export_model(Path(run), tmp / "model", src.kind)  # what the kind's predict needs, nothing more
        (tmp / "preprocess").mkdir()
        shutil.copytree(src.prep_dir / "tokenizer", tmp / "preprocess" / "tokenizer")
        for name in PREP_FILES:
            shutil.copy2(src.prep_dir / name, tmp / "preprocess" / name)
        exp = RunDir(run).read_exp()
        info = {"format": FORMAT, "kind": src.kind, "threshold": src.threshold, "name": Path(run).resolve().name,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "source_run": {"path": str(Path(run).resolve()), "git": exp.get("git"),
                               "data_sha256": exp.get("data_sha256"), "data_identity": exp.get("data_identity")},
                "versions": {"bundle_format": FORMAT, **package_versions(), "exported_by_git": git_state()}}
        (tmp / BUNDLE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        cal = src.info.get("calibration") or fit_run(run)
        (tmp / CALIBRATION).write_text(json.dumps(cal.to_dict(), indent=2) + "\n")
        (tmp / "MODEL_CARD.md").write_text(model_card(Path(run), exp, info, cal))
        (tmp / MANIFEST).write_text(json.dumps({"files": _manifest(tmp)}, indent=2) + "\n")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify(root: Path) -> None:
    """Refuse a bundle whose files differ from its manifest (changed, missing or added), or whose files are of a
    kind or shape that must not load (``bundle_check``)."""
    doc = bundle_check.load_json(root / MANIFEST, f"{root}/{MANIFEST}")
    listed = bundle_check.check_manifest(doc.get("files") if isinstance(doc, dict) else None, root)
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
        bundle_check.check_file(root, rel)


# open_model lives here, not in scan.model: it dispatches to open_bundle, and this module imports scan.model
def open_model(path: str | os.PathLike, data: str | os.PathLike | None = None) -> ModelSource:
    """A bundle (``bundle.json``; its manifest is checked) or a run directory (``exp_config.json``; its
    processed data dir, recorded or given as ``data``, supplies the tokenizer and vocabulary)."""
    p = Path(path)
    if (p / BUNDLE_FILE).is_file():
        src = open_bundle(p)
        missing = registry.missing_bundle_file(src.model_dir, src.kind)
        if missing:
            raise UserError(f"{p}: model/{missing} is missing (a bundle of another layout); export the run again "
                            "with `streamguard export RUN --out DIR`")
        return src
    if not RunDir(p).is_run():
        raise UserError(f"{p} is neither a model bundle ({BUNDLE_FILE}) nor a run directory ({EXP_FILE})")
    exp = read_exp_config(p)
    prep_dir = Path(data) if data else Path(str(exp.get("data_dir") or ""))
    if not all((prep_dir / f).is_file() for f in PREP_FILES) or not (prep_dir / "tokenizer").is_dir():
        raise UserError(f"run {p}: its processed data dir {str(prep_dir)!r} (tokenizer, node vocabulary) is not "
                        "here; pass --data DIR, or scan with a bundle made by `streamguard export`")
    from streamguard.evaluate.calibration import fit_run
    return ModelSource(exp["model"], p, prep_dir, thresholds.run_threshold(p), p.name, False,
                       {"run": str(p), "data_dir": str(prep_dir), "calibration": fit_run(p)})


def open_bundle(root: Path) -> ModelSource:
    verify(root)
    info = bundle_check.check_info(bundle_check.load_json(root / BUNDLE_FILE, f"{root}/{BUNDLE_FILE}"), root,
                                   FORMAT)
    bundle_check.check_model(root / "model", info["kind"])
    return ModelSource(info["kind"], root / "model", root / "preprocess", float(info["threshold"]),
                       str(info.get("name") or root.name), True, {**info, "calibration": _calibration(root)})


def _calibration(root: Path) -> Calibration:
    """The bundle's calibration; a bundle exported before calibrations were has none: raw scores, one warning."""
    from streamguard.evaluate.calibration import Calibration
    if not (root / CALIBRATION).is_file():
        log.warning("%s carries no %s (exported before calibrated scores): its scores are raw, not calibrated "
                    "probabilities; export it again from its run to calibrate them", root, CALIBRATION)
        return Calibration()
    try:
        return Calibration.from_dict(bundle_check.load_json(root / CALIBRATION, f"{root}/{CALIBRATION}"))
    except (ValueError, TypeError) as exc:
        raise UserError(f"{root}/{CALIBRATION}: {exc}; refused") from None
