"""``streamguard data merge``: one raw dataset (what ``preprocess --raw`` reads) from a base and collector imports.

Rules (docs/data-collection.md):
- The base keeps its train/valid/test; added rows go to train, except the CVE/pair groups drawn for
  ``--holdout SOURCE=SHARE`` and the groups with a row whose ``holdout`` field is set (a source's own held-out
  sets, e.g. the Debian collection's packages and time split), written to ``OUT/heldout/test.jsonl`` (never
  trained on; such a group touching the base is dropped). A group is a connected set
  of rows sharing a pair id or a CVE: it is never split. Only groups with no row equal or near-equal to a base row
  can be held out (else a phase-1 model trained on the base would have seen it).
- Evaluation rows = base valid + base test + held-out rows. A train row (base or added) equal (token text) or
  near-equal (shingle Jaccard >= threshold on the raw tokens or on the normalised ones, where identifiers and
  literals are abstracted: ``neardup.normalised_tokens``) to an evaluation row is dropped: the leakage guarantee.
- Exact duplicates among train rows: the first is kept (base first, then the ``--add`` order). Conflicting labels:
  a base row's label wins (its group's added rows are dropped, base rows are never touched); among added rows the
  majority label is kept once, a tie drops the whole group. Counted per source.
- Near duplicates among train rows: an added row near-equal to a kept row of the same label from another group is
  dropped; near pairs with different labels are kept (before/after versions are the signal) and counted.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from streamguard.data.labels import monitor
from streamguard.data.neardup import DEFAULT_THRESHOLD, near_equal_pairs, text_key
from streamguard.data.rawdir import POOL, RawDir
from streamguard.data.records import SPLITS, read_jsonl, write_jsonl
from streamguard.data.stats import audit
from streamguard.errors import UserError

__all__ = ["DEFAULT_THRESHOLD", "merge"]
HELDOUT = "heldout"  # OUT/heldout/: a raw dataset of its own (test split only)


def _load(base: Path, adds: list[Path]) -> list[dict[str, Any]]:
    """Every input row with ``uid``, ``source``, ``origin`` (base split or 'pool') and ``order``."""
    rows: list[dict[str, Any]] = []
    base_dir = RawDir(base)
    name = base_dir.source_name("base")
    for split in SPLITS:
        if not base_dir.split_path(split).is_file():
            raise UserError(f"--base {base} has no {split}.jsonl (import it first: data import codexglue)")
        for i, r in enumerate(base_dir.read_split(split)):
            rows.append({**r, "source": name, "uid": f"{name}:{split}:{i}", "origin": split, "is_base": True})
    for folder in adds:
        src = RawDir(folder).source_name(folder.name)
        files = RawDir(folder).row_files()
        if not files:
            raise UserError(f"--add {folder} holds neither pool.jsonl nor train/valid/test.jsonl")
        for f in files:
            for i, r in enumerate(read_jsonl(f)):
                uid = str(r["idx"]) if f.stem == POOL else f"{src}:{f.stem}:{i}"
                rows.append({**r, "source": r.get("source") or src, "uid": uid, "origin": "pool",
                             "is_base": False})
    dup = [u for u, n in Counter(r["uid"] for r in rows).items() if n > 1]
    if dup:
        raise UserError(f"row id {dup[0]!r} appears twice: give each import its own --name")
    for k, r in enumerate(rows):
        r["order"] = k
    return rows


def _groups(rows: list[dict[str, Any]]) -> list[int]:
    """Union-find over shared pair ids (within a source) and CVEs (across sources): a group id per row."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    first: dict[str, int] = {}
    for i, r in enumerate(rows):
        keys = [f"pair:{r['source']}:{r['pair_id']}" if r.get("pair_id") else "", f"cve:{r.get('cve') or ''}"]
        for key in keys:
            if key and key != "cve:":
                j = first.setdefault(key, i)
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(rows))]


