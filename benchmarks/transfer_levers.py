"""Two transfer levers on the lexical kind (its features, C grid and classifier, fitted in-process on raw text):

A. identifier normalisation (features/normalise.py): Devign cross-project, train on one project's official
   train rows (C chosen on its valid rows), test on the other project's official test rows; raw vs normalised.
B. fix-pair ranking (LexicalConfig.pair_loss_weight): train on Devign train + Big-Vul pairs + the Debian pool's
   trainable pairs (holdout ''), C chosen on Devign valid; score the Debian pool's held-out pairs (holdout
   package or time): the share of pairs whose vulnerable side scores above its fixed side; weight 0 vs on.

    nice -n 10 python benchmarks/transfer_levers.py [--part A|B|AB] [--weights 0,1]

Writes benchmarks/results/transfer_levers_normpairs.json (the .md is written by hand from it).
"""
from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from streamguard.config import LexicalConfig
from streamguard.features.normalise import normalise_code
from streamguard.models.lexical import LexicalFeatures
from streamguard.train.lexical import _select_c
from streamguard.train.pairs import with_difference_rows

ROOT = Path(__file__).resolve().parents[1]
DEVIGN = Path("/work/shared/data/devign")
BIGVUL = Path("/work/shared/data/collected/bigvul_subset/all.jsonl")
DEBIAN = ROOT / "data" / "collected" / "debian" / "pool.jsonl.gz"
OUT = ROOT / "benchmarks" / "results" / "transfer_levers_normpairs.json"


def rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def features(cfg: LexicalConfig, train: list[str], valid: list[str]):
    """The kind's TF-IDF views fitted on the train texts (they do not depend on the pair weight: fitted once)."""
    feats = LexicalFeatures(cfg.analyzer, cfg.ngram_min, cfg.ngram_max, cfg.max_features, cfg.strip_comments,
                            cfg.collapse_blank_lines)
    return feats, feats.fit_transform(train), feats.transform(valid)


def classifier(cfg: LexicalConfig, x, y: np.ndarray, xv, yv: np.ndarray, groups: np.ndarray | None = None,
               pair_weight: float = 0.0):
    """What ``train.lexical._train`` does after the features: difference rows when weighted, C chosen on valid."""
    weights = None
    if pair_weight > 0:
        x, y, weights = with_difference_rows(x, y, None, groups, pair_weight)
    clf, c, _ = _select_c(x, y, xv, yv, cfg, weights)
    return clf, c


def part_a(cfg: LexicalConfig) -> list[dict]:
    split = {s: rows(DEVIGN / f"{s}.jsonl") for s in ("train", "valid", "test")}
    out = []
    for src, dst in (("FFmpeg", "qemu"), ("qemu", "FFmpeg")):
        for mode, text in (("raw", lambda c: c), ("normalised", normalise_code)):
            t0 = time.time()
            tr = [r for r in split["train"] if r["project"] == src]
            va = [r for r in split["valid"] if r["project"] == src]
            te = [r for r in split["test"] if r["project"] == dst]
            feats, x, xv = features(cfg, [text(r["func"]) for r in tr], [text(r["func"]) for r in va])
            clf, c = classifier(cfg, x, np.array([r["target"] for r in tr]), xv, np.array([r["target"] for r in va]))
            d = clf.decision_function(feats.transform([text(r["func"]) for r in te]))
            y = np.array([r["target"] for r in te])
            res = {"direction": f"{src} -> {dst}", "text": mode, "n_train": len(tr), "n_test": len(te), "C": c,
                   "accuracy": round(float(accuracy_score(y, d > 0)), 4),
                   "roc_auc": round(float(roc_auc_score(y, d)), 4), "seconds": round(time.time() - t0)}
            print(json.dumps(res), flush=True)
            out.append(res)
    return out


def _pairs(rs: list[dict], tag: str) -> list[dict]:
    """Rows of complete (vulnerable, fixed) pairs, pair_id made unique per source."""
    by: dict[str, list[dict]] = {}
    for r in rs:
        if r.get("pair_id"):
            by.setdefault(f"{tag}:{r['pair_id']}", []).append(r)
    out = []
    for pid, members in by.items():
        if sorted(m["target"] for m in members) == [0, 1]:
            out += [{**m, "pair_id": pid} for m in members]
    return out


