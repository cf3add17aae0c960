"""Pair and within-file metrics: does a model tell a vulnerable function from its own fix, and does it rank the
fixed function first among the functions of its file?

Pairs: rows sharing a ``pair_id`` (within a source), one labelled 1 (``before`` the fix) and one 0 (``after``).
With the verdict ``score >= threshold``, a pair is
- P-C: both right (before flagged, after not); P-V: both called vulnerable; P-B: both called safe (benign);
- P-R: reversed (before called safe, after vulnerable),
as in the pair-wise evaluation of PrimeVul (Ding et al., 2024). ``vulnerable_higher`` is the share of pairs whose
vulnerable side scores strictly higher (ties count one half): the pair-wise ROC-AUC, free of any threshold.

Ranking: the Debian collection's ``context`` rows are the other functions of a file a fix touched, as they were
before the fix. For each fixed function (a ``before`` row) the candidates are it and the context rows of the same
patch and file (``commit_id`` + ``file``); its rank is 1 + the context rows scoring at least as high (ties count
against it, so a constant score ranks it last). Reported: mean reciprocal rank, recall@1 and @5, and what a random
order gives on the same files (the chance level).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

PAIR_FIELDS = ("source", "pair_id", "kind", "file", "commit_id", "holdout", "project")


def find_pairs(ids: Sequence[str], labels: Sequence[int], info: dict[str, dict[str, Any]]) -> list[tuple[int, int]]:
    """(vulnerable index, fixed index) of every complete pair among ``ids``; ``info`` maps id -> raw fields."""
    members: dict[str, list[int]] = defaultdict(list)
    for k, i in enumerate(ids):
        row = info.get(i) or {}
        if row.get("pair_id"):
            members[f"{row.get('source', '')}:{row['pair_id']}"].append(k)
    out = []
    for idx in members.values():
        vul = [k for k in idx if labels[k] == 1]
        safe = [k for k in idx if labels[k] == 0]
        if len(vul) == 1 and len(safe) == 1:
            out.append((vul[0], safe[0]))
    return out


def pair_metrics(scores: Sequence[float], threshold: float, pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """P-C / P-V / P-B / P-R shares and the share of pairs whose vulnerable side scores higher."""
    if not pairs:
        return {"n_pairs": 0}
    s = np.asarray(scores, dtype=float)
    v, f = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    fv, ff = s[v] >= threshold, s[f] >= threshold
    higher = np.where(s[v] > s[f], 1.0, np.where(s[v] == s[f], 0.5, 0.0))
    return {"n_pairs": len(pairs), "p_c": float(np.mean(fv & ~ff)), "p_v": float(np.mean(fv & ff)),
            "p_b": float(np.mean(~fv & ~ff)), "p_r": float(np.mean(~fv & ff)),
            "vulnerable_higher": float(higher.mean())}


def file_groups(ids: Sequence[str], labels: Sequence[int],
                info: dict[str, dict[str, Any]]) -> list[tuple[int, list[int]]]:
    """(fixed function index, its file's context indices) for every ``before`` row whose file has context rows."""
    context: dict[tuple[str, str], list[int]] = defaultdict(list)
    fixed: list[tuple[int, tuple[str, str]]] = []
    for k, i in enumerate(ids):
        row = info.get(i) or {}
        key = (str(row.get("commit_id") or ""), str(row.get("file") or ""))
        if not key[1]:
            continue
        if row.get("kind") == "context":
            context[key].append(k)
        elif row.get("kind") == "before" and labels[k] == 1:
            fixed.append((k, key))
    return [(k, context[key]) for k, key in fixed if context.get(key)]


def ranking_metrics(scores: Sequence[float], groups: list[tuple[int, list[int]]]) -> dict[str, Any]:
    """Mean reciprocal rank and recall@1/@5 of each fixed function among its file's functions, with chance."""
    if not groups:
        return {"n_files": 0}
    s = np.asarray(scores, dtype=float)
    ranks, sizes = [], []
    for k, ctx in groups:
        ranks.append(1 + int(np.sum(s[ctx] >= s[k])))
        sizes.append(len(ctx) + 1)
    r, n = np.array(ranks, dtype=float), np.array(sizes, dtype=float)
    # a random order: the fixed function is equally likely at every rank 1..n
    chance_mrr = np.array([np.mean(1.0 / np.arange(1, m + 1)) for m in sizes])
    return {"n_files": len(groups), "mean_functions": float(n.mean()), "mrr": float(np.mean(1.0 / r)),
            "recall_at_1": float(np.mean(r <= 1)), "recall_at_5": float(np.mean(r <= 5)),
            "chance_mrr": float(chance_mrr.mean()), "chance_recall_at_1": float(np.mean(1.0 / n)),
            "chance_recall_at_5": float(np.mean(np.minimum(5.0, n) / n))}


def all_pair_metrics(ids: Sequence[str], labels: Sequence[int], scores: Sequence[float], threshold: float,
                     info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Both families for one model's scores on one item set (empty counts where the data has no pairs/files)."""
    return {"pairs": pair_metrics(scores, threshold, find_pairs(ids, labels, info)),
            "ranking": ranking_metrics(scores, file_groups(ids, labels, info))}


def entry_pair_metrics(entries: list[Any], ids: Sequence[str], labels: Sequence[int],
                       info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per scored entry (models and peers; ``evaluate.entries.Entry``): both families on the test items, each
    number the mean over the entry's seeds (its own threshold per seed). Empty when the data has neither."""
    pairs, groups = find_pairs(ids, labels, info), file_groups(ids, labels, info)
    if not pairs and not groups:
        return {}
    out = {}
    for e in entries:
        if e.kind == "trivial":
            continue
        per_seed = [{"pairs": pair_metrics(s, t, pairs), "ranking": ranking_metrics(s, groups)}
                    for s, t in zip(e.test, e.thresholds)]
        out[e.name] = {fam: {k: float(np.mean([p[fam][k] for p in per_seed])) if k not in ("n_pairs", "n_files")
                             else per_seed[0][fam][k] for k in per_seed[0][fam]} for fam in ("pairs", "ranking")}
    return out
