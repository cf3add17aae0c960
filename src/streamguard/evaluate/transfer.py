"""The table of the transfer benchmark (benchmarks/transfer.py, docs/transfer.md): every model on every set of
code it never trained on, with ROC-AUC (95% bootstrap CI), accuracy at the run's own threshold (chosen on its
valid split), the pair metrics and the within-file ranking of ``evaluate.pairs``.

Sets: (a) Devign's official test; (b) Devign cross-project, FFmpeg -> QEMU and QEMU -> FFmpeg; (c) the held-out
Debian packages and the Debian time split; (d) the held-out Big-Vul pairs.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamguard import atomic
from streamguard.evaluate.metrics import percentile_ci, point_metrics, resample_weights, threshold_free_metrics
from streamguard.evaluate.pairs import PAIR_FIELDS, all_pair_metrics
from streamguard.features.processed import ProcessedDir
from streamguard.features.rawjoin import raw_fields
from streamguard.provenance import git_state
from streamguard.rundir import RunDir
from streamguard.thresholds import run_threshold

XP = (("devign-xp FFmpeg->QEMU", "xp-FFmpeg-to-qemu"), ("devign-xp QEMU->FFmpeg", "xp-qemu-to-FFmpeg"))
N_BOOT, CHUNK = 1000, 100


def auc_ci(y: np.ndarray, s: np.ndarray, seed: int = 0) -> list[float | None]:
    """95% percentile CI of the ROC-AUC over items, drawn CHUNK resamples at a time (held-out sets are large)."""
    parts = [threshold_free_metrics(resample_weights(len(y), CHUNK, seed + k), y.astype(float), s, 0.005)["roc_auc"]
             for k in range(N_BOOT // CHUNK)]
    return percentile_ci(np.concatenate(parts))


def score_set(ids: list[str], y: np.ndarray, s: np.ndarray, threshold: float,
              info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Point metrics, the ROC-AUC CI, pair and ranking metrics of one model on one item set."""
    point = point_metrics(y, s, threshold)
    return {"n": len(y), "vulnerable_share": float(y.mean()) if len(y) else None, "threshold": threshold,
            "accuracy": point["accuracy"], "roc_auc": point["roc_auc"],
            "roc_auc_ci": auc_ci(y, s) if len(set(y.tolist())) == 2 else [None, None],
            **all_pair_metrics(ids, y.tolist(), s.tolist(), threshold, info)}


