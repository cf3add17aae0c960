"""``streamguard denoise``: confident learning (cleanlab) on out-of-fold probabilities -> sample weights.

Every train item is scored by a model that did not see it: the fold models of a fusion run (``RUN/oof/*.jsonl``,
combined with the fusion's own weights when ``fusion.json`` is there, else averaged in log-odds). cleanlab's
``find_label_issues`` (confident joint, prune by noise rate) flags suspected label errors, ranked by
self-confidence (the out-of-fold probability of the given label). Weights (docs/data-collection.md):
- ``weight`` mode (default): a flagged item weighs its self-confidence (< 1, lower the surer the model is that
  the label is wrong), every other item 1;
- ``drop`` mode: a flagged item weighs 0.
Writes ``sample_weights.jsonl`` (``{"id", "weight"}``, every train id once, in [0, 1]), ``label_issues.jsonl``
(ranked), ``hard_set.jsonl`` (self-confidence below ``hard_below``), ``denoise.json`` and ``report.html``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.data.records import SPLITS, check_prediction, write_jsonl
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields
from streamguard.provenance import environment
from streamguard.rundir import RunDir, logit_margin
from streamguard.runlock import locked

MODES = ("weight", "drop")


def oof_margin(run_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(train ids, labels, out-of-fold log-odds of 'vulnerable') of a run that kept OOF predictions."""
    from streamguard.train.fuse import FUSION_FILE
    RunDir(run_dir).read_exp()
    kinds = RunDir(run_dir).oof_kinds()
    if not kinds:
        raise UserError(f"{run_dir} has no oof/*.jsonl: denoise needs out-of-fold predictions (a fusion run)")
    per_kind = {k: _checked_oof(run_dir, k) for k in kinds}
    ids = sorted(per_kind[kinds[0]])
    if any(set(v) != set(ids) for v in per_kind.values()):
        raise UserError(f"{run_dir}: the base models' OOF predictions cover different items")
    labels = np.array([int(per_kind[kinds[0]][i]["label"]) for i in ids])
    z = np.stack([logit_margin(per_kind[k][i] for i in ids) for k in kinds], axis=1)
    fusion_path = Path(run_dir) / FUSION_FILE
    if fusion_path.is_file():
        from streamguard.models.fusion import Fusion
        meta = json.loads(fusion_path.read_text())
        order = [kinds.index(k) for k in meta["models"]]
        margin = Fusion(meta["method"], meta["weights"], meta["bias"], meta["threshold"]).margin(z[:, order])
    else:
        margin = z.mean(axis=1)
    return ids, labels, margin


def _checked_oof(run_dir: Path, kind: str) -> dict[str, dict]:
    """The OOF rows of one model by id. A NaN or infinite probability or logit is refused with its row: cleanlab
    would take it silently and flag a different set of items."""
    from streamguard.train.fuse import read_oof
    rows = read_oof(run_dir, kind)
    for n, row in enumerate(rows, start=1):
        where = f"{RunDir(run_dir).oof_path(kind)} row {n}"
        check_prediction(row, where)
        if row.get("logits") is None:
            raise UserError(f"{where}: logits missing (denoise combines the models' log-odds)")
    return {r["id"]: r for r in rows}


