"""Collector imports: labelled functions from outside Devign -> a raw dataset of one ``pool`` (data/rawdir.py).

Formats (``streamguard data import FORMAT``): ``jsonl`` / ``csv`` with a field mapping (``--map dst=src,...``),
``bigvul`` (Big-Vul's CSV: ``func_before``/``func_after`` of one fix become a before (1) / after (0) pair),
``primevul`` (PrimeVul's JSONL), and ``cdir`` (a folder of C files with a labels CSV). A pool has no split of its
own: ``streamguard data merge`` places it. Validation, rejects (reason + bounded ``raw``) and the manifest are the
CodeXGLUE import's (``ingest.validate_entries``). Every row keeps its ``source``; ``idx`` becomes
``<source>:<line>[:before|:after]``, unique across sources as long as source names differ (merge checks it).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamguard.atomic import make_dir
from streamguard.data.csv_records import csv_rows
from streamguard.data.ingest import Entry, validate_entries
from streamguard.data.neardup import text_key
from streamguard.data.rawdir import POOL, RawDir
from streamguard.data.records import RecordError, read_jsonl_lines, validate_raw
from streamguard.data.stats import audit
from streamguard.errors import UserError
from streamguard.provenance import sha256_file

FORMATS = ("jsonl", "csv", "bigvul", "primevul", "cdir")
EXTRA_FIELDS = ("pair_id", "cve", "cwe", "orig_idx")
MAPPABLE = ("func", "target", "project", "commit_id", "idx", *EXTRA_FIELDS)
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def parse_map(spec: str | None) -> dict[str, str]:
    """``func=func_before,target=vul`` -> {"func": "func_before", "target": "vul"} (destination -> source)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        dst, sep, src = part.partition("=")
        dst, src = dst.strip(), src.strip()
        if not sep or not dst or not src:
            raise UserError(f"--map entry {part!r} is not dst=src")
        if dst not in MAPPABLE:
            raise UserError(f"--map destination {dst!r} is not one of {', '.join(MAPPABLE)}")
        out[dst] = src
    return out


def _label(value: Any) -> Any:
    """CSV cells and some JSON sets carry labels as text ('1', '0', 'True', 'false'), others as JSON booleans:
    they become 1/0 (docs/data-collection.md)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return {"1": 1, "0": 0, "true": 1, "false": 0}.get(value.strip().lower(), value)
    return value


def _mapped(row: Any, mapping: dict[str, str]) -> Any:
    if not isinstance(row, dict):
        return row
    out = dict(row)
    for dst, src in mapping.items():
        if src not in row:
            return RecordError(f"mapped field {src!r} (for {dst}) is missing")
        out[dst] = row[src]
    return out


def _generic(path: Path, fmt: str, mapping: dict[str, str]) -> Iterator[Entry]:
    lines = read_jsonl_lines(path) if fmt == "jsonl" else \
        csv_rows(path, code=(mapping.get("func", "func"),), label=mapping.get("target", "target"))
    for lineno, row in lines:
        yield lineno, row if isinstance(row, RecordError) else _mapped(row, mapping)


def _bigvul(path: Path, mapping: dict[str, str]) -> Iterator[Entry]:
    """One CSV row of Big-Vul = one fix: vul=1 gives the function before (1) and after (0) as a pair; vul=0 rows
    (functions the fix did not touch) give the one function, label 0."""
    cols = {"before": "func_before", "after": "func_after", "vul": "vul", "cve": "CVE ID", "cwe": "CWE ID",
            "project": "project", "commit_id": "commit_id", **mapping}
    for lineno, row in csv_rows(path, code=(cols["before"], cols["after"]), label=cols["vul"]):
        if isinstance(row, RecordError):
            yield lineno, row
            continue
        missing = [c for c in (cols["before"], cols["vul"]) if c not in row]
        if missing:
            yield lineno, RecordError(f"missing column(s): {', '.join(missing)}")
            continue
        base = {"project": row.get(cols["project"]), "commit_id": row.get(cols["commit_id"]),
                "cve": row.get(cols["cve"]) or "", "cwe": row.get(cols["cwe"]) or "",
                "orig_idx": row.get("", row.get("index", "")), "pair_id": f"line{lineno}"}
        vul = _label(row[cols["vul"]])
        if vul != 1:
            yield lineno, {**base, "func": row[cols["before"]], "target": vul, "pair_id": "", "_part": ""}
            continue
        before, after = row[cols["before"]], row.get(cols["after"]) or ""
        yield lineno, {**base, "func": before, "target": 1, "_part": ":before"}
        if text_key(before) == text_key(after):  # the one "same function" (neardup.text_key)
            yield lineno, RecordError("func_after equals func_before: the fix did not change this function")
        else:
            yield lineno, {**base, "func": after, "target": 0, "_part": ":after"}


def _primevul(path: Path) -> Iterator[Entry]:
    """PrimeVul JSONL: idx, project, commit_id, target, func, cwe (list), cve, ... The CVE groups the
    vulnerable and patched versions (the paired files keep them on neighbouring lines)."""
    for lineno, row in read_jsonl_lines(path):
        if isinstance(row, dict):
            cwe = row.get("cwe")
            row = {**row, "cwe": ",".join(cwe) if isinstance(cwe, list) else (cwe or ""),
                   "orig_idx": row.get("idx"), "pair_id": row.get("cve") or ""}
        yield lineno, row


def _cdir(folder: Path, labels: Path | None, mapping: dict[str, str]) -> Iterator[Entry]:
    """A labels CSV (``file,target[,project,cve,pair_id,...]``, names relative to the folder) over C files."""
    if labels is None:
        raise UserError("data import cdir needs --labels CSV (file,target[,project,...])")
    root = folder.resolve()
    for lineno, row in csv_rows(labels, code=(), label=mapping.get("target", "target")):
        if isinstance(row, RecordError):
            yield lineno, row
            continue
        row = _mapped(row, mapping)
        if isinstance(row, RecordError):
            yield lineno, row
            continue
        name = (row.get("file") or "").strip()
        path = (folder / name).resolve()
        if not name or not path.is_relative_to(root):
            yield lineno, RecordError(f"file {name!r} is empty or outside {folder}")
        elif not path.is_file():
            yield lineno, RecordError(f"file {name!r} not found in {folder}")
        else:
            raw = path.read_bytes()
            try:
                yield lineno, {**row, "func": raw.decode("utf-8"), "orig_idx": name}
            except UnicodeDecodeError as exc:
                yield lineno, RecordError(f"file {name!r} is not valid UTF-8 ({exc.reason} at byte {exc.start})")


def collected_row(source: str, lineno: int, obj: Any) -> dict[str, Any]:
    """validate_raw's checks plus the collector's fields; ``idx`` is the row's id, unique across sources."""
    if isinstance(obj, dict) and "target" in obj:
        obj = {**obj, "target": _label(obj["target"])}
    row = validate_raw(obj)
    part = obj.get("_part", "")
    row["idx"] = f"{source}:{lineno}{part}"
    row["source"] = source
    for key in EXTRA_FIELDS:
        value = obj.get(key)
        row[key] = "" if value is None else str(value)
    if not row["orig_idx"] and obj.get("idx") is not None:
        row["orig_idx"] = str(obj["idx"])
    return row


