"""Typed configuration: one dataclass per stage, loaded from YAML plus ``key=value`` overrides.

Defaults are the specification's hyperparameters; every stage saves its resolved config beside its output.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from streamguard.errors import UserError

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or say clearly why not."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (list, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        return [_coerce(v, args[0] if args else str, key) for v in items if v != ""]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UserError(f"config key '{key}': expected true/false, got {value!r}")
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{key}': expected {annotation.__name__}, got {value!r}") from None
    return value


def _set(cfg: Any, key: str, value: Any) -> None:
    hints = typing.get_type_hints(type(cfg))
    if key not in hints:
        known = ", ".join(sorted(hints))
        raise UserError(f"unknown config key '{key}' for {type(cfg).__name__} (known: {known})")
    setattr(cfg, key, _coerce(value, hints[key], key))


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                extra: list[str] | None = None) -> T:
    """Build ``cls`` from its defaults, then a YAML file, then explicit overrides, then ``key=value`` strings."""
    cfg = cls()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise UserError(f"config file {p} must hold a mapping of keys to values")
        for key, value in data.items():
            _set(cfg, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(cfg, key, value)
    for item in extra or []:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like key=value")
        key, value = item.split("=", 1)
        _set(cfg, key.strip(), value.strip())
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")
