"""CSV rows of the collector imports, each checked against the file's physical records.

A CSV cell may span lines only inside quotes, so one lost quote makes a row run into the next ones and the
``csv`` module silently returns fewer, merged rows (a 4-row file read as 3, one row carrying the next one's
label). Every row is therefore checked before it is used:

- a line break may only sit in a code column (``func``, ``func_before``, ...); one in any other cell means the
  row spans lines unexpectedly: rejected with its first line;
- a line inside a multi-line code cell, other than the row's last line, that ends the way a row of this file
  ends (``,<label>`` followed by the non-code cells after the label) is where the row really ended and its
  quote was never closed: the lines up to it are rejected as one row (with its first line number) and reading
  starts again on the next line, so the rows that were swallowed are read as themselves.

So every physical record (a line that starts a row) is either written or rejected: counts in = counts out +
rejects. Bytes that are not UTF-8 reject only their row (the file is decoded with ``surrogateescape`` and a row
holding an escaped byte is refused), never the import. The file is streamed: only the current record's lines
are held.
"""
from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamguard.data.records import RecordError
from streamguard.errors import UserError

LABEL_TEXT = ("0", "1", "true", "false")  # how a label cell reads (collect._label turns these into 0/1)
_ESCAPED = re.compile("[\udc80-\udcff]")


class _Feed:
    """The file's physical lines for ``csv.reader``, remembering those of the record being read; lines pushed
    back are read again. The reader pulls a line only when its record needs it, so after a record it stands at
    a record boundary and can go on from pushed-back lines. Streams: one record's lines are held, not the file."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines, self.pending, self.record = lines, [], []

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line = self.pending.pop() if self.pending else next(self.lines)
        self.record.append(line)
        return line

    def take(self) -> list[str]:
        lines, self.record = self.record, []
        return lines


def _ends_a_row(line: str, tail: int, before: bool) -> bool:
    """Whether this line, split at its commas (quotes ignored: the line may hold the unmatched one), ends like a
    row: ``tail`` cells, the first of them a label, after some text when the label has cells ``before`` it."""
    cells = next(csv.reader([line.rstrip("\r\n")], quoting=csv.QUOTE_NONE), [])
    return len(cells) >= tail + before and cells[-tail].strip().lower() in LABEL_TEXT


def _check(cells: list[str], header: list[str], lines: list[str], first: int, code: tuple[str, ...],
           label: str | None) -> tuple[str, int] | None:
    """(reason, index in ``lines`` of the bad row's last line) when the row read from ``lines`` (the first of
    them line ``first`` of the file) is broken."""
    if len(lines) == 1:
        return None
    last = first + len(lines) - 1
    for name, cell in zip(header, cells, strict=False):
        if name not in code and ("\n" in cell or "\r" in cell):
            return (f"row spans lines {first}-{last} and its {name!r} cell holds a line break "
                    "(an unbalanced quote?)", len(lines) - 1)
    if label in header:
        after = header[header.index(label):]
        if not any(name in code for name in after[1:]):  # only then does a row end with its label
            for k, line in enumerate(lines[:-1]):
                if _ends_a_row(line, len(after), header.index(label) > 0):
                    return (f"unbalanced quote: the row starting here ends on line {first + k} but its quote runs "
                            f"on to line {last}", k)
    return None


def csv_rows(path: Path, code: tuple[str, ...], label: str | None) -> Iterator[tuple[int, Any]]:
    """(first line, {column: cell}) or (first line, RecordError) per physical record of the CSV at ``path``;
    ``code`` names the columns that may hold line breaks, ``label`` the label column."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # functions are long; the default 128 KiB limit is not
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        # newline="": lines end at \n, \r\n or \r and keep their ends (csv needs them inside quoted cells)
        feed = _Feed(io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline=""))
        reader = csv.reader(feed)
        header = [h.removeprefix("\ufeff") if i == 0 else h for i, h in enumerate(next(reader, []))]
        if not any(h.strip() for h in header):
            raise UserError(f"{path} has no CSV header")
        start = 1 + len(feed.take())  # line number of the next record's first line
        for cells in reader:
            lines, first = feed.take(), start
            start += len(lines)
            if not cells:
                continue  # a blank line is no record
            broken = _check(cells, header, lines, first, code, label)
            if broken is None:
                yield first, _row(cells, header)
                continue
            yield first, RecordError(broken[0])
            rest = lines[broken[1] + 1:]  # read again: the rows the broken one swallowed
            feed.pending.extend(reversed(rest))
            start -= len(rest)


def _row(cells: list[str], header: list[str]) -> dict[str, str] | RecordError:
    if len(cells) != len(header):
        return RecordError(f"row has {len(cells)} cells, the header {len(header)}")
    for name, cell in zip(header, cells, strict=True):
        if m := _ESCAPED.search(cell):
            return RecordError(f"row is not valid UTF-8 (byte 0x{ord(m.group(0)) - 0xDC00:02x} in {name!r})")
    return dict(zip(header, cells, strict=True))
