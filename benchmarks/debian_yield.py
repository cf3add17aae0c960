"""Yield of ``streamguard data collect debian`` (issue 24): what the archive held and what came out.

Reads a collection folder (``work/`` package results, ``pool.jsonl``, ``manifest.json``) and writes a JSON with
the yield by suite and by year, the failure reasons, label sanity, held-out sizes and the overlap with Devign
(exact token-text duplicates and MinHash near duplicates at Jaccard >= 0.8, by Devign split) and with
../shared/data/collected (exact).

    python benchmarks/debian_yield.py --data DIR --devign ../shared/data/devign --collected ../shared/data/collected \
        --json benchmarks/results/debian_yield.json
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

from streamguard.data.neardup import near_pairs, shingle_hashes, text_key


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _results(data: Path) -> list[dict]:
    return [json.load(gzip.open(p)) for p in sorted((data / "work").glob("*/*.json.gz"))]


def _suite_table(results: list[dict], pairs: list[dict]) -> dict[str, dict]:
    table: dict[str, Counter] = defaultdict(Counter)
    projects: dict[str, set] = defaultdict(set)
    for res in results:
        t = table[res["suite"]]
        t["packages_scanned"] += 1
        t["packages_unavailable_404"] += "404" in res["status"]
        t["packages_other_failure_or_skip"] += res["status"] != "ok" and "404" not in res["status"]
        cve = [p for p in res["patches"] if p["cves"]]
        t["packages_with_cve_patch"] += bool(cve)
        for p in cve:
            t["cve_patches_found"] += 1
            t[f"cve_patches_{p['status'] if p['status'] in ('applied', 'failed') else 'skipped'}"] += 1
    for r in pairs:
        table[r["suite"]]["pairs"] += 1
        projects[r["suite"]].add(r["project"])
    return {s: {**dict(c), "projects_with_pairs": len(projects[s])} for s, c in table.items()}


def _year_table(results: list[dict], pairs: list[dict]) -> dict[str, dict]:
    table: dict[str, Counter] = defaultdict(Counter)
    projects: dict[str, set] = defaultdict(set)
    for res in results:
        for p in res["patches"]:
            if p["cves"] and p["status"] == "applied":
                table[(p.get("fix_date") or "unknown")[:4]]["cve_patches_applied"] += 1
    for r in pairs:
        year = (r["fix_date"] or "unknown")[:4]
        table[year]["pairs"] += 1
        projects[year].add(r["project"])
    return {y: {**dict(table[y]), "projects_with_pairs": len(projects[y])} for y in sorted(table)}


def _sanity(results: list[dict], pool: list[dict]) -> dict:
    by_pair: dict[str, list[dict]] = defaultdict(list)
    for r in pool:
        if r["pair_id"]:
            by_pair[r["pair_id"]].append(r)
    inside = sum(all(x["changed_lines"] and all(x["start_line"] <= n <= x["end_line"] for n in x["changed_lines"])
                     for x in rows if x["kind"] == "before" or x["changed_lines"]) for rows in by_pair.values())
    changed = sum(p.get("changed_lines", 0) for res in results for p in res["patches"])
    covered = sum(p.get("changed_lines_inside_pairs", 0) for res in results for p in res["patches"])
    return {"pairs": len(by_pair), "pairs_whose_changed_lines_lie_inside_the_paired_function": inside,
            "share": round(inside / max(1, len(by_pair)), 4),
            "patch_lines_changed_in_c_files": changed, "of_which_inside_paired_functions": covered,
            "share_of_patch_lines_inside_paired_functions": round(covered / max(1, changed), 4)}


def _overlap(pool: list[dict], devign: Path, collected: Path | None) -> dict:
    dev = {s: _rows(devign / f"{s}.jsonl") for s in ("train", "valid", "test")}
    keys = {s: {text_key(r["func"]) for r in rows} for s, rows in dev.items()}
    out: dict = {"exact": {s: {"pool_rows": sum(text_key(r["func"]) in k for r in pool),
                                "pairs_with_a_row": len({r["pair_id"] for r in pool if r["pair_id"]
                                                         and text_key(r["func"]) in k})}
                           for s, k in keys.items()}}
    flat = [(s, r["func"]) for s, rows in dev.items() for r in rows]
    pool = [r for r in pool if r["kind"] != "context"]  # near duplicates: the pairs (context rows: exact only)
    shingles = [shingle_hashes(f) for _, f in flat] + [shingle_hashes(r["func"]) for r in pool]
    near: dict[str, set] = defaultdict(set)
    for i, j, _ in near_pairs(shingles, 0.8):
        if i < len(flat) <= j:
            near[flat[i][0]].add(j - len(flat))
    out["near_jaccard_0.8"] = {s: {"pair_rows": len(near[s]),
                                   "projects": sorted({pool[k]["project"] for k in near[s]})[:20]} for s in dev}
    if collected and collected.is_dir():
        ck = {text_key(r["func"]) for p in collected.rglob("*.jsonl") for r in _rows(p) if "func" in r}
        out["exact_shared_collected"] = sum(text_key(r["func"]) in ck for r in pool)
    return out


def _table(rows: dict[str, dict], cols: list[str], first: str) -> list[str]:
    out = [f"| {first} | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
           "|---" * (len(cols) + 1) + "|"]
    for key, row in rows.items():
        out.append(f"| {key} | " + " | ".join(str(row.get(c, 0)) for c in cols) + " |")
    return out


def markdown(report: dict) -> str:
    """The yield tables (the prose around them is written by hand in the results file)."""
    suite_cols = ["packages_scanned", "packages_unavailable_404", "packages_with_cve_patch", "cve_patches_found",
                  "cve_patches_applied", "cve_patches_failed", "cve_patches_skipped", "pairs", "projects_with_pairs"]
    lines = ["### By suite", "", *_table(report["by_suite"], suite_cols, "suite"), "", "### By year of the fix",
             "", *_table(report["by_year"], ["cve_patches_applied", "pairs", "projects_with_pairs"], "year"), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--devign", type=Path, required=True)
    ap.add_argument("--collected", type=Path, default=None)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--md", type=Path, default=None, help="also write the yield tables as markdown here")
    args = ap.parse_args()
    results, pool = _results(args.data), _rows(args.data / "pool.jsonl")
    manifest = json.loads((args.data / "manifest.json").read_text())
    pairs = [r for r in pool if r["kind"] == "before"]
    reasons = Counter((p.get("reason") or "")[:60].split(":")[-1].strip() or p["status"]
                      for res in results for p in res["patches"] if p["cves"] and p["status"] == "failed")
    report = {"counts": manifest["counts"], "by_suite": _suite_table(results, pairs),
              "by_year": _year_table(results, pairs), "failure_reasons": dict(reasons.most_common(12)),
              "label_sanity": _sanity(results, pool), "overlap": _overlap(pool, args.devign, args.collected),
              "top_projects": Counter(r["project"] for r in pairs).most_common(25)}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        args.md.write_text(markdown(report))
    print(json.dumps({k: report[k] for k in ("by_suite", "label_sanity")}, indent=1))


if __name__ == "__main__":
    main()
