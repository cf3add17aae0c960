"""The one owner of a processed dataset's files: splits, metadata, tokenizer, node vocabulary, identity and
the raw functions behind each record. Every stage that reads a processed directory goes through here, so
the rules (where the raw split lives, what makes two datasets compatible) exist once.

Layout (written by ``streamguard preprocess``)::

    DIR/{train,valid,test}.jsonl       records (docs/contracts.md)
    DIR/preprocessing_metadata.json    counts, tokenizer record, graph statistics, raw_dir, config
    DIR/node_vocab.json                {"labels": [...], "unk_id": N}
    DIR/tokenizer/                     the fast tokenizer (tokenizer.json)
    DIR/rejects.jsonl                  raw rows that made no record, with the reason
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from streamguard.data.records import SPLITS, read_jsonl_lines
from streamguard.errors import UserError
from streamguard.provenance import sha256_file

META_FILE = "preprocessing_metadata.json"
VOCAB_FILE = "node_vocab.json"
REJECTS_FILE = "rejects.jsonl"
TOKENIZER_DIR = "tokenizer"


class ProcessedDir:
    """A processed dataset directory. Reads lazily and caches; raises UserError naming the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ProcessedDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # --- files -------------------------------------------------------------------------------------------
    def split_path(self, split: str) -> Path:
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return self.path / f"{split}.jsonl"

    def has_split(self, split: str) -> bool:
        return self.split_path(split).is_file()

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def vocab_path(self) -> Path:
        return self.path / VOCAB_FILE

    @property
    def rejects_path(self) -> Path:
        return self.path / REJECTS_FILE

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / TOKENIZER_DIR

    def input_files(self) -> list[Path]:
        """Every file a model trained on this dataset depends on (for checksums)."""
        files = [self.split_path(s) for s in SPLITS] + [self.meta_path, self.vocab_path]
        return [p for p in files if p.is_file()]

    def input_hashes(self) -> dict[str, str]:
        return {p.name: sha256_file(p) for p in self.input_files()}

    def raw_hashes(self) -> dict[str, str]:
        """sha256 of the raw split files this dataset was preprocessed from (``{}`` if not recorded): two datasets
        with the same raw splits hold the same functions under the same ids, whatever their tokenizers."""
        raw = self.metadata.get("inputs_sha256") if self.meta_path.is_file() else None
        return {s: h for s, h in raw.items() if isinstance(h, str)} if isinstance(raw, dict) else {}

    # --- metadata ----------------------------------------------------------------------------------------
    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        return _read_json(self.meta_path, f"{self.path} is not a processed dataset: {META_FILE} is missing")

    @functools.cached_property
    def node_vocab(self) -> dict[str, Any]:
        vocab = _read_json(self.vocab_path, f"{self.path} is not a processed dataset: {VOCAB_FILE} is missing")
        if not isinstance(vocab.get("labels"), list) or not isinstance(vocab.get("unk_id"), int):
            raise UserError(f"{self.vocab_path}: needs a 'labels' list and an integer 'unk_id'")
        return vocab

    @property
    def tokenizer_meta(self) -> dict[str, Any]:
        """The tokenizer record (name, sha256, vocab_size, pad_id, ...)."""
        tok = self.metadata.get("tokenizer")
        try:
            int(tok["pad_id"]), int(tok["vocab_size"]), str(tok["sha256"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{self.meta_path}: cannot read the tokenizer's pad_id, vocab_size and sha256 "
                            f"({exc!r})") from None
        return tok

    def graph_stats(self) -> dict[str, Any]:
        stats = self.metadata.get("graph_stats")
        if not isinstance(stats, dict) or "p95_nodes" not in stats:
            raise UserError(f"{self.meta_path} has no graph_stats.p95_nodes: preprocess the data again")
        return stats

    def identity(self) -> dict[str, str]:
        """What makes two processed datasets compatible for one model: the tokenizer and the node vocabulary.
        The vocabulary's content is hashed, not its file, so formatting differences do not matter."""
        vocab = self.node_vocab
        canon = json.dumps({"labels": vocab["labels"], "unk_id": vocab["unk_id"]}, sort_keys=True,
                           ensure_ascii=False)
        return {"tokenizer_sha256": self.tokenizer_meta["sha256"],
                "node_vocab_sha256": hashlib.sha256(canon.encode()).hexdigest()}

    def check_compatible(self, run_identity: dict[str, Any] | None, run_dir: Path) -> None:
        """Refuse, in one line, data whose tokenizer or node vocabulary differs from the run's."""
        if not run_identity:
            raise UserError(f"run {run_dir} records no data_identity in its run record; retrain it with this version")
        ident = self.identity()
        for key, what in (("tokenizer_sha256", "tokenizer"), ("node_vocab_sha256", "node vocabulary")):
            if ident[key] != run_identity.get(key):
                raise UserError(f"{self.path} was preprocessed with another {what} than run {run_dir}; "
                                f"preprocess it with --reuse-from the run's training data")

    # --- records -----------------------------------------------------------------------------------------
    def read_split(self, split: str, ids: set[str] | None = None,
                   keep: tuple[str, ...] = ("id", "label", "code", "metadata")) -> list[dict[str, Any]]:
        """Records of one split with only the ``keep`` fields (the token and graph fields of a full split take
        gigabytes as Python objects), restricted to ``ids`` when given; every id must be found."""
        path = self.split_path(split)
        if not path.is_file():
            raise UserError(f"processed split not found: {path}")
        rows = []
        for lineno, obj in read_jsonl_lines(path):
            if not isinstance(obj, dict) or "id" not in obj or obj.get("label") not in (0, 1):
                raise UserError(f"{path}:{lineno}: not a processed record (needs 'id' and a 0/1 'label')")
            if ids is None or obj["id"] in ids:
                rows.append({k: obj.get(k) for k in keep})
        if ids is not None and len(rows) != len(ids):
            missing = sorted(ids - {r["id"] for r in rows})
            raise UserError(f"{len(missing)} requested id(s) are not in {path}, e.g. {missing[0]}")
        return rows

    @functools.cached_property
    def raw_dir(self) -> Path:
        """The raw (CodeXGLUE-format) directory this dataset was preprocessed from. ``preprocess`` records it
        as an absolute path; a relative one (older data, hand-made) is taken relative to the processed dir."""
        raw = self.metadata.get("raw_dir")
        if not raw:
            raise UserError(f"{self.meta_path} names no raw_dir: the full functions cannot be found")
        path = Path(raw) if Path(raw).is_absolute() else self.path / raw
        if not path.is_dir():
            raise UserError(f"raw dir {path} named in {self.meta_path} is gone; import the data again or use the "
                            "processed (trimmed) code")
        return path

    def raw_functions(self, split: str, records: list[dict[str, Any]]) -> list[str]:
        """The whole raw function behind each record (its ``metadata.row`` in the raw split)."""
        path = self.raw_dir / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(f"raw split file not found: {path}")
        need = {_row_of(rec, path) for rec in records}
        found: dict[int, str] = {}
        with open(path, "rb") as fh:
            for row, line in enumerate(fh):
                if row in need:
                    try:
                        found[row] = json.loads(line)["func"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise UserError(f"{path}:{row + 1}: not a raw record with 'func'") from None
        absent = sorted(need - found.keys())
        if absent:
            raise UserError(f"{path} has no row {absent[0]} (named by the processed records)")
        return [found[_row_of(rec, path)] for rec in records]


def _row_of(rec: dict[str, Any], path: Path) -> int:
    row = (rec.get("metadata") or {}).get("row")
    if not isinstance(row, int) or row < 0:
        raise UserError(f"record {rec.get('id')} names no raw row, so {path} cannot be matched to it")
    return row


def _read_json(path: Path, missing: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(missing)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object")
    return data
