"""The pre-training corpus: C functions of a source tree, normalised, deduplicated, with Devign removed.

Functions come from the one extractor ``scan`` uses (streamguard.data.extract). Two functions are the same when
``neardup.text_key`` says so (the definition the import audit and the merge use: equal C tokens once comments
are removed), so that Devign's blank-line-doubled copies match their originals. Every function that is the same
as a Devign function (train, valid or test) is dropped, so that pre-training never sees an evaluation function.

A second kind of corpus, for task-adaptive pre-training, is Devign's own train split (text only): there, only
the train functions that are also in valid or test are dropped (``build_devign_train_corpus``).

Output: ``functions.jsonl`` (id, path, name, lines, code), ``rejects.jsonl`` (every extracted function not kept,
with its reason) and ``manifest.json`` with the counts; extracted = kept + rejects.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamguard.atomic import atomic_open, write_json
from streamguard.data.neardup import text_key
from streamguard.data.records import read_jsonl_lines
from streamguard.errors import UserError
from streamguard.runlock import locked

log = logging.getLogger(__name__)
# strings and char literals are matched first, so that a "//" or "/*" inside a literal is not a comment
_COMMENT = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/', re.S)
_SPACE = re.compile(r"\s+")
_CTOKEN = re.compile(r"[A-Za-z_]\w*|\d\w*|\S")  # C lexical tokens, roughly: what "tokens" counts
_SPDX = re.compile(r"SPDX-License-Identifier:\s*([^\n*]+?)\s*(?:\*/)?\s*$", re.M)
DEVIGN_SPLITS = ("train", "valid", "test")


def normalise(code: str) -> str:
    """Comments out, whitespace runs to one space: the text two copies of a function share."""
    no_comments = _COMMENT.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", code)
    return _SPACE.sub(" ", no_comments).strip()


def devign_keys(devign: Path, splits: tuple[str, ...] = DEVIGN_SPLITS) -> set[str]:
    """Same-function keys of every Devign function of ``splits`` (by default train, valid and test)."""
    keys: set[str] = set()
    for split in splits:
        path = Path(devign) / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(f"Devign split not found: {path} (expected CodeXGLUE {'/'.join(DEVIGN_SPLITS)}.jsonl)")
        for _, row in read_jsonl_lines(path):
            if isinstance(row, dict) and isinstance(row.get("func"), str):
                keys.add(text_key(row["func"]))
    return keys


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


class _Counts:
    def __init__(self) -> None:
        self.files = self.unreadable = self.functions = self.duplicates = self.devign = self.short = 0
        self.tokens = self.bytes = 0
        self.spdx: Counter[str] = Counter()


class _Collector:
    """Keeps a function, or rejects it with its reason (Devign overlap, duplicate, too short), counting both."""

    def __init__(self, banned: set[str], min_tokens: int) -> None:
        self.banned, self.min_tokens = banned, min_tokens
        self.seen: set[str] = set()
        self.counts, self.kept, self.rejects = _Counts(), [], []

    def add(self, code: str, where: dict[str, Any]) -> None:
        c = self.counts
        c.functions += 1
        key = text_key(code)
        ntok = len(_CTOKEN.findall(normalise(code)))
        reason = ("devign_overlap" if key in self.banned else "duplicate" if key in self.seen
                  else "too_short" if ntok < self.min_tokens else None)
        if reason is not None:
            c.devign += reason == "devign_overlap"
            c.duplicates += reason == "duplicate"
            c.short += reason == "too_short"
            self.rejects.append({**where, "reason": reason, "key": key})
            return
        self.seen.add(key)
        c.tokens += ntok
        c.bytes += len(code.encode())
        self.kept.append({"id": key[:16], **where, "code": code})


def build_corpus(source: Path, out: Path, devign: Path | None, subdirs: list[str] | None = None,
                 include: list[str] | None = None, exclude: list[str] | None = None,
                 min_tokens: int = 10) -> dict[str, Any]:
    """Extract, normalise, deduplicate and filter the functions of ``source``; write the corpus to ``out``."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError(f"corpus source folder not found: {source}")
    missing = [d for d in subdirs or [] if not (source / d).is_dir()]
    if missing:
        raise UserError(f"{source}: no such subfolder {missing[0]!r}")
    with locked(out, "--out"):  # one writer per output folder, as every stage
        return _build(source, out, devign, subdirs, include, exclude, min_tokens)


