"""One patched C file -> rows: every function the patch changes as a before (1) / after (0) pair, the file's
other functions as label-0 ``context`` rows, with the honest-label counts (equal after normalisation, added,
removed functions) and the share of the patch's changed lines that fall inside paired functions.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from streamguard.data.debian.diff import Change
from streamguard.data.extract import CFunction, extract_functions
from streamguard.data.neardup import text_key


def _touched_before(fn: CFunction, change: Change) -> list[int]:
    """Old-file lines of ``fn`` that the patch removed or inserted text after (inside the body)."""
    lines = [n for n in change.removed if fn.start_line <= n <= fn.end_line]
    lines += [n for n in change.inserted_after if fn.start_line <= n < fn.end_line]
    return sorted(set(lines))


def _touched_after(fn: CFunction, change: Change) -> list[int]:
    return [n for n in change.added if fn.start_line <= n <= fn.end_line]


def _by_name(funcs: list[CFunction]) -> dict[tuple[str, int], CFunction]:
    """Functions keyed by (name, occurrence): two definitions of one name (#ifdef variants) pair in order."""
    seen: Counter = Counter()
    out = {}
    for fn in funcs:
        out[(fn.name, seen[fn.name])] = fn
        seen[fn.name] += 1
    return out


def file_rows(before: bytes, after: bytes, change: Change, path: str, base: dict[str, Any],
              counts: Counter) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """(pair rows, context rows, line coverage) of one file changed by one patch; ``base`` holds the fields
    shared by all rows of the patch (package, version, suite, project, CVEs, patch, date, licence)."""
    old = _by_name(extract_functions(before, path))
    new = _by_name(extract_functions(after, path))
    touched_old = {k: t for k, fn in old.items() if (t := _touched_before(fn, change))}
    touched_new = {k: t for k, fn in new.items() if (t := _touched_after(fn, change))}
    pairs: list[dict[str, Any]] = []
    covered_removed: set[int] = set()
    covered_added: set[int] = set()
    def order(k: tuple[str, int]) -> tuple[int, int]:
        return (0, old[k].start_byte) if k in old else (1, new[k].start_byte)
    for key in sorted(set(touched_old) | set(touched_new), key=order):
        a, b = old.get(key), new.get(key)
        if a is None:
            counts["functions_added"] += 1
            continue
        if b is None:
            counts["functions_removed"] += 1
            continue
        if text_key(a.code) == text_key(b.code):
            counts["dropped_equal_after_normalisation"] += 1
            continue
        pair_id = f"{base['suite']}/{base['package']}/{base['patch']}/{path}:{a.name}"
        if key[1]:
            pair_id += f"#{key[1]}"
        for fn, label, kind, lines in ((a, 1, "before", _touched_before(a, change)),
                                       (b, 0, "after", _touched_after(b, change))):
            pairs.append(_row(fn, label, kind, lines, path, base, pair_id))
        covered_removed.update(n for n in change.removed if a.start_line <= n <= a.end_line)
        covered_added.update(n for n in change.added if b.start_line <= n <= b.end_line)
    context = [_row(fn, 0, "context", [], path, base, "") for k, fn in old.items()
               if k not in touched_old and k not in touched_new]
    coverage = {"changed_lines": len(change.removed) + len(change.added),
                "inside_paired_functions": len(covered_removed) + len(covered_added)}
    return pairs, context, coverage


def _row(fn: CFunction, label: int, kind: str, lines: list[int], path: str, base: dict[str, Any],
         pair_id: str) -> dict[str, Any]:
    return {"idx": f"debian:{base['suite']}/{base['package']}/{base['patch']}/{path}:{fn.name}:{fn.start_line}"
                   f":{kind}",
            "func": fn.code, "target": label, "project": base["project"], "commit_id": base["commit_id"],
            "source": "debian", "pair_id": pair_id, "cve": ",".join(base["cves"]), "cwe": "", "orig_idx": "",
            "kind": kind, "package": base["package"], "version": base["version"], "suite": base["suite"],
            "file": path, "function": fn.name, "start_line": fn.start_line, "end_line": fn.end_line,
            "changed_lines": lines, "patch": base["patch"], "cve_found_in": base["found_in"],
            "fix_date": base["fix_date"], "licence": base["licence"], "flags": []}

