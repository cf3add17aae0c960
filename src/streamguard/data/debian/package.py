"""One Debian source package -> its CVE patches' function pairs and context rows, with every patch accounted
for: not a CVE fix, touches no C file, applied, or failed (with the reason).

Only the files a CVE patch touches are followed through the series: each one's text is taken from the upstream
tarball and every series patch touching it is applied in order (patches touching other files cannot change it),
so a 100 MB upstream tarball costs one streaming read and no unpacked tree.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from streamguard.data.debian.diff import Change, PatchError, apply, parse, split_lines
from streamguard.data.debian.fetch import FetchError, fetch
from streamguard.data.debian.index import SourcePackage
from streamguard.data.debian.pairs import file_rows
from streamguard.data.debian.patches import (
    fix_date,
    licence_of,
    parse_changelog,
    parse_series,
    patch_cves,
    upstream_name,
)
from streamguard.data.debian.unpack import Unpacked, UnpackError, read_members

C_FILE = re.compile(r"\.[ch]$")
MANY_FUNCTIONS = 5
_DEBIAN_TAR = re.compile(r"\.debian\.tar\.(xz|gz|bz2|lzma)$")
_ORIG_TAR = re.compile(r"\.orig(?:-([A-Za-z0-9][A-Za-z0-9-]*))?\.tar\.(xz|gz|bz2|lzma)$")


def _lines(data: bytes | None) -> list[str] | None:
    return None if data is None else split_lines(data.decode("latin-1"))


def _bytes(lines: list[str] | None) -> bytes:
    return "".join(lines or []).encode("latin-1")


def _diff_change(before: list[str], after: list[str]) -> Change:
    """Where a file changed, from the two texts (a patch that diffs one file twice)."""
    change = Change()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            change.removed.extend(range(i1 + 1, i2 + 1))
        if tag in ("replace", "insert"):
            change.added.extend(range(j1 + 1, j2 + 1))
            if tag == "insert":
                change.inserted_after.append(i1)
    return change


def _debian_files(pkg: SourcePackage, cache: Path) -> Unpacked:
    deb = [f for f in pkg.files if _DEBIAN_TAR.search(f.name)]
    if not deb:
        raise UnpackError("no debian tarball")
    path = fetch(deb[0].url, deb[0].sha256, deb[0].size, cache, deb[0].fallback)
    want = {"debian/changelog", "debian/copyright"}
    return read_members(path, lambda p: p in want or p.startswith("debian/patches/"), strip_top=False)


def _upstream(pkg: SourcePackage, cache: Path, needed: set[str], into: Unpacked) -> None:
    for f in pkg.files:
        m = _ORIG_TAR.search(f.name)
        if m:
            prefix = f"{m.group(1)}/" if m.group(1) else ""
            path = fetch(f.url, f.sha256, f.size, cache, f.fallback)
            read_members(path, lambda p: p in needed, prefix=prefix, into=into)


def _patch_records(series, deb: Unpacked, changelog) -> list[dict[str, Any]]:
    records = []
    for entry in series:
        raw = deb.files.get(f"debian/patches/{entry.name}")
        rec: dict[str, Any] = {"patch": entry.name, "strip": entry.strip, "cves": [], "found_in": [], "diffs": []}
        if raw is None:
            rec.update(status="failed", reason="patch file missing from debian/patches")
            records.append(rec)
            continue
        text = raw.decode("latin-1")
        rec["cves"], rec["found_in"] = patch_cves(entry.name, text, changelog)
        try:
            rec["diffs"] = parse(text)
        except PatchError as exc:
            rec.update(status="failed", reason=f"unparseable: {exc}")
        rec["c_files"] = sorted({d.path(entry.strip) for d in rec["diffs"] if C_FILE.search(d.path(entry.strip))})
        if not rec["cves"]:
            rec.setdefault("status", "not a CVE fix")
        elif not rec["c_files"]:
            rec.setdefault("status", "skipped")
            rec.setdefault("reason", "touches no C file")
        records.append(rec)
    return records


def _apply_series(records, files: dict[str, list[str] | None], needed: set[str]) -> None:
    """Walk the series over the followed files; a CVE patch gets ``states`` {path: (before, after, change)}.
    A patch that fails leaves the file as it was (later patches still try, exact context decides) and the later
    CVE patches on that file are flagged ``after_a_failed_patch``."""
    failed_on: dict[str, str] = {}
    for rec in records:
        cve = rec["cves"] and rec.get("status") is None
        states: dict[str, tuple[list[str] | None, list[str] | None, Change]] = {}
        for diff in rec["diffs"]:
            path = diff.path(rec["strip"])
            if path not in needed:
                continue
            if path in failed_on and cve:
                rec["after_failed"] = failed_on[path]
            try:
                new, change = apply(files.get(path), diff)
            except PatchError as exc:
                failed_on[path] = rec["patch"]
                if cve and rec.get("status") is None:
                    rec.update(status="failed", reason=f"{path}: {exc}")
                continue
            if path in states:  # the same file twice in one patch: recompute where it changed
                change = _diff_change(states[path][0] or [], new or [])
                states[path] = (states[path][0], new, change)
            else:
                states[path] = (files.get(path), new, change)
            files[path] = new
        if cve and rec.get("status") is None:
            rec["states"] = states


def process_package(pkg: SourcePackage, cache: Path) -> dict[str, Any]:
    """Everything one package yields; never raises for a bad package (its status says what went wrong)."""
    out: dict[str, Any] = {"package": pkg.name, "version": pkg.version, "suite": pkg.suite,
                           "project": upstream_name(pkg.name), "format": pkg.format, "patches": [], "rows": [],
                           "counts": {}, "refused_members": [], "status": "ok"}
    if pkg.format != "3.0 (quilt)":
        out["status"] = f"skipped: format {pkg.format} (only 3.0 (quilt) is read)"
        return out
    try:
        deb = _debian_files(pkg, cache)
        text = {k: deb.files.get(f"debian/{k}", b"").decode("utf-8", "replace") for k in ("changelog", "copyright")}
        changelog = parse_changelog(text["changelog"])
        series = parse_series(deb.files.get("debian/patches/series", b"").decode("utf-8", "replace"))
        records = _patch_records(series, deb, changelog)
        needed = {p for r in records if r["cves"] and r.get("status") is None for p in r["c_files"]}
        upstream = Unpacked()
        if needed:
            _upstream(pkg, cache, needed, upstream)
        out["refused_members"] = deb.refused + upstream.refused
        _apply_series(records, {p: _lines(upstream.files.get(p)) for p in needed}, needed)
    except (FetchError, UnpackError) as exc:
        out["status"] = f"failed: {exc}"
        return out
    counts: Counter = Counter()
    for rec in records:
        out["patches"].append(_patch_rows(rec, pkg, out, changelog, text["copyright"], counts))
    out["counts"] = dict(sorted(counts.items()))
    return out


def _patch_rows(rec, pkg: SourcePackage, out: dict, changelog, copyright_text: str, counts: Counter) -> dict:
    summary = {k: rec.get(k) for k in ("patch", "cves", "found_in", "status", "reason")}
    if "states" not in rec:
        return summary
    base = {"suite": pkg.suite, "package": pkg.name, "version": pkg.version, "project": out["project"],
            "commit_id": f"{pkg.name}_{pkg.version}:{rec['patch']}", "cves": rec["cves"], "patch": rec["patch"],
            "found_in": rec["found_in"], "fix_date": fix_date(rec["patch"], rec["cves"], changelog)}
    pairs, context, changed, inside, local = [], [], 0, 0, Counter()
    for path in sorted(rec["states"]):
        before, after, change = rec["states"][path]
        if not C_FILE.search(path):
            continue
        fields = {**base, "licence": licence_of(copyright_text, path)}
        p, c, cov = file_rows(_bytes(before), _bytes(after), change, path, fields, local)
        pairs += p
        context += c
        changed += cov["changed_lines"]
        inside += cov["inside_paired_functions"]
    n_pairs = len(pairs) // 2
    flags = (["many_functions"] if n_pairs > MANY_FUNCTIONS else []) + \
        (["only_adds_functions"] if not n_pairs and local["functions_added"] else []) + \
        (["after_a_failed_patch"] if rec.get("after_failed") else [])
    counts.update(local)
    for row in pairs + context:
        row["flags"] = flags
    out["rows"] += pairs + context
    summary.update(status="applied", pairs=n_pairs, context=len(context), fix_date=base["fix_date"], flags=flags,
                   changed_lines=changed, changed_lines_inside_pairs=inside)
    return summary