def _entries(fmt: str, source: Path, mapping: dict[str, str], labels: Path | None) -> Iterator[Entry]:
    if fmt in ("jsonl", "csv"):
        return _generic(source, fmt, mapping)
    if fmt == "bigvul":
        return _bigvul(source, mapping)
    if fmt == "primevul":
        return _generic(source, "jsonl", mapping) if mapping else _primevul(source)
    return _cdir(source, labels, mapping)


def label_balance(rows: list[dict[str, Any]], key: str, top: int = 15) -> dict[str, dict[str, Any]]:
    """Rows, vulnerable rows and vulnerable share per value of ``key`` (the ``top`` largest groups)."""
    count = Counter(str(r.get(key) or "") for r in rows)
    vul = Counter(str(r.get(key) or "") for r in rows if int(r["target"]) == 1)
    return {k: {"count": n, "vulnerable": vul[k], "vulnerable_share": round(vul[k] / n, 4)}
            for k, n in count.most_common(top)}


def import_collected(fmt: str, source: Path, out: Path, name: str | None = None, mapping: str | None = None,
                     labels: Path | None = None) -> dict[str, Any]:
    """Validate ``source`` into ``out``'s pool; return the manifest (also written to ``out``, last)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r} (known: {', '.join(FORMATS)})")
    name = name or fmt
    if not _SOURCE_NAME.match(name):
        raise UserError(f"--name {name!r}: use lower-case letters, digits and _ (it prefixes every id)")
    if not (source.is_dir() if fmt == "cdir" else source.is_file()):
        raise UserError(f"source {'folder' if fmt == 'cdir' else 'file'} not found: {source}")
    if fmt == "cdir" and labels is not None and not labels.is_file():
        raise UserError(f"labels file not found: {labels}")
    make_dir(out, "--out")  # a file in the way is one line, not a traceback
    with RawDir.writing(out) as raw:  # one writer per folder, as every stage
        return _import(fmt, source, raw, name, mapping, labels)


def _import(fmt: str, source: Path, raw: RawDir, name: str, mapping: str | None, labels: Path | None) -> dict:
    entries = ((ln, {**o, "_line": ln} if isinstance(o, dict) else o)
               for ln, o in _entries(fmt, source, parse_map(mapping), labels))
    rejects: list[dict] = []
    kept, read = validate_entries(entries, POOL, rejects, lambda o: collected_row(name, o["_line"], o))
    if not kept:  # an empty import is an error, not a dataset (docs/reliability.md)
        raw.write_rejects(rejects)
        raise UserError(f"nothing to import from {source}: {read} row(s) read, none usable"
                        + (f" (reasons in {raw.rejects_path})" if rejects else ""))
    assert read == len(kept) + len(rejects), "every input record is written or rejected"
    raw.write_split(POOL, kept, read=read, rejected=len(rejects))
    raw.write_rejects(rejects)
    inputs = [source] if fmt != "cdir" else [p for p in (labels,) if p]
    manifest = raw.write_manifest(name, "import-collected", audit({POOL: kept}), {
        "source_form": fmt, "source_path": str(source.resolve()), "map": parse_map(mapping),
        "label_balance_by_project": label_balance(kept, "project"),
        "groups": {"pairs": len({r["pair_id"] for r in kept if r["pair_id"]}),
                   "cves": len({r["cve"] for r in kept if r["cve"]})},
        "inputs_sha256": {str(p): sha256_file(p) for p in inputs}})
    print(f"imported {len(kept)}/{read} {fmt} records as source '{name}' ({len(rejects)} rejected) -> {raw.path}")
    return manifest
