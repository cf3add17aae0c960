"""Pair metrics (P-C/P-V/P-B/P-R, vulnerable side higher) and the within-file ranking, on hand-computed sets."""
from __future__ import annotations

import pytest

from streamguard.evaluate.pairs import all_pair_metrics, file_groups, find_pairs, pair_metrics, ranking_metrics

# four complete pairs (one of each outcome at threshold 0.5) and one incomplete pair
IDS = ["a1", "a2", "b1", "b2", "c1", "c2", "d1", "d2", "e1"]
LABELS = [1, 0, 1, 0, 1, 0, 0, 1, 1]  # pair d lists its fixed side first: order must not matter
SCORES = [0.9, 0.2, 0.8, 0.7, 0.3, 0.3, 0.6, 0.1, 0.95]
INFO = {i: {"source": "s", "pair_id": i[0]} for i in IDS}


def test_pairs_are_found_by_pair_id_and_label() -> None:
    assert find_pairs(IDS, LABELS, INFO) == [(0, 1), (2, 3), (4, 5), (7, 6)]


def test_pair_outcomes_and_vulnerable_higher() -> None:
    res = pair_metrics(SCORES, 0.5, find_pairs(IDS, LABELS, INFO))
    # A both right, B both vulnerable, C both safe (a tie: half credit), D reversed
    assert res == {"n_pairs": 4, "p_c": 0.25, "p_v": 0.25, "p_b": 0.25, "p_r": 0.25,
                   "vulnerable_higher": pytest.approx((1 + 1 + 0.5 + 0) / 4)}


def test_same_pair_id_in_two_sources_are_two_groups() -> None:
    info = {"x1": {"source": "debian", "pair_id": "p"}, "x2": {"source": "bigvul", "pair_id": "p"}}
    assert find_pairs(["x1", "x2"], [1, 0], info) == []
    assert pair_metrics([0.9, 0.1], 0.5, []) == {"n_pairs": 0}


def _file_rows() -> tuple[list[str], list[int], list[float], dict]:
    rows = [  # id, label, score, kind, commit, file
        ("f1-before", 1, 0.6, "before", "p1", "a.c"), ("f1-after", 0, 0.99, "after", "p1", "a.c"),
        ("f1-c1", 0, 0.9, "context", "p1", "a.c"), ("f1-c2", 0, 0.6, "context", "p1", "a.c"),
        ("f1-c3", 0, 0.1, "context", "p1", "a.c"),
        ("f2-before", 1, 0.8, "before", "p1", "b.c"), ("f2-c1", 0, 0.1, "context", "p1", "b.c"),
        ("f3-before", 1, 0.5, "before", "p2", "a.c"),  # no context rows: not ranked
        ("other-c", 0, 0.95, "context", "p3", "a.c")]  # same file name, another patch: not a candidate
    info = {r[0]: {"kind": r[3], "commit_id": r[4], "file": r[5]} for r in rows}
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], info


def test_fixed_function_rank_among_its_file() -> None:
    ids, labels, scores, info = _file_rows()
    groups = file_groups(ids, labels, info)
    assert groups == [(0, [2, 3, 4]), (5, [6])]
    res = ranking_metrics(scores, groups)
    # file a.c: 0.9 and the tie at 0.6 rank above -> rank 3 (the after row is no candidate); b.c: rank 1
    assert res["n_files"] == 2 and res["mean_functions"] == 3.0
    assert res["mrr"] == pytest.approx((1 / 3 + 1) / 2)
    assert res["recall_at_1"] == 0.5 and res["recall_at_5"] == 1.0
    # a random order over 4 and 2 functions
    assert res["chance_mrr"] == pytest.approx(((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4 + (1 + 1 / 2) / 2) / 2)
    assert res["chance_recall_at_1"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert res["chance_recall_at_5"] == 1.0


def test_constant_scores_rank_last() -> None:
    ids, labels, _, info = _file_rows()
    res = ranking_metrics([0.5] * len(ids), file_groups(ids, labels, info))
    assert res["mrr"] == pytest.approx((1 / 4 + 1 / 2) / 2) and res["recall_at_1"] == 0.0


def test_data_without_pairs_or_files() -> None:
    res = all_pair_metrics(["x", "y"], [1, 0], [0.7, 0.2], 0.5, {"x": {}, "y": {}})
    assert res == {"pairs": {"n_pairs": 0}, "ranking": {"n_files": 0}}
