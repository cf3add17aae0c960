"""Fields of the raw rows behind processed records (source, pair_id, cve...): preprocess keeps only the
CodeXGLUE fields, and a processed record's ``metadata.row`` is its line in the raw split it came from."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamguard.data.rawdir import RawDir
from streamguard.data.records import read_jsonl_lines
from streamguard.features.processed import ProcessedDir


def raw_dir_of(data_dir: Path) -> Path | None:
    """The raw folder a processed dataset was made from (``raw_dir`` of its metadata), or None if it is gone."""
    try:
        raw = json.loads(ProcessedDir(data_dir).meta_path.read_text()).get("raw_dir")
    except (OSError, json.JSONDecodeError):
        return None
    if not raw:
        return None
    for cand in (Path(raw), Path(data_dir) / raw):
        if cand.is_dir():
            return cand
    return None


def raw_fields(data_dir: Path, split: str, records: list[dict[str, Any]],
               fields: tuple[str, ...] = ("source", "pair_id", "cve", "project")) -> dict[str, dict[str, Any]]:
    """id -> {field: value} from the raw row of each record (empty values when the raw file is missing)."""
    raw = raw_dir_of(data_dir)
    lines: dict[int, dict] = {}
    raw_split = RawDir(raw).split_path(split) if raw is not None else None
    if raw_split is not None and raw_split.is_file():
        for k, (_, obj) in enumerate(read_jsonl_lines(raw_split)):
            if isinstance(obj, dict):
                lines[k] = {f: obj.get(f) or "" for f in fields}
    out = {}
    for rec in records:
        meta = rec.get("metadata") or {}
        row = lines.get(meta.get("row"), {}) if isinstance(meta.get("row"), int) else {}
        out[rec["id"]] = {f: row.get(f) or meta.get(f) or "" for f in fields}
    return out