def _parse_holdout(spec: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        src, _, share = part.partition("=")
        try:
            out[src] = float(share)
        except ValueError:
            raise UserError(f"--holdout {part!r}: expected SOURCE=SHARE, e.g. bigvul=0.3") from None
        if not 0 <= out[src] < 1:
            raise UserError(f"--holdout {part!r}: share must be in [0, 1)")
    return out


def _draw(group: int, rows: list[dict[str, Any]], seed: int) -> float:
    """A uniform number per group from its first row's id, stable across runs and machines."""
    h = hashlib.sha1(f"{seed}:{rows[group]['uid']}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _assign_holdout(rows, groups, keys, near, holdout: dict[str, float], seed: int) -> None:
    base_keys = {keys[i] for i, r in enumerate(rows) if r["is_base"]}
    touches_base = {groups[i] for i, r in enumerate(rows) if not r["is_base"] and keys[i] in base_keys}
    for i, j, _ in near:
        if rows[i]["is_base"] != rows[j]["is_base"]:
            touches_base.add(groups[j] if rows[i]["is_base"] else groups[i])
    share: dict[int, float] = {}
    for i, r in enumerate(rows):  # a group spanning sources is held out at the smallest of their shares
        share[groups[i]] = min(share.get(groups[i], 1.0), 0.0 if r["is_base"] else holdout.get(r["source"], 0.0))
    fixed = {groups[i] for i, r in enumerate(rows) if not r["is_base"] and r.get("holdout")}  # the source's own
    for i, r in enumerate(rows):
        held = not r["is_base"] and groups[i] not in touches_base and (
            groups[i] in fixed or _draw(groups[i], rows, seed) < share[groups[i]])
        r["split"] = "heldout" if held else (r["origin"] if r["is_base"] else "train")
        if not r["is_base"] and groups[i] in fixed and groups[i] in touches_base:  # never trained on either
            r["split"] = "heldout"
            _drop(r, "held-out group equal or near-equal to a base row")


def _drop(r: dict[str, Any], reason: str, match: dict[str, Any] | None = None, jac: float | None = None) -> None:
    r["dropped"] = reason
    r["match"] = match["uid"] if match else None
    r["match_split"] = match["split"] if match else None
    r["jaccard"] = jac


def _leakage(rows, keys, near) -> None:
    """Drop every train row equal or near-equal to an evaluation row (base valid/test, held out)."""
    evaluation = {keys[i]: r for i, r in enumerate(rows) if r["split"] != "train"}
    for i, r in enumerate(rows):
        if r["split"] == "train" and keys[i] in evaluation:
            _drop(r, "equal to an evaluation function", evaluation[keys[i]], 1.0)
    for i, j, jac in near:
        a, b = rows[i], rows[j]
        for t, e in ((a, b), (b, a)):
            if t["split"] == "train" and e["split"] != "train" and "dropped" not in t:
                _drop(t, "near-equal to an evaluation function", e, jac)


def _exact(rows, keys, counts: Counter) -> None:
    """Exact duplicates and label conflicts among the train rows that are left (see the module's rules)."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r["split"] == "train" and "dropped" not in r:
            by_key[keys[i]].append(r)
    for group in by_key.values():
        if len(group) < 2:
            continue
        labels = {int(r["target"]) for r in group}
        base = [r for r in group if r["is_base"]]
        if len(labels) > 1:
            counts["conflict_groups"] += 1
            counts["conflict_groups_with_base" if base else "conflict_groups_added_only"] += 1
        if base:
            for r in group:
                if not r["is_base"]:
                    same = int(r["target"]) == int(base[0]["target"])
                    _drop(r, "exact duplicate" if same else "label conflict: the base's label wins", base[0], 1.0)
            continue
        votes = Counter(int(r["target"]) for r in group)
        (top, n_top), *rest = votes.most_common()
        if rest and rest[0][1] == n_top:
            for r in group:
                _drop(r, "label conflict: tie, all copies dropped", None, 1.0)
            continue
        keep = next(r for r in group if int(r["target"]) == top)
        for r in group:
            if r is not keep:
                reason = "exact duplicate" if int(r["target"]) == top else "label conflict: minority label"
                _drop(r, reason, keep, 1.0)


def _near_train(rows, groups, near, counts: Counter) -> None:
    """Added train rows near-equal to a kept train row of the same label from another group are dropped."""
    for i, j, jac in near:  # i < j: the earlier row (base first, then --add order) is the one kept
        a, b = rows[i], rows[j]
        if a["split"] != "train" or b["split"] != "train" or "dropped" in a or "dropped" in b:
            continue
        if groups[i] == groups[j]:
            counts["near_pairs_within_a_group_kept"] += 1
        elif int(a["target"]) != int(b["target"]):
            counts["near_pairs_with_different_labels_kept"] += 1
        elif not b["is_base"]:
            _drop(b, "near duplicate of a train function", a, jac)
        else:
            counts["near_pairs_within_base_train_kept"] += 1


_INTERNAL = ("origin", "is_base", "order", "split", "dropped", "match", "match_split", "jaccard")


def _clean(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in _INTERNAL}


def check_no_leakage(train: list[dict], evaluation: list[dict], threshold: float) -> list[tuple[str, str, float]]:
    """(train uid, evaluation uid, Jaccard) of every train row equal or near-equal to an evaluation row."""
    rows = train + evaluation
    keys = [text_key(r["func"]) for r in rows]
    ev = {keys[len(train) + k]: r["uid"] for k, r in enumerate(evaluation)}
    bad = [(r["uid"], ev[keys[i]], 1.0) for i, r in enumerate(train) if keys[i] in ev]
    for i, j, jac in near_equal_pairs([r["func"] for r in rows], threshold):
        if i < len(train) <= j:
            bad.append((rows[i]["uid"], rows[j]["uid"], jac))
    return bad


def _per_source(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rows:
        s = out.setdefault(r["source"], {"read": 0, "kept": Counter(), "dropped": Counter()})
        s["read"] += 1
        (s["dropped"] if "dropped" in r else s["kept"])[r.get("dropped") or r["split"]] += 1
    return {k: {"read": v["read"], "kept": dict(v["kept"]), "dropped": dict(v["dropped"])} for k, v in out.items()}


def _write_split_dir(raw: RawDir, splits: dict[str, list[dict]], source: str, audit_: dict | None,
                     extra: dict) -> dict[str, Any]:
    for split in SPLITS:
        raw.write_split(split, splits.get(split, []))
    return raw.write_manifest(source, "merge", audit_, extra)


def _refuse_in_place(base: Path, adds: list[Path], out: Path) -> None:
    """Merging into an input would rewrite what is still being read (and a rerun would merge the merge)."""
    target = out.resolve()
    for flag, folder in [("--base", base), *(("--add", a) for a in adds)]:
        src = folder.resolve()
        if target == src or target.is_relative_to(src) or src.is_relative_to(target):
            how = "is" if target == src else "is inside" if target.is_relative_to(src) else "holds"
            raise UserError(f"--out {out} {how} the {flag} input {folder}: merge into a new folder")


def merge(base: Path, adds: list[Path], out: Path, holdout: str = "", seed: int = 0,
          threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Merge ``base`` and the ``adds`` into ``out`` (+ ``out/heldout``); return the manifest."""
    base, adds, out = Path(base), [Path(a) for a in adds], Path(out)
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold must be in (0, 1], got {threshold}")
    _refuse_in_place(base, adds, out)
    # one writer: a second merge into this folder is refused in one line; RawDir.writing also removes the old
    # manifests (the done markers) first, so a merge killed while rewriting OUT never leaves new splits beside one
    with RawDir.writing(out) as raw, RawDir.writing(out / HELDOUT, "--out's heldout folder") as held:
        return _merge(base, adds, raw, held, holdout, seed, threshold)


def _merge(base: Path, adds: list[Path], raw: RawDir, held: RawDir, holdout: str, seed: int,
           threshold: float) -> dict[str, Any]:
    out = raw.path
    rows = _load(base, adds)
    unknown = set(_parse_holdout(holdout)) - {r["source"] for r in rows if not r["is_base"]}
    if unknown:
        raise UserError(f"--holdout names source(s) not among the added ones: {', '.join(sorted(unknown))}")
    keys = [text_key(r["func"]) for r in rows]
    near = near_equal_pairs([r["func"] for r in rows], threshold)  # raw or normalised tokens (renamed copies)
    groups = _groups(rows)
    counts: Counter = Counter()
    _assign_holdout(rows, groups, keys, near, _parse_holdout(holdout), seed)
    _leakage(rows, keys, near)
    _exact(rows, keys, counts)
    _near_train(rows, groups, near, counts)
    kept = {s: [_clean(r) for r in rows if r["split"] == s and "dropped" not in r] for s in (*SPLITS, "heldout")}
    evaluation = kept["valid"] + kept["test"] + kept["heldout"]
    leaks = check_no_leakage(kept["train"], evaluation, threshold)
    if leaks:  # the rules above make this impossible; refuse to write a leaking dataset if they ever do not
        raise AssertionError(f"merge left {len(leaks)} train rows near evaluation rows, e.g. {leaks[0]}")
    split_of = {r["uid"]: r["split"] for r in rows if "dropped" not in r}
    by_group: dict[int, set[str]] = defaultdict(set)
    for i, r in enumerate(rows):
        if r["uid"] in split_of:
            by_group[groups[i]].add(split_of[r["uid"]])
    if any(len(s) > 1 for s in by_group.values()):
        raise AssertionError("a pair/CVE group spans splits")
    dropped = [{"uid": r["uid"], "source": r["source"], "split": r["split"], "label": int(r["target"]),
                "reason": r["dropped"], "match": r["match"], "match_split": r["match_split"],
                "jaccard": r["jaccard"]} for r in rows if "dropped" in r]
    _write_split_dir(held, {"test": kept["heldout"]}, "heldout", None,
                     {"note": "held-out collected rows (whole CVE/pair groups): evaluate with predict --split test"})
    write_jsonl(out / "dropped.jsonl", dropped)
    jac_bins = Counter(f"{int(j * 20) / 20:.2f}" for _, _, j in near)
    extra = {
        "base": str(base.resolve()), "adds": [str(a.resolve()) for a in adds],
        "holdout": _parse_holdout(holdout), "seed": seed, "read": len(rows),
        "per_source": _per_source(rows),
        "dropped": dict(Counter(d["reason"] for d in dropped)),
        "conflicts": {k: v for k, v in counts.items() if k.startswith("conflict")},
        "near_duplicates": {"threshold": threshold, "method": "MinHash LSH (datasketch) over 5-token shingles "
                            "of the raw and of the normalised tokens (identifiers, literals abstracted), "
                            "candidates checked on exact Jaccard", "pairs_found": len(near),
                            "pairs_by_jaccard_floor": dict(sorted(jac_bins.items())),
                            **{k: v for k, v in counts.items() if k.startswith("near")}},
        "groups": {"with_rows_kept": len(by_group), "held_out": sum(1 for s in by_group.values() if "heldout" in s)},
        "leakage_check": {"train_rows_equal_or_near_evaluation": len(leaks)},
        "labels": monitor({s: kept[s] for s in (*SPLITS, HELDOUT)}, "train")}
    manifest = _write_split_dir(raw, {s: kept[s] for s in SPLITS}, "merged", audit({s: kept[s] for s in SPLITS}),
                                extra)  # its manifest: last, the done marker of the whole merge
    print(f"merged {len(rows)} rows: train {len(kept['train'])}, valid {len(kept['valid'])}, test "
          f"{len(kept['test'])}, held out {len(kept['heldout'])}; dropped {len(dropped)} "
          f"({', '.join(f'{k} {v}' for k, v in extra['dropped'].items())}) -> {out}")
    return manifest
