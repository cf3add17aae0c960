"""Model kinds by name: each maps to a module with ``train`` and ``predict`` (see docs/contracts.md).

Modules are imported only when a kind is used, so a kind whose module is missing (or whose optional
dependencies are not installed) fails with one clear line instead of breaking every other kind.
Also home of a dataset's identity (tokenizer + node vocabulary), which every run records so that
``streamguard predict`` can refuse data preprocessed with another tokenizer or vocabulary.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from streamguard.errors import UserError

# kind -> (module, config class in streamguard.config); fusion is a kind for prediction, not a fusion base.
KINDS: dict[str, tuple[str, str]] = {
    "gnn": ("streamguard.train.gnn", "GNNConfig"),
    "transformer": ("streamguard.train.transformer", "TransformerConfig"),
    "lexical": ("streamguard.train.lexical", "LexicalConfig"),
    "fusion": ("streamguard.train.fuse", "FuseConfig"),
}
_EXTRA: dict[str, tuple[Any, type]] = {}


def register(kind: str, module: Any, config_cls: type) -> None:
    """Add a kind at run time (plug-ins, tests); ``module`` needs ``train`` and ``predict``."""
    _EXTRA[kind] = (module, config_cls)


def unregister(kind: str) -> None:
    _EXTRA.pop(kind, None)


def known_kinds() -> list[str]:
    return sorted(set(KINDS) | set(_EXTRA))


def get(kind: str) -> ModuleType:
    """The module of ``kind``; a UserError when the kind is unknown or its code is not installed."""
    if kind in _EXTRA:
        return _EXTRA[kind][0]
    if kind not in KINDS:
        raise UserError(f"unknown model kind '{kind}' (known: {', '.join(known_kinds())})")
    name = KINDS[kind][0]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing kind module (or one of its dependencies) is the user's problem; other import
        # errors are bugs and keep their traceback.
        raise UserError(f"model kind '{kind}' is not available: {exc.msg}") from None
    for fn in ("train", "predict"):
        if not callable(getattr(module, fn, None)):
            raise UserError(f"model kind '{kind}' is not available: {name} has no {fn}()")
    return module


def config_class(kind: str) -> type:
    if kind in _EXTRA:
        return _EXTRA[kind][1]
    if kind not in KINDS:
        raise UserError(f"unknown model kind '{kind}' (known: {', '.join(known_kinds())})")
    from streamguard import config
    return getattr(config, KINDS[kind][1])


def data_identity(data_dir: Path) -> dict[str, Any]:
    """What makes two processed datasets compatible for one model: the tokenizer and the node vocabulary."""
    meta_path = Path(data_dir) / "preprocessing_metadata.json"
    vocab_path = Path(data_dir) / "node_vocab.json"
    for p in (meta_path, vocab_path):
        if not p.is_file():
            raise UserError(f"{data_dir} is not a processed dataset: {p.name} is missing")
    try:
        meta = json.loads(meta_path.read_text())
        vocab = json.loads(vocab_path.read_text())
        tok_sha = meta["tokenizer"]["sha256"]
        labels, unk = vocab["labels"], vocab["unk_id"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{data_dir}: cannot read tokenizer sha256 / node vocabulary ({exc!r})") from None
    # Hash the vocabulary's content, not the file, so formatting differences do not matter.
    canon = json.dumps({"labels": labels, "unk_id": unk}, sort_keys=True, ensure_ascii=False)
    return {"tokenizer_sha256": tok_sha, "node_vocab_sha256": hashlib.sha256(canon.encode()).hexdigest()}


def check_compatible(run_identity: dict[str, Any] | None, data_dir: Path, run_dir: Path) -> None:
    """Refuse, in one line, data whose tokenizer or node vocabulary differs from the run's."""
    if not run_identity:
        raise UserError(f"run {run_dir} records no data_identity in exp_config.json; retrain it with this version")
    ident = data_identity(data_dir)
    for key, what in (("tokenizer_sha256", "tokenizer"), ("node_vocab_sha256", "node vocabulary")):
        if ident[key] != run_identity.get(key):
            raise UserError(f"{data_dir} was preprocessed with another {what} than run {run_dir}; "
                            f"preprocess it with --reuse-from the run's training data")
