"""``scan --cache DIR``: each file's function scores, so a rescan re-scores only the files that changed.

An entry is keyed by the sha256 of the file's bytes, its path in the report (fingerprints include it), the
model's identity (a bundle's manifest, which holds every file's sha256; a run directory's files' sizes and
modification times) and the settings that change scores (precision, the function size cap, this cache's
format and the project's version). Scores, not verdicts, are stored: a new threshold reuses them. Entries are
JSON (never pickle), written atomically; an unreadable entry is a miss. ``--diff`` scans do not use it (they
score a few functions of each file, not the file).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from streamguard.atomic import make_dir, write_json
from streamguard.data.extract import CFile, CFunction
from streamguard.scan.bundle_check import MANIFEST
from streamguard.scan.model import ModelSource

FORMAT = 1


def model_identity(source: ModelSource, precision: str | None, max_function_bytes: int) -> str:
    """What the scores depend on besides the file: the model's files and the scoring settings."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ours = version("streamguard")
    except PackageNotFoundError:  # run from a source tree
        ours = "source"
    h = hashlib.sha256(json.dumps([FORMAT, ours, source.kind, precision, max_function_bytes]).encode())
    manifest = Path(source.model_dir).parent / MANIFEST
    if source.is_bundle and manifest.is_file():
        h.update(manifest.read_bytes())
    else:
        for folder in (Path(source.model_dir), Path(source.prep_dir)):
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    st = p.stat()
                    h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class ScoreCache:
    """Per-file entries under ``folder``; ``hits``, ``misses`` count files, ``rescored`` functions scored anew."""

    def __init__(self, folder: str | Path, identity: str):
        self.folder = make_dir(Path(folder), "--cache folder")
        self.identity = identity
        self.hits = self.misses = self.rescored = 0

    def key(self, cf: CFile) -> str:
        h = hashlib.sha256(f"{self.identity}\0{cf.path}\0".encode())
        h.update(cf.data or b"")
        return h.hexdigest()

    def _file(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, cf: CFile) -> list[dict[str, Any]] | None:
        """The file's cached functions (each: name, lines, bytes, score or None with the reason), or None."""
        try:
            doc = json.loads(self._file(self.key(cf)).read_text(encoding="utf-8"))
            funcs = doc["functions"] if doc.get("format") == FORMAT else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            funcs = None
        if funcs is None:
            self.misses += 1
        else:
            self.hits += 1
        return funcs

    def put(self, cf: CFile, entries: list[dict[str, Any]]) -> None:
        path = self._file(self.key(cf))
        path.parent.mkdir(exist_ok=True)
        write_json(path, {"format": FORMAT, "path": cf.path, "functions": entries}, indent=None)

    def summary(self) -> dict[str, int]:
        return {"files_from_cache": self.hits, "files_parsed": self.misses, "functions_rescored": self.rescored}


def entry(fn: CFunction, score: float, reason: str | None, fp: str) -> dict[str, Any]:
    return {"name": fn.name, "start_line": fn.start_line, "end_line": fn.end_line,
            "score": None if math.isnan(score) else score, "reason": reason, "fingerprint": fp}
