"""JSON written item by item: a document whose big lists are iterators (a scan report's findings, one per
function of the tree) goes to a file handle without ever being one string or one list in memory.

The bytes are those of ``json.dumps(doc, indent=2, ...)`` of the same document with the iterators as lists:
every leaf (a value holding no iterator, e.g. one finding) is encoded by the same ``json.dumps`` at level 0 and
its line breaks re-indented to its depth, which is exactly what the encoder does when it nests (a JSON string
never holds a raw line break: it is escaped). Only dicts and lists that hold an iterator are walked here, so the
standard encoder does all the escaping and number formatting. Why not ``JSONEncoder.iterencode``: it takes lists,
not iterators, and still needs the whole list to exist.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Encode = Callable[[Any], str]  # a leaf to text, ``json.dumps(value, indent=2, ...)``


def lazy(value: Any) -> bool:
    """An iterator, or a dict or list holding one at any depth: written item by item."""
    if isinstance(value, Iterator):
        return True
    if isinstance(value, dict):
        return any(lazy(v) for v in value.values())
    if isinstance(value, list):
        return any(lazy(v) for v in value)
    return False


def dump(doc: Any, fh: TextIO, encode: Encode) -> None:
    """Write ``doc`` (iterators in it consumed once, one item at a time) as ``encode`` would write it whole."""
    _emit(fh.write, doc, 0, encode)


def materialise(doc: Any) -> Any:
    """``doc`` with every iterator in it turned into a list (for callers that want the whole document)."""
    if isinstance(doc, Iterator):
        return [materialise(v) for v in doc]
    if isinstance(doc, dict) and lazy(doc):
        return {k: materialise(v) for k, v in doc.items()}
    if isinstance(doc, list) and lazy(doc):
        return [materialise(v) for v in doc]
    return doc


def _emit(write: Callable[[str], Any], value: Any, level: int, encode: Encode) -> None:
    pad = "\n" + "  " * level  # indent=2: a nested value's lines start at its depth
    if isinstance(value, dict) and lazy(value):
        write("{")
        for i, (key, item) in enumerate(value.items()):
            write(("," if i else "") + pad + "  " + json.dumps(str(key), ensure_ascii=False) + ": ")
            _emit(write, item, level + 1, encode)
        write(pad + "}")
    elif isinstance(value, Iterator) or (isinstance(value, list) and lazy(value)):
        first = True
        for item in value:
            write(("[" if first else ",") + pad + "  ")
            _emit(write, item, level + 1, encode)
            first = False
        write("[]" if first else pad + "]")
    else:
        write(encode(value).replace("\n", pad))