def part_b(cfg: LexicalConfig, weights: list[float], devign_sample: int) -> dict:
    deb = rows(DEBIAN)
    held = _pairs([r for r in deb if r.get("holdout")], "debian")
    held_projects = {r["project"].lower() for r in deb if r.get("holdout")}
    held_cves = {r["cve"] for r in deb if r.get("holdout") and r.get("cve")}
    # nothing of a held-out project or CVE reaches training (the merge's leakage rule, by project and CVE)
    bigvul = [r for r in _pairs(rows(BIGVUL), "bigvul")
              if r["project"].lower() not in held_projects and r.get("cve") not in held_cves]
    deb_train = _pairs([r for r in deb if not r.get("holdout") and r.get("cve") not in held_cves], "debian")
    devign = rows(DEVIGN / "train.jsonl")
    if devign_sample:  # a seeded sample of Devign's train rows (time on a shared machine)
        keep = np.random.default_rng(0).permutation(len(devign))[:devign_sample]
        devign = [devign[k] for k in sorted(keep)]
    valid = rows(DEVIGN / "valid.jsonl")
    train = devign + bigvul + deb_train
    pid = {p: k for k, p in enumerate(sorted({r["pair_id"] for r in bigvul + deb_train}))}
    groups = np.array([pid[r["pair_id"]] if r.get("pair_id") in pid else -1 for r in train])
    y = np.array([r["target"] for r in train])
    held_by: dict[str, dict[int, str]] = {}
    for r in held:
        held_by.setdefault(r["pair_id"], {})[r["target"]] = r["func"]
    pairs = list(held_by.values())
    result = {"n_train": len(train), "n_devign": len(devign), "n_bigvul_pair_rows": len(bigvul),
              "n_debian_pair_rows": len(deb_train), "n_heldout_pairs": len(pairs), "runs": []}
    t0 = time.time()
    feats, x, xv = features(cfg, [r["func"] for r in train], [r["func"] for r in valid])
    xh_v, xh_f = feats.transform([p[1] for p in pairs]), feats.transform([p[0] for p in pairs])
    result["features_seconds"] = round(time.time() - t0)
    for w in weights:
        t0 = time.time()
        clf, c = classifier(cfg, x, y, xv, np.array([r["target"] for r in valid]), groups, w)
        dv, df = clf.decision_function(xh_v), clf.decision_function(xh_f)
        yy = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
        run = {"pair_loss_weight": w, "C": c, "pair_share_vulnerable_higher": round(float(np.mean(dv > df)), 4),
               "pair_share_ties": round(float(np.mean(dv == df)), 4),
               "heldout_roc_auc": round(float(roc_auc_score(yy, np.r_[dv, df])), 4),
               "seconds": round(time.time() - t0)}
        print(json.dumps(run), flush=True)
        result["runs"].append(run)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="AB")
    ap.add_argument("--weights", default="0,1")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--devign-sample", type=int, default=0, help="B: Devign train rows kept (0: all)")
    ap.add_argument("--c-grid", default="0.5,1,2,4", help="the lexical C grid (one value: no choice on valid)")
    args = ap.parse_args()
    out = args.out
    cfg = LexicalConfig(c_grid=[float(c) for c in args.c_grid.split(",")])
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report.update({"command": " ".join(["python", *sys.argv]), "commit": commit, "dirty": dirty,
                   "machine": "2-core AMD EPYC, shared with other jobs (timings not comparable)",
                   "date": datetime.now(UTC).isoformat(timespec="seconds"),
                   "lexical_config": f"defaults, c_grid {cfg.c_grid}"})
    if "A" in args.part:
        report["normalise_cross_project"] = part_a(cfg)
        out.write_text(json.dumps(report, indent=1) + "\n")
    if "B" in args.part:
        report["fix_pairs"] = part_b(cfg, [float(w) for w in args.weights.split(",")], args.devign_sample)
        out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
