"""The rows of the evaluation table: models (one or more seeds), peers and the trivial baseline, all aligned
to the same valid and test items, each with its operating threshold chosen on valid."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.errors import UserError
from streamguard.evaluate import peers as peer_mod
from streamguard.evaluate.runs import ModelGroup, Split
from streamguard.thresholds import choose_threshold


@dataclasses.dataclass
class Items:
    """The items every entry is scored on: ids, labels and projects in one fixed order."""
    ids: list[str]
    label: np.ndarray
    project: list[str]


@dataclasses.dataclass
class Entry:
    name: str
    kind: str                      # "model", "peer" or "trivial"
    model: str
    seeds: list[int | None]
    valid: list[np.ndarray]        # one score vector per seed, aligned to the valid Items
    test: list[np.ndarray]
    thresholds: list[float]        # chosen on valid, per seed
    defaults: list[float]          # the untuned rule: 0.5, or "any finding" for a peer
    runs: list[str] = dataclasses.field(default_factory=list)
    curves: list[list[dict[str, float]]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def common_items(groups: list[ModelGroup], split: str) -> tuple[Items, dict[str, int]]:
    """Ids every run predicted, in the first run's order; labels must agree between runs.

    Returns the items and, per run path, how many of its ids were dropped for not being shared.
    """
    splits = [(str(r.path), r.splits[split]) for g in groups for r in g.runs]
    shared = set(splits[0][1].ids)
    for _, sp in splits[1:]:
        shared &= set(sp.ids)
    if not shared:
        raise UserError(f"the runs share no {split} ids: they were not predicted on the same data")
    first = splits[0][1]
    keep = [i for i, ident in enumerate(first.ids) if ident in shared]
    items = Items(ids=[first.ids[i] for i in keep], label=first.label[keep],
                  project=[first.project[i] for i in keep])
    for path, sp in splits[1:]:
        if not np.array_equal(_align(sp, items.ids, sp.label), items.label):
            raise UserError(f"{path}: {split} labels differ from {splits[0][0]} for the same ids")
    return items, {path: len(sp.ids) - len(shared) for path, sp in splits}


def _align(split: Split, ids: list[str], values: np.ndarray) -> np.ndarray:
    pos = {ident: i for i, ident in enumerate(split.ids)}
    return values[[pos[i] for i in ids]]


def model_entries(groups: list[ModelGroup], valid: Items, test: Items, criterion: str) -> list[Entry]:
    out = []
    for g in groups:
        v = [_align(r.splits["valid"], valid.ids, r.splits["valid"].prob) for r in g.runs]
        t = [_align(r.splits["test"], test.ids, r.splits["test"].prob) for r in g.runs]
        out.append(Entry(name=g.name, kind="model", model=g.model, seeds=g.seeds, valid=v, test=t,
                         thresholds=[choose_threshold(valid.label, s, criterion) for s in v],
                         defaults=[0.5] * len(v), runs=[str(r.path) for r in g.runs],
                         curves=[r.curves for r in g.runs]))
    return out


def peer_entry(name: str, data_dir: Path, valid: Items, test: Items, criterion: str,
               cache_dir: Path | None) -> tuple[Entry, list[str]]:
    """Run one peer on the raw valid and test functions; also return the test code for the examples."""
    funcs = {split: peer_mod.raw_functions(data_dir, split, items.ids)
             for split, items in (("valid", valid), ("test", test))}
    scores = {split: np.array(peer_mod.level_scores(peer_mod.peer_levels(name, code, cache_dir), name))
              for split, code in funcs.items()}
    cands = peer_mod.candidate_scores(name)
    chosen = choose_threshold(valid.label, scores["valid"], criterion, candidates=cands)
    entry = Entry(name=name, kind="peer", model=name, seeds=[None], valid=[scores["valid"]],
                  test=[scores["test"]], thresholds=[chosen], defaults=[min(cands)],
                  extra={"level": peer_mod.score_to_level(chosen, name),
                         "any_finding_level": peer_mod.score_to_level(min(cands), name),
                         "flagged_share_test": float(np.mean(scores["test"] >= chosen))})
    return entry, funcs["test"]


def trivial_entry(valid: Items, test: Items) -> Entry:
    """Calling every function vulnerable: the floor that F1 must be read against on this data."""
    return Entry(name="all vulnerable", kind="trivial", model="trivial", seeds=[None],
                 valid=[np.ones(len(valid.ids))], test=[np.ones(len(test.ids))], thresholds=[0.5],
                 defaults=[0.5])
