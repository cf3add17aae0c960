"""The record schemas (raw CodeXGLUE rows and preprocessed records), jsonl I/O and validation."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from streamguard.errors import UserError

SPLITS = ("train", "valid", "test")
RAW_FIELDS = ("project", "commit_id", "target", "func", "idx")
PROCESSED_FIELDS = ("id", "code", "language", "tokens", "token_offsets", "ast_nodes", "edge_index", "label",
                    "metadata")


class RecordError(ValueError):
    """A record that cannot be used; the message is the reason written to the rejects file."""


def validate_raw(row: Any) -> dict[str, Any]:
    """Check one CodeXGLUE row; return it normalised or raise RecordError with the reason."""
    if not isinstance(row, dict):
        raise RecordError(f"not a JSON object but {type(row).__name__}")
    missing = [f for f in ("func", "target") if f not in row]
    if missing:
        raise RecordError(f"missing field(s): {', '.join(missing)}")
    func, target = row["func"], row["target"]
    if not isinstance(func, str):
        raise RecordError(f"'func' must be a string, got {type(func).__name__}")
    if not func.strip():
        raise RecordError("'func' is empty")
    if "\x00" in func:
        raise RecordError("'func' contains NUL bytes")
    try:
        func.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError("'func' contains lone surrogates (not encodable as UTF-8)") from None
    if isinstance(target, bool) or target not in (0, 1):
        raise RecordError(f"'target' must be 0 or 1, got {target!r}")
    return {"project": str(row.get("project") or ""), "commit_id": str(row.get("commit_id") or ""),
            "target": int(target), "func": func, "idx": row.get("idx")}


def read_jsonl_lines(path: str | Path) -> Iterator[tuple[int, Any | RecordError]]:
    """Yield (line number, parsed object) or (line number, RecordError) for every non-blank line.

    Bytes that are not UTF-8 and malformed JSON become RecordErrors, so callers can reject them
    with a reason instead of crashing.
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, RecordError(f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                yield lineno, RecordError(f"malformed JSON: {exc.msg} at column {exc.colno}")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a jsonl file that StreamGuard wrote itself; a bad line is a user error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    rows = []
    for lineno, obj in read_jsonl_lines(path):
        if isinstance(obj, RecordError):
            raise UserError(f"{path}:{lineno}: {obj}")
        rows.append(obj)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file then rename) and return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def validate_processed(rec: dict[str, Any], vocab_size: int, node_vocab_size: int) -> None:
    """Check the invariants of a preprocessed record; raise RecordError naming the first broken one."""
    missing = [f for f in PROCESSED_FIELDS if f not in rec]
    if missing:
        raise RecordError(f"missing field(s): {', '.join(missing)}")
    code, tokens, offsets = rec["code"], rec["tokens"], rec["token_offsets"]
    if len(tokens) != len(offsets):
        raise RecordError("tokens and token_offsets differ in length")
    if any(not 0 <= t < vocab_size for t in tokens):
        raise RecordError("token id outside the tokenizer vocabulary")
    last_start = 0
    for start, end in offsets:
        if start == end == 0:
            continue  # special tokens carry an empty span
        # byte-level BPE may split one character into several tokens that share its span: starts only
        # have to be non-decreasing
        if not (0 <= start <= end <= len(code)) or start < last_start:
            raise RecordError(f"token offset [{start}, {end}] outside the code or out of order")
        last_start = start
    n_nodes = len(rec["ast_nodes"])
    if n_nodes == 0:
        raise RecordError("graph has no nodes")
    if any(not 0 <= v < node_vocab_size for v in rec["ast_nodes"]):
        raise RecordError("node id outside the node vocabulary")
    if any(not (0 <= s < n_nodes and 0 <= d < n_nodes) for s, d in rec["edge_index"]):
        raise RecordError("edge endpoint outside the node range")
    if rec["label"] not in (0, 1):
        raise RecordError(f"label must be 0 or 1, got {rec['label']!r}")
