"""The record schemas (raw CodeXGLUE rows and preprocessed records), jsonl I/O and validation."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from streamguard.atomic import atomic_open
from streamguard.errors import UserError

SPLITS = ("train", "valid", "test")
RAW_FIELDS = ("project", "commit_id", "target", "func", "idx")
PROCESSED_FIELDS = ("id", "code", "language", "tokens", "token_offsets", "ast_nodes", "edge_index", "label",
                    "metadata")


RAW_PREFIX = 200  # characters of a rejected line kept in rejects.jsonl's ``raw`` field


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
    # exactly the integers 0 and 1: 1.0, -0.0 and True compare equal to them but are not labels
    if type(target) is not int or target not in (0, 1):
        raise RecordError(f"'target' must be 0 or 1, got {repr(target)[:40]} (exactly these integers)")
    idx = row.get("idx")
    if idx is not None and (isinstance(idx, bool) or not isinstance(idx, (int, str))):
        raise RecordError(f"'idx' must be an integer or a string, got {type(idx).__name__}")
    return {"project": _text(row.get("project")), "commit_id": _text(row.get("commit_id")),
            "target": target, "func": func, "idx": idx}


def _text(value: Any) -> str:
    if value is None or isinstance(value, (str, int, float)):
        return str(value or "")
    raise RecordError(f"expected a string, got {type(value).__name__}")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any, str]]:
    """Yield (line number, parsed object or RecordError, the line's first RAW_PREFIX characters) for every
    non-blank line. Bytes that are not UTF-8, malformed JSON and JSON nested too deeply to parse become
    RecordErrors, so callers can reject that line with a reason instead of crashing; a UTF-8 byte order
    mark before the first line is skipped."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            prefix = raw[: RAW_PREFIX * 4].decode("utf-8", "replace")[:RAW_PREFIX]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, RecordError(f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})"), prefix
                continue
            try:
                yield lineno, json.loads(text), prefix
            except json.JSONDecodeError as exc:
                yield lineno, RecordError(f"malformed JSON: {exc.msg} at column {exc.colno}"), prefix
            except RecursionError:
                yield lineno, RecordError("JSON nested too deeply to parse"), prefix
            except ValueError as exc:  # e.g. an integer with too many digits
                yield lineno, RecordError(f"unparseable JSON: {str(exc)[:100]}"), prefix


def read_jsonl_lines(path: str | Path) -> Iterator[tuple[int, Any | RecordError]]:
    """Yield (line number, parsed object) or (line number, RecordError) for every non-blank line."""
    for lineno, obj, _ in iter_jsonl(path):
        yield lineno, obj


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
    n = 0
    with atomic_open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
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
    text = rec.get("ast_text")  # optional: data preprocessed before it existed lacks it
    if text is not None and (not isinstance(text, list) or len(text) != n_nodes
                             or not all(isinstance(t, str) for t in text)):
        raise RecordError("ast_text must be one string per AST node")
    if any(not (0 <= s < n_nodes and 0 <= d < n_nodes) for s, d in rec["edge_index"]):
        raise RecordError("edge endpoint outside the node range")
    if rec["label"] not in (0, 1):
        raise RecordError(f"label must be 0 or 1, got {rec['label']!r}")


def check_prediction(row: Any, where: str) -> float:
    """The ``prob_vulnerable`` of one predictions row, refused in one line unless it is a number in [0, 1]
    (NaN, infinities, strings and booleans included) and any ``logits`` are two finite numbers."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: not a JSON object")
    prob = row.get("prob_vulnerable")
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        raise UserError(f"{where}: prob_vulnerable must be a number in [0, 1], got {str(prob)[:40]!r}")
    logits = row.get("logits")
    if logits is not None and (not isinstance(logits, list) or len(logits) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in logits)):
        raise UserError(f"{where}: logits must be two finite numbers, got {str(logits)[:60]}")
    if row.get("label") not in (0, 1) or isinstance(row.get("label"), bool):
        raise UserError(f"{where}: label must be 0 or 1, got {str(row.get('label'))[:20]!r}")
    return float(prob)