def confident_learning(labels: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(self-confidence per item, indices of label issues ranked most suspicious first)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    bad = np.flatnonzero(~np.isfinite(margin))
    if bad.size:  # e.g. a fusion weight that is not finite: never let NaN choose the flagged set
        raise UserError(f"out-of-fold log-odds of item {int(bad[0])} is {margin[bad[0]]}: not a finite number")
    p1 = 1.0 / (1.0 + np.exp(-np.clip(margin, -30, 30)))
    probs = np.clip(np.stack([1 - p1, p1], axis=1), 1e-6, 1 - 1e-6)
    probs /= probs.sum(axis=1, keepdims=True)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    return quality, np.asarray(ranked, dtype=int)


def weights_for(quality: np.ndarray, ranked: np.ndarray, mode: str) -> np.ndarray:
    if mode not in MODES:
        raise UserError(f"denoise --mode must be one of {', '.join(MODES)}, got {mode!r}")
    w = np.ones(len(quality))
    w[ranked] = 0.0 if mode == "drop" else np.clip(quality[ranked], 0.0, 1.0)
    return w


def _balance(rows: list[dict], weight: dict[str, float] | None, key: str) -> dict[str, dict[str, Any]]:
    """Per value of ``key``: count and vulnerable share, plain and (with weights) weighted."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = out.setdefault(str(r.get(key) or ""), {"count": 0, "vul": 0.0, "w": 0.0, "wvul": 0.0})
        w = 1.0 if weight is None else weight[r["id"]]
        g["count"] += 1
        g["vul"] += r["label"]
        g["w"] += w
        g["wvul"] += w * r["label"]
    return {k: {"count": g["count"], "vulnerable_share": round(g["vul"] / g["count"], 4),
                "weight": round(g["w"], 1),
                "weighted_vulnerable_share": round(g["wvul"] / g["w"], 4) if g["w"] else None}
            for k, g in sorted(out.items(), key=lambda kv: -kv[1]["count"])[:25]}


def _records(data_dir: Path, split: str) -> list[dict]:
    recs = ProcessedDir(data_dir).read_split(split, keep=("id", "label", "metadata"))
    extra = raw_fields(data_dir, split, recs)
    return [{"id": r["id"], "label": int(r["label"]), **extra[r["id"]]} for r in recs]


def denoise(run_dir: Path, out: Path, mode: str = "weight", hard_below: float = 0.25,
            data_dir: Path | None = None, top: int = 50) -> dict[str, Any]:
    """Score, weight and report; return the summary (also ``out/denoise.json``)."""
    with locked(out, "--out"):  # one writer per output folder, as every stage
        return _denoise(Path(run_dir), Path(out), mode, hard_below, data_dir, top)


def _denoise(run_dir: Path, out: Path, mode: str, hard_below: float, data_dir: Path | None,
             top: int) -> dict[str, Any]:
    started = time.time()
    data_dir = Path(data_dir or RunDir(run_dir).read_exp()["data_dir"])
    ids, labels, margin = oof_margin(run_dir)
    train = _records(data_dir, "train")
    missing = {r["id"] for r in train} - set(ids)
    if missing:
        raise UserError(f"{len(missing)} train items of {data_dir} have no out-of-fold score in {run_dir} "
                        f"(e.g. {sorted(missing)[0]}): was the run trained on this dataset?")
    quality, ranked = confident_learning(labels, margin)
    w = weights_for(quality, ranked, mode)
    weight = dict(zip(ids, w.tolist(), strict=True))
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "sample_weights.jsonl", ({"id": r["id"], "weight": weight[r["id"]]} for r in train))
    info = {r["id"]: r for r in train}
    issues = [{"rank": k + 1, "id": ids[i], "label": int(labels[i]), "self_confidence": round(float(quality[i]), 4),
               "weight": round(float(w[i]), 4), "project": info[ids[i]]["project"], "source": info[ids[i]]["source"]}
              for k, i in enumerate(ranked)]
    write_jsonl(out / "label_issues.jsonl", issues)
    hard_idx = np.flatnonzero(quality < hard_below)
    hard = sorted(({"id": ids[i], "label": int(labels[i]), "self_confidence": round(float(quality[i]), 4),
                    "flagged": bool(w[i] < 1), **{k: info[ids[i]][k] for k in ("project", "source")}}
                   for i in hard_idx), key=lambda r: r["self_confidence"])
    show = {r["id"] for r in issues[:top]} | {r["id"] for r in hard[:top]}
    rows = ProcessedDir(data_dir).read_split("train", ids=show, keep=("id", "code")) if show else []
    code = {r["id"]: r["code"] for r in rows}
    write_jsonl(out / "hard_set.jsonl", ({**r, "code": code.get(r["id"], "")} for r in hard))
    splits = {s: (train if s == "train" else _records(data_dir, s))
              for s in SPLITS if (data_dir / f"{s}.jsonl").is_file()}
    summary = {
        "run": str(run_dir), "data_dir": str(data_dir), "mode": mode, "hard_below": hard_below,
        "n_train": len(train), "n_flagged": len(issues),
        "flagged_by_label": {str(k): int(np.sum(labels[ranked] == k)) for k in (0, 1)},
        "flagged_share": round(len(issues) / len(train), 4), "n_hard": len(hard),
        "weights": {"min": float(w.min()), "mean": round(float(w.mean()), 4), "zero": int(np.sum(w == 0))},
        "balance": {s: {key: _balance(rows, weight if s == "train" else None, key)
                        for key in ("split", "project", "source")} for s, rows in
                    ((s, [{**r, "split": s} for r in rows]) for s, rows in splits.items())},
        "seconds": round(time.time() - started, 2), "environment": environment()}
    (out / "denoise.json").write_text(json.dumps(summary, indent=2) + "\n")
    from streamguard.train.denoise_report import write_report
    write_report(out / "report.html", summary, issues[:top], hard[:top], code)
    print(f"denoise: {len(issues)} of {len(train)} train labels flagged ({summary['flagged_share']:.1%}), "
          f"{len(hard)} in the hard set -> {out}/sample_weights.jsonl, {out}/report.html")
    return summary