def _build(source: Path, out: Path, devign: Path | None, subdirs: list[str] | None, include: list[str] | None,
           exclude: list[str] | None, min_tokens: int) -> dict[str, Any]:
    from streamguard.data.extract import extract_functions, iter_c_files
    started = time.time()
    col = _Collector(devign_keys(devign) if devign is not None else set(), min_tokens)
    counts = col.counts
    tops = [source / d for d in subdirs] if subdirs else [source]
    for cf in iter_c_files(tops, include or ["*.c"], exclude, root=source):
        counts.files += 1
        if cf.data is None:
            counts.unreadable += 1
            col.rejects.append({"path": cf.path, "reason": f"file skipped: {cf.skip} {cf.detail}".strip()})
            continue
        for m in _SPDX.finditer(cf.text[:2000]):
            counts.spdx[m.group(1).strip()] += 1
        for fn in extract_functions(cf.data, cf.path):
            col.add(fn.code, {"path": cf.path, "name": fn.name, "lines": [fn.start_line, fn.end_line]})
    return _write_corpus(source, out, devign, {"subdirs": subdirs, "include": include or ["*.c"],
                                               "exclude": exclude}, min_tokens, col, started)


def devign_functions(devign: Path, split: str, limit: int | None = None) -> list[str]:
    """The non-empty ``func`` texts of a CodeXGLUE split, in file order (the first ``limit``)."""
    path = Path(devign) / f"{split}.jsonl"
    if not path.is_file():
        raise UserError(f"Devign split not found: {path}")
    out = [row["func"] for _, row in read_jsonl_lines(path) if isinstance(row, dict)
           and isinstance(row.get("func"), str) and row["func"].strip()]
    return out[:limit] if limit is not None else out


def build_devign_train_corpus(devign: Path, out: Path, min_tokens: int = 10) -> dict[str, Any]:
    """Devign's train functions (text only, never labels) as a corpus for task-adaptive pre-training.

    Only train text is used, and a train function that is the same as a valid or test function is dropped
    (Devign repeats some functions across splits), so no evaluation function is ever pre-trained on.
    """
    started = time.time()
    with locked(out, "--out"):  # one writer per output folder, as every stage
        col = _Collector(devign_keys(devign, ("valid", "test")), min_tokens)
        for i, code in enumerate(devign_functions(Path(devign), "train")):
            col.add(code, {"path": "train.jsonl", "name": "", "lines": [i + 1, i + 1]})
        col.counts.files = 1
        return _write_corpus(Path(devign) / "train.jsonl", out, devign,
                             {"devign_train": True, "dropped": "functions also in valid or test"},
                             min_tokens, col, started)


def _write_corpus(source: Path, out: Path, devign: Path | None, selection: dict[str, Any], min_tokens: int,
                  col: _Collector, started: float) -> dict[str, Any]:
    counts, kept, rejects = col.counts, col.kept, col.rejects
    if not kept:
        raise UserError(f"no C function kept from {source} ({selection})")
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "functions.jsonl", kept)
    _write_jsonl(out / "rejects.jsonl", rejects)
    manifest = _manifest(source, devign, selection, min_tokens, counts, len(kept), out, started)
    write_json(out / "manifest.json", manifest)  # last: marks the corpus complete
    log.warning("corpus: %d files, %d functions -> %d kept (%d duplicates, %d Devign overlap, %d too short), "
                "%d tokens", counts.files, counts.functions, len(kept), counts.duplicates, counts.devign,
                counts.short, counts.tokens)
    return manifest


def _manifest(source: Path, devign: Path | None, selection: dict[str, Any], min_tokens: int, c: _Counts,
              kept: int, out: Path, started: float) -> dict[str, Any]:
    from streamguard.provenance import sha256_file
    licence = next((p.name for p in (source / n for n in ("COPYING", "LICENSE", "LICENSE.txt")) if p.is_file()),
                   None)
    return {
        "source": str(source.resolve()), "selection": selection,
        "devign": str(Path(devign).resolve()) if devign is not None else None,
        "normalisation": "comments removed, C tokens joined by one space; sha1 of that text is the identity "
                         "(streamguard.data.neardup.text_key)",
        "min_tokens": min_tokens,
        "counts": {"files": c.files, "skipped_files": c.unreadable, "functions": c.functions,
                   "duplicates": c.duplicates, "devign_overlap_dropped": c.devign, "too_short": c.short,
                   "kept": kept, "tokens": c.tokens, "bytes": c.bytes},
        "tokens_counted_as": "C lexical tokens of the normalised text (identifiers, numbers, single symbols)",
        "licence": {"file": licence, "spdx_identifiers": dict(c.spdx.most_common())},
        "functions_sha256": sha256_file(out / "functions.jsonl"), "wall_s": round(time.time() - started, 1),
    }


def read_corpus(corpus: Path) -> tuple[list[str], dict[str, Any]]:
    """The kept functions' code and the manifest of a corpus folder."""
    corpus = Path(corpus)
    if not (corpus / "manifest.json").is_file() or not (corpus / "functions.jsonl").is_file():
        raise UserError(f"{corpus} is not a corpus folder (run `streamguard corpus` first)")
    codes = []
    for lineno, row in read_jsonl_lines(corpus / "functions.jsonl"):
        if not isinstance(row, dict) or not isinstance(row.get("code"), str):
            raise UserError(f"{corpus}/functions.jsonl:{lineno}: not a corpus row")
        codes.append(row["code"])
    return codes, json.loads((corpus / "manifest.json").read_text())
