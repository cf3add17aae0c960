"""Ingest: raw sources -> a raw dataset (CodeXGLUE-format splits, rejects, manifest: streamguard.data.rawdir).

Two source forms are read: CodeXGLUE's jsonl splits, and Devign's ``function.json`` with the CodeXGLUE
index files ``train.txt`` / ``valid.txt`` / ``test.txt``. Every input line is either written or rejected with
its reason: counts in = counts out + rejects.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from streamguard.data.neardup import text_key
from streamguard.data.rawdir import RawDir
from streamguard.data.records import RAW_PREFIX, SPLITS, RecordError, iter_jsonl, validate_raw
from streamguard.data.stats import audit, hashes
from streamguard.errors import UserError
from streamguard.provenance import sha256_file

# (line number in the source file, parsed row or RecordError[, raw text prefix: else the row is re-serialised])
Entry = tuple[int, Any] | tuple[int, Any, str]


def _jsonl_source(source: Path, split: str) -> tuple[Iterator[Entry], list[Path]]:
    path = source / f"{split}.jsonl"
    return iter_jsonl(path), [path]


def _devign_source(source: Path, split: str, functions: list[Any]) -> tuple[Iterator[Entry], list[Path]]:
    index_path = source / f"{split}.txt"

    def entries() -> Iterator[Entry]:
        for lineno, line in enumerate(index_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            text = line.strip().lstrip("\ufeff")
            if not text:
                continue
            raw = text[:RAW_PREFIX]
            if not text.isdigit():
                yield lineno, RecordError(f"index line is not a non-negative integer: {text[:40]!r}"), raw
            elif int(text) >= len(functions):
                yield lineno, RecordError(f"index {text} is past the end of function.json ({len(functions)} rows)"), raw
            else:
                row = functions[int(text)]
                yield lineno, ({**row, "idx": int(text)} if isinstance(row, dict) else row), raw
    return entries(), [index_path, source / "function.json"]


def _load_devign_functions(source: Path) -> list[Any]:
    try:
        functions = json.loads((source / "function.json").read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{source / 'function.json'} is not valid JSON: {str(exc)[:200]}") from None
    except OSError as exc:
        raise UserError(f"cannot read {source / 'function.json'}: {exc.strerror or exc}") from None
    if not isinstance(functions, list):
        raise UserError(f"{source / 'function.json'} must hold a JSON array of functions")
    return functions


RAW_PREFIX_CHARS = 200  # a reject keeps this much of its input: enough to find it, bounded for huge rows


def raw_prefix(obj: Any) -> str:
    """A bounded, printable prefix of a rejected input (the parsed row re-serialised, or the error)."""
    if isinstance(obj, RecordError):
        return ""  # unparsable input: the reason says what was wrong, the line number where
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if not str(k).startswith("_")}  # importers' bookkeeping keys
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, default=str)
    return text[:RAW_PREFIX_CHARS]


def validate_entries(entries: Iterable[Entry], split: str, rejects: list[dict],
                     convert: Callable[[Any], dict[str, Any]] = validate_raw,
                     check: Callable[[dict[str, Any], int], None] | None = None) -> tuple[list[dict], int]:
    """Validate every entry ``(line, parsed[, raw text])`` with ``convert`` (and ``check``); return (kept rows,
    entries read). Whatever one record does, only that record is rejected: it goes to ``rejects`` with the split,
    line, reason and a bounded ``raw`` prefix, so counts in = counts out + rejects."""
    kept: list[dict] = []
    read = 0
    for entry in entries:
        lineno, obj = entry[0], entry[1]
        read += 1
        try:
            if isinstance(obj, RecordError):
                raise obj
            row = convert(obj)
            if check is not None:
                check(row, lineno)
            kept.append(row)
        except Exception as exc:  # noqa: BLE001 - a hostile record (deep nesting, odd types) is that record's fault
            reason = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {str(exc)[:200]}"
            raw = entry[2] if len(entry) > 2 else raw_prefix(obj)
            rejects.append({"split": split, "line": lineno, "reason": reason, "raw": raw})
    return kept, read


def detect_form(source: Path) -> str:
    if not source.is_dir():
        raise UserError(f"source folder not found: {source}")
    if all((source / f"{s}.jsonl").is_file() for s in SPLITS):
        return "codexglue-jsonl"
    if (source / "function.json").is_file() and all((source / f"{s}.txt").is_file() for s in SPLITS):
        return "devign-function-json"
    raise UserError(f"{source} holds neither train/valid/test.jsonl nor function.json with train/valid/test.txt")


def import_codexglue(source: Path, out: Path, dedup: bool = False) -> dict[str, Any]:
    """Validate and write every split; return the manifest (also written to ``out``, last)."""
    form = detect_form(source)
    with RawDir.writing(out) as raw:
        return _import(source, raw, form, dedup)


def _import(source: Path, raw: RawDir, form: str, dedup: bool) -> dict[str, Any]:
    functions = _load_devign_functions(source) if form == "devign-function-json" else []
    kept: dict[str, list[dict]] = {}
    first_seen: dict[tuple[str, str], int] = {}
    rejects: list[dict] = []
    read: dict[str, int] = {}
    inputs: dict[str, str] = {}
    for split in SPLITS:
        entries, files = (_jsonl_source(source, split) if form == "codexglue-jsonl"
                          else _devign_source(source, split, functions))
        inputs.update({str(f): _sha256_readable(f) for f in files})
        kept[split], read[split] = validate_entries(
            entries, split, rejects, check=lambda row, lineno, s=split: _check_idx(row, s, lineno, first_seen))
    if not any(kept.values()):
        raw.write_rejects(rejects)
        raise UserError(f"nothing to import from {source}: {sum(read.values())} line(s) read, none usable "
                        f"(reasons in {raw.rejects_path})" if rejects else
                        f"nothing to import from {source}: its train, valid and test splits are empty")
    report = {**audit(kept), "duplicate_idx_across_splits": _cross_split_idx(kept)}
    removed = _dedup_train(kept, rejects) if dedup else 0
    _write(raw, kept, rejects, read)
    manifest = raw.write_manifest("codexglue", "import-codexglue", report, {  # last: marks the import done
        "source_form": form, "source_dir": str(source.resolve()), "inputs_sha256": inputs,
        "dedup": {"enabled": dedup, "removed_from_train": removed}})
    _print_summary(raw.path, manifest)
    return manifest


def _sha256_readable(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_idx(row: dict, split: str, lineno: int, first_seen: dict[tuple[str, str], int]) -> None:
    """Refuse a second row of one split with an ``idx`` already imported there (an id must name one
    function); the same idx in two splits is counted in the audit (``duplicate_idx_across_splits``)."""
    if row["idx"] is None:
        return
    key = (split, str(row["idx"]))
    if key in first_seen:
        raise RecordError(f"duplicate idx {key[1][:40]} (first seen on line {first_seen[key]} of {split})")
    first_seen[key] = lineno


def _cross_split_idx(kept: dict[str, list[dict]]) -> dict[str, Any]:
    seen: dict[str, set[str]] = {}
    for split, rows in kept.items():
        for row in rows:
            if row["idx"] is not None:
                seen.setdefault(str(row["idx"]), set()).add(split)
    shared = sorted(k for k, splits in seen.items() if len(splits) > 1)
    return {"count": len(shared), "examples": shared[:10]}


def _dedup_train(kept: dict[str, list[dict]], rejects: list[dict]) -> int:
    """Drop train rows that are the same function (``neardup.text_key``) as a valid or test row; they become
    rejects."""
    held_out = hashes(kept["valid"]) | hashes(kept["test"])
    remaining = []
    for row in kept["train"]:
        if text_key(row["func"]) in held_out:
            rejects.append({"split": "train", "line": None, "idx": row["idx"],
                            "reason": "duplicate of a valid/test function (--dedup)"})
        else:
            remaining.append(row)
    removed = len(kept["train"]) - len(remaining)
    kept["train"] = remaining
    return removed


def _write(raw: RawDir, kept: dict[str, list[dict]], rejects: list[dict], read: dict[str, int]) -> None:
    for split in SPLITS:
        n_rej = sum(1 for r in rejects if r["split"] == split)
        assert read[split] == len(kept[split]) + n_rej, "every input line is written or rejected"
        raw.write_split(split, kept[split], read=read[split], rejected=n_rej)
    raw.write_rejects(rejects)


def _print_summary(out: Path, manifest: dict[str, Any]) -> None:
    parts = [f"{s} {c['written']}/{c['read']}" for s, c in manifest["counts"].items()]
    cross = manifest["audit"]["cross_split"]
    leak = cross.get("train-test", {}).get("shared_functions", 0) + cross.get("valid-test", {}).get(
        "shared_functions", 0)
    print(f"imported {', '.join(parts)} (written/read); {sum(c['rejected'] for c in manifest['counts'].values())} "
          f"rejected; {leak} test functions also in train/valid; "
          f"{manifest['extra']['dedup']['removed_from_train']} removed by --dedup -> {out}")
