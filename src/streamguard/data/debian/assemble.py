"""Package results -> ``pool.jsonl`` (a collector pool ``data merge`` reads), ``rejects.jsonl``, ``manifest.json``.

- A fix shipped in two suites gives the same pair twice: the first (suite order, then package) is kept.
- Context rows: one per function text and project, never a text that is also a paired function's.
- Held-out groups, recorded per row in ``holdout`` and honoured by ``data merge``: ``package`` for whole
  upstream projects drawn by a stable hash (about 20%; FFmpeg, QEMU and libav never, Devign holds them), else
  ``time`` for fixes that entered Debian on or after 2025-01-01; '' rows may be trained on.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from streamguard.data.debian.patches import DEVIGN_PROJECTS, upstream_name
from streamguard.data.neardup import text_key
from streamguard.data.rawdir import POOL, RawDir
from streamguard.data.records import write_jsonl
from streamguard.provenance import sha256_file

# Test code changed by a fix is not the vulnerable code: its rows are dropped and counted.
TEST_CODE = re.compile(r"(^|/)(tests?|testsuite|unittests?|fuzz|fuzzing)/|(^|/)test[_-][^/]*$|_tests?\.c$")
HOLDOUT_SHARE = 0.2
TIME_CUTOFF = "2025-01-01"


def held_out_project(project: str) -> bool:
    """Stable across runs and machines: the project's name hashed, not a random draw."""
    if project in DEVIGN_PROJECTS:
        return False
    h = hashlib.sha256(f"streamguard-debian-holdout:{project}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < HOLDOUT_SHARE


def holdout_of(row: dict[str, Any]) -> str:
    if held_out_project(row["project"]):
        return "package"
    return "time" if row.get("fix_date") and row["fix_date"] >= TIME_CUTOFF else ""


def _dedup(results: list[dict[str, Any]], rejects: list[dict], dropped: Counter) -> list[dict[str, Any]]:
    pair_rows: dict[str, list[dict]] = defaultdict(list)
    for res in results:
        for row in res["rows"]:
            if row["pair_id"]:
                pair_rows[row["pair_id"]].append(row)
    seen_pairs: dict[tuple[str, str], str] = {}
    paired_texts: set[str] = set()
    seen_ids: set[str] = set()
    kept: list[dict[str, Any]] = []
    for res in results:
        for row in res["rows"]:
            if not row["pair_id"] or row["kind"] != "before" or row["pair_id"] in seen_ids:
                continue
            seen_ids.add(row["pair_id"])
            rows = pair_rows[row["pair_id"]]
            why = "pair in test code" if TEST_CODE.search(row["file"]) else \
                "pair id not unique" if len(rows) != 2 else ""
            key = (text_key(rows[0]["func"]), text_key(rows[-1]["func"]))
            if not why and key in seen_pairs:
                why = "pair equal to an earlier pair"
                rejects.append({"kind": "duplicate pair", "pair_id": row["pair_id"], "match": seen_pairs[key]})
            if why:
                dropped[why] += len(rows)
                continue
            seen_pairs[key] = row["pair_id"]
            paired_texts.update(key)
            kept += rows
    seen_context: set[tuple[str, str]] = set()
    for res in results:
        for row in res["rows"]:
            if row["kind"] != "context":
                continue
            key = (row["project"], text_key(row["func"]))
            why = "context in test code" if TEST_CODE.search(row["file"]) else \
                "context equal to a paired function" if key[1] in paired_texts else \
                "context seen before in the project" if key in seen_context else ""
            if why:
                dropped[why] += 1
                continue
            seen_context.add(key)
            kept.append(row)
    return kept


def _patch_counts(results: list[dict[str, Any]], rejects: list[dict]) -> dict[str, Any]:
    c: Counter = Counter()
    for res in results:
        for p in res["patches"]:
            if not p["cves"]:
                c["not_cve"] += 1
                continue
            c["found"] += 1
            status = p["status"] if p["status"] in ("applied", "failed", "skipped") else "skipped"
            c[status] += 1
            if status != "applied":
                rejects.append({"kind": f"CVE patch {status}", "suite": res["suite"], "package": res["package"],
                                "version": res["version"], "patch": p["patch"], "cves": p["cves"],
                                "reason": p.get("reason") or ""})
    return {k: c[k] for k in ("found", "applied", "failed", "skipped", "not_cve")}


def assemble(results: list[dict[str, Any]], out: Path, suites: list[str], dates: dict[str, str],
             pending: int = 0) -> dict[str, Any]:
    """Write the pool, rejects and manifest of ``results`` (in the run's fixed order) into ``out``."""
    rejects: list[dict] = []
    counts: Counter = Counter()
    for res in results:
        if res["status"] != "ok":
            rejects.append({"kind": "package", "suite": res["suite"], "package": res["package"],
                            "version": res["version"], "reason": res["status"]})
        for name, why in res["refused_members"]:
            rejects.append({"kind": "archive member refused", "package": res["package"], "member": name,
                            "reason": why})
        counts.update(res["counts"])
        for row in res["rows"]:  # the name rules may have improved since the package was read
            row["project"] = upstream_name(row["package"])
    extracted = sum(len(r["rows"]) for r in results)
    dropped: Counter = Counter()
    rows = _dedup(results, rejects, dropped)
    for row in rows:
        row["holdout"] = holdout_of(row)
    patches = _patch_counts(results, rejects)
    out.mkdir(parents=True, exist_ok=True)
    pool, rejected = RawDir(out).split_path(POOL), RawDir(out).rejects_path
    write_jsonl(pool, rows)
    write_jsonl(rejected, rejects)
    pairs = [r for r in rows if r["kind"] == "before"]
    row_drops = sum(dropped.values())
    assert extracted == len(rows) + row_drops, "every extracted row is written or counted as dropped"
    manifest = {
        "source": "debian", "source_form": "debian security patches", "suites": {s: {"release_date": dates.get(s, "")}
                                                                               for s in suites},
        "counts": {
            "packages": {"scanned": len(results), "ok": sum(r["status"] == "ok" for r in results),
                         "skipped": sum(r["status"].startswith("skipped") for r in results),
                         "failed": sum(r["status"].startswith("failed") for r in results),
                         "with_cve_pairs": len({(r["suite"], r["package"]) for r in pairs}), "pending": pending},
            "cve_patches": patches, "functions": dict(sorted(counts.items())),
            "rows_extracted": extracted, "rows_written": len(rows), "rows_dropped": row_drops,
            "rows_dropped_by_reason": dict(sorted(dropped.items())),
            "pairs": len(pairs), "context_rows": sum(r["kind"] == "context" for r in rows),
            "projects_with_pairs": len({r["project"] for r in pairs}),
            "holdout": dict(sorted(Counter(r["holdout"] or "train" for r in rows).items())),
            "flags": dict(sorted(Counter(f for r in pairs for f in r["flags"]).items()))},
        "held_out_projects": sorted({r["project"] for r in rows if r["holdout"] == "package"}),
        "packages": [{"suite": r["suite"], "package": r["package"], "version": r["version"], "status": r["status"]}
                     for r in results],
        "sha256": {pool.name: sha256_file(pool), rejected.name: sha256_file(rejected)},
    }
    write_json(RawDir(out).manifest_path, manifest)
    return manifest


def write_json(path: Path, obj: Any) -> None:
    import json
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