def _arrays(rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    return ([r["id"] for r in rows], np.array([int(r["label"]) for r in rows]),
            np.array([float(r["prob_vulnerable"]) for r in rows]))


def _run_rows(run: Path, data: Path, set_name: str, kind: str) -> list[dict[str, Any]]:
    ids, y, s = _arrays(RunDir(run).read_predictions("test"))
    recs = ProcessedDir(data).read_split("test", keep=("id", "label", "metadata"))
    info = raw_fields(data, "test", recs, PAIR_FIELDS)
    return [{"set": set_name, "model": kind, **score_set(ids, y, s, run_threshold(run), info)}]


def heldout_group(row: dict[str, Any]) -> str:
    """Which held-out set a row belongs to: Debian by its ``holdout`` field, Big-Vul by source."""
    if row.get("source") == "debian":
        return f"debian-{row['holdout']}" if row.get("holdout") else "debian-linked"
    return str(row.get("source") or "other")


HELDOUT_SETS = (("debian-package", "debian held-out packages"), ("debian-time", "debian time split"),
                ("bigvul", "big-vul held-out pairs"))


def heldout_sets(preds: Path, data: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """``streamguard predict``'s rows on the held-out data, by set title (HELDOUT_SETS; empty sets left out), and
    the raw fields (pairs, files) of every row by id."""
    rows = [json.loads(line) for line in preds.read_text().splitlines() if line.strip()]
    recs = ProcessedDir(data).read_split("test", keep=("id", "label", "metadata"))
    info = raw_fields(data, "test", recs, PAIR_FIELDS)
    sets = {title: [r for r in rows if heldout_group(info.get(r["id"], {})) == group] for group, title in HELDOUT_SETS}
    return {t: sub for t, sub in sets.items() if sub}, info


def _heldout_rows(preds: Path, data: Path, kind: str) -> list[dict[str, Any]]:
    sets, info = heldout_sets(preds, data)
    out = []
    for title, sub in sets.items():
        ids, y, s = _arrays(sub)
        out.append({"set": title, "model": kind, **score_set(ids, y, s, float(sub[0]["threshold"]), info)})
    return out


LENGTH = "length (lines)"


def length_rows(train_data: Path, heldout_data: Path) -> list[dict[str, Any]]:
    """The trivial baseline every model must beat: a function's line count as its score (on the held-out Debian
    sets a fixed function is longer than most of its file's others, so size alone ranks). Its threshold is the
    median line count of the train split (label-free)."""
    def lengths(data: Path, split: str) -> tuple[list[dict[str, Any]], np.ndarray, dict[str, dict[str, Any]]]:
        recs = ProcessedDir(data).read_split(split, keep=("id", "label", "metadata"))
        info = raw_fields(data, split, recs, (*PAIR_FIELDS, "func"))
        return recs, np.array([len(str(info[r["id"]]["func"]).splitlines()) for r in recs], float), info

    _, train_len, _ = lengths(train_data, "train")
    threshold = float(np.median(train_len)) if len(train_len) else 0.0
    recs, s, info = lengths(train_data, "test")
    out = [{"set": "devign test (official)", "model": LENGTH,
            **score_set([r["id"] for r in recs], np.array([r["label"] for r in recs]), s, threshold, info)}]
    recs, s, info = lengths(heldout_data, "test")
    for group, title in HELDOUT_SETS:
        keep = [k for k, r in enumerate(recs) if heldout_group(info[r["id"]]) == group]
        if keep:
            out.append({"set": title, "model": LENGTH, **score_set([recs[k]["id"] for k in keep],
                                                                    np.array([recs[k]["label"] for k in keep]),
                                                                    s[keep], threshold, info)})
    return out


def collect(work: Path, kinds: list[str], train: str, preds: Path, runs: Path | None = None,
            data: Path | None = None, cross_project: bool = True) -> list[dict[str, Any]]:
    """Every row of the table (the models', then the length baseline's); ``train`` names the main model's training
    data (merged, or the devign baseline); ``preds`` holds the held-out scores (``TRAIN-KIND-heldout.jsonl``,
    written by ``streamguard predict``); ``runs`` and ``data`` are the job's params of those names
    (``{work}/runs``, ``{work}/processed`` by default);
    ``cross_project=False``: the job ran without the Devign cross-project runs, so no such rows."""
    data, runs = data or work / "processed", runs or work / "runs"
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        rows += _run_rows(runs / train / kind, data / train, "devign test (official)", kind)
        for title, name in XP if cross_project else ():
            rows += _run_rows(runs / name / kind, data / name, title, kind)
        rows += _heldout_rows(preds / f"{train}-{kind}-heldout.jsonl", data / f"heldout-{train}", kind)
    return rows + length_rows(data / train, data / f"heldout-{train}")


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ("| set | model | n | vuln. share | accuracy | ROC-AUC [95% CI] | pairs | P-C | P-V | P-B | P-R | "
            "vuln > fix | files | MRR (chance) | R@1 (chance) | R@5 (chance) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        p, k = r["pairs"], r["ranking"]
        ci = r["roc_auc_ci"]
        pair = [str(p["n_pairs"])] + ([_f(p[m]) for m in ("p_c", "p_v", "p_b", "p_r", "vulnerable_higher")]
                                      if p["n_pairs"] else ["-"] * 5)
        rank = [str(k["n_files"])] + ([f"{_f(k[m])} ({_f(k['chance_' + m])})" for m in
                                       ("mrr", "recall_at_1", "recall_at_5")] if k["n_files"] else ["-"] * 3)
        cells = [r["set"], r["model"], str(r["n"]), _f(r["vulnerable_share"]), _f(r["accuracy"]),
                 f"{_f(r['roc_auc'])} [{_f(ci[0])}, {_f(ci[1])}]", *pair, *rank]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(work: Path, kinds: list[str], train: str, preds: Path, out: Path, command: str,
              timings: list[dict[str, Any]], seconds: float, runs: Path | None = None,
              data: Path | None = None, cross_project: bool = True) -> dict[str, Any]:
    """Score everything, write ``out``.json and ``out``.md; return the result."""
    rows = collect(work, kinds, train, preds, runs, data, cross_project)
    res = {"command": command, "train": train, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "git": git_state(),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
           "seconds": round(seconds, 1), "steps": timings, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out.with_suffix(".json"), json.dumps(res, indent=2, default=float) + "\n")
    head = (f"# Transfer benchmark\n\nCommand: `{command}`; commit {res['git'].get('commit')} "
            f"(dirty: {res['git'].get('dirty')}); {res['date']}; {res['machine']['platform']}, "
            f"{res['machine']['cpus']} CPUs; {res['seconds']} s.\n\n")
    atomic.write_text(out.with_suffix(".md"), head + markdown_table(rows))
    return res
