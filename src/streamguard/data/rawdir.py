"""The one owner of a raw dataset's files: what ``data import`` (codexglue and the collector formats) and
``data merge`` write, and what ``preprocess --raw`` and ``merge --base/--add`` read.

Layout::

    DIR/{train,valid,test}.jsonl   CodeXGLUE rows (a split dataset), or DIR/pool.jsonl (a collector import)
    DIR/rejects.jsonl              every input row not written, with its reason
    DIR/manifest.json              written last: its presence marks the dataset complete

One manifest schema for every writer (``SCHEMA``)::

    schema          "streamguard.raw/1"
    source          the source name (codexglue, a collector --name, merged, heldout)
    made_by         import-codexglue | import-collected | merge
    counts          per split: written (and read, rejected where the writer read rows one by one)
    label_balance   per split: count, vulnerable, vulnerable_share
    sha256          per written file
    audit           duplicates and leakage (streamguard.data.stats.audit)
    seconds, environment
    extra           what only that writer knows (source path, --dedup, merge rules' counts...)
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamguard.atomic import write_json
from streamguard.data.records import SPLITS, read_jsonl, write_jsonl
from streamguard.data.stats import audit as audit_of
from streamguard.errors import UserError
from streamguard.provenance import environment, sha256_file
from streamguard.runlock import locked

SCHEMA = "streamguard.raw/1"
MANIFEST_FILE = "manifest.json"
REJECTS_FILE = "rejects.jsonl"
POOL = "pool"


def label_balance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    vul = sum(int(r["target"]) for r in rows)
    return {"count": n, "vulnerable": vul, "vulnerable_share": round(vul / n, 4) if n else 0.0}


class RawDir:
    """A raw dataset directory; a writer gets one from ``RawDir.writing(path)`` (locked, done marker removed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._counts: dict[str, dict[str, int]] = {}
        self._balance: dict[str, dict[str, Any]] = {}
        self._sha: dict[str, str] = {}
        self._started = time.time()

    def __repr__(self) -> str:
        return f"RawDir({str(self.path)!r})"

    # --- files -------------------------------------------------------------------------------------------
    def split_path(self, split: str) -> Path:
        return self.path / f"{split}.jsonl"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def rejects_path(self) -> Path:
        return self.path / REJECTS_FILE

    def is_complete(self) -> bool:
        return self.manifest_path.is_file()

    def row_files(self) -> list[Path]:
        """The files holding rows: ``pool.jsonl`` of a collector import, else the splits present."""
        if self.split_path(POOL).is_file():
            return [self.split_path(POOL)]
        return [self.split_path(s) for s in SPLITS if self.split_path(s).is_file()]

    # --- reading -----------------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The manifest, ``{}`` when there is none (raw data made by hand); a damaged one is a UserError."""
        if not self.manifest_path.is_file():
            return {}
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {self.manifest_path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    def check_complete(self) -> dict[str, Any]:
        """The manifest of a raw dataset its writer finished and nobody changed since (every split's sha256 as
        recorded); a one-line UserError otherwise. ``data import`` and ``data merge`` write it last."""
        path = self.manifest_path
        if not path.is_file():
            raise UserError(f"{self.path} has no {MANIFEST_FILE}: not a finished raw dataset (write it with "
                            "`streamguard data import` or `data merge`; a stopped import or merge leaves none)")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            recorded = manifest.get("sha256")
        except (ValueError, AttributeError, OSError):
            manifest, recorded = {}, None
        if not isinstance(recorded, dict):
            raise UserError(f"{path} records no sha256 of the splits: import the data again")
        for split in SPLITS:
            file = self.split_path(split)
            if recorded.get(file.name) != sha256_file(file):
                raise UserError(f"{file} does not match the sha256 in {path}: it changed after the import or "
                                "merge that wrote it; import it again")
        return manifest

    def source_name(self, default: str) -> str:
        return str(self.manifest().get("source") or default)

    def read_split(self, split: str) -> list[dict[str, Any]]:
        return read_jsonl(self.split_path(split))

    # --- writing -----------------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def writing(cls, path: str | Path, what: str = "--out") -> Iterator[RawDir]:
        """Hold the folder's one-writer lock; the old manifest (the done marker) goes first, so a write killed
        half-way never leaves new splits beside a manifest that vouches for the old ones."""
        with locked(path, what):
            raw = cls(path)
            raw.manifest_path.unlink(missing_ok=True)
            yield raw

    def write_split(self, split: str, rows: list[dict[str, Any]], read: int | None = None,
                    rejected: int | None = None) -> Path:
        """Write one split (or the pool) and note its counts, label balance and sha256 for the manifest."""
        path = self.split_path(split)
        write_jsonl(path, rows)
        counts = {"written": len(rows)}
        if read is not None:
            counts = {"read": read, **counts, "rejected": rejected or 0}
        self._counts[split] = counts
        self._balance[split] = label_balance(rows)
        self._sha[path.name] = sha256_file(path)
        return path

    def write_rejects(self, rejects: list[dict[str, Any]]) -> Path:
        write_jsonl(self.rejects_path, rejects)
        return self.rejects_path

    def write_manifest(self, source: str, made_by: str, audit: dict[str, Any] | None = None,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The manifest of what this writer wrote, written last (the done marker); returns it."""
        if audit is None:
            audit = audit_of({s: self.read_split(s) for s in self._counts})
        manifest = {"schema": SCHEMA, "source": source, "made_by": made_by, "counts": self._counts,
                    "label_balance": self._balance, "sha256": self._sha, "audit": audit,
                    "seconds": round(time.time() - self._started, 2), "environment": environment(),
                    "extra": extra or {}}
        write_json(self.manifest_path, json.loads(json.dumps(manifest, default=str)))
        return manifest
