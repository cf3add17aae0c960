"""Training on fix pairs (train/pairs.py): batches keep a pair together, the margin ranking loss orders a planted
pair that the classification loss alone orders the other way (the shared engine and the lexical kind), and a
weight of 0 trains exactly as before."""
from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from scipy import sparse
from torch import nn

from streamguard.config import EngineConfig, GNNConfig, LexicalConfig
from streamguard.models.lexical import fit_classifier
from streamguard.train import engine, registry
from streamguard.train.batches import paired_batches
from streamguard.train.pairs import PairBatchSampler, pair_groups, pair_margin_loss, with_difference_rows


@pytest.mark.parametrize("lengths", [None, [i % 7 for i in range(40)]])
def test_batches_keep_each_pair_together_and_hold_every_item_once(lengths) -> None:
    groups = [-1] * 40
    for g, (a, b) in enumerate([(0, 39), (5, 6), (10, 30), (21, 2)]):
        groups[a] = groups[b] = g
    g = torch.Generator().manual_seed(3)
    batches = paired_batches(torch.randperm(40, generator=g).tolist(), groups, lengths, 6, 2, g)
    assert sorted(i for b in batches for i in b) == list(range(40))
    assert all(len(b) <= 6 for b in batches)
    where = {i: k for k, b in enumerate(batches) for i in b}
    assert all(where[a] == where[b] for a, b in [(0, 39), (5, 6), (10, 30), (21, 2)])
    sampler = PairBatchSampler(np.array(groups), seed=1, batch_size=6, lengths=lengths)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and len(sampler) == len(list(sampler))  # a new order each epoch, len exact


def test_margin_loss_is_the_hinge_on_the_vulnerable_margin_of_each_pair() -> None:
    logits = torch.tensor([[0.0, 2.0], [0.0, 0.5], [1.0, 0.0], [0.0, 3.0]])  # z = 2, 0.5, -1, 3
    labels = torch.tensor([1, 0, 0, 1])
    groups = torch.tensor([0, 0, 1, -1])  # item 2's pair has no vulnerable side in the batch; item 3 is unpaired
    assert torch.isclose(pair_margin_loss(logits, labels, groups, margin=2.0), torch.tensor(0.5))  # 2 - (2 - 0.5)
    assert pair_margin_loss(logits, labels, groups, margin=1.0).item() == 0.0
    assert pair_margin_loss(logits, labels, torch.tensor([-1, -1, 1, 2]), margin=1.0) is None


# --- a planted pair: 20 items say feature A is clean and B vulnerable; the pair says the opposite ------------
X = np.array([[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 10 + [[1.0, 0.0], [0.0, 1.0]])
Y = np.array([0] * 10 + [1] * 10 + [1, 0])
GROUPS = np.array([-1] * 20 + [0, 0])


class _Planted:
    def __init__(self) -> None:
        self.x, self.labels = torch.tensor(X, dtype=torch.float32), torch.tensor(Y)
        self.ids, self.projects = [str(i) for i in range(len(Y))], [""] * len(Y)

    def __len__(self) -> int:
        return len(Y)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, items: list[int]) -> dict:
        idx = torch.tensor(items)
        return {"inputs": {"x": self.x[idx]}, "label": self.labels[idx], "weight": torch.ones(len(items)),
                "index": idx}


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _engine_margin(weight: float) -> float:
    cfg = EngineConfig(lr=0.05, weight_decay=0.0, scheduler="none", seed=0, batch_size=8, pair_loss_weight=weight)
    engine.seed_all(cfg)
    model, ds = _Linear(), _Planted()
    groups = GROUPS if weight > 0 else None
    trainer = pl.Trainer(max_epochs=40, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(engine.LitClassifier(model, cfg, groups), engine._loader(ds, cfg.batch_size, True, cfg, groups))
    with torch.no_grad():
        z = model(torch.tensor(X[20:], dtype=torch.float32))
    return float((z[0, 1] - z[0, 0]) - (z[1, 1] - z[1, 0]))  # vulnerable side minus fixed side


def test_the_engines_pair_loss_orders_a_planted_pair_the_classification_loss_orders_wrongly() -> None:
    assert _engine_margin(0.0) < 0  # alone, the classification loss follows the 20 items
    assert _engine_margin(20.0) > 0


def test_the_lexical_pairwise_rows_order_a_planted_pair() -> None:
    x = sparse.csr_matrix(X)

    def margin(weight: float) -> float:
        xa, ya, wa = with_difference_rows(x, Y, None, GROUPS, weight) if weight else (x, Y, None)
        clf = fit_classifier(xa, ya, 1.0, 0, wa)
        d = clf.decision_function(x[20:])
        return float(d[0] - d[1])
    assert margin(0.0) < 0 < margin(20.0)


# --- the kinds on real Devign functions with raw pair_ids ----------------------------------------------------
@pytest.fixture(scope="module")
def paired_data(raw_small, tmp_path_factory) -> Path:
    """raw_small preprocessed, then pair_ids added to its raw train rows: each vulnerable function paired with
    the next clean one of its project (as Big-Vul and the Debian pool carry them)."""
    from streamguard.config import PreprocessConfig
    from streamguard.data.ingest import import_codexglue
    from streamguard.features.preprocess import preprocess
    root = tmp_path_factory.mktemp("paired")
    import_codexglue(raw_small, root / "raw")
    preprocess(root / "raw", root / "processed", PreprocessConfig(tokenizer="bpe", bpe_vocab_size=2000, workers=1))
    path = root / "raw" / "train.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    open_vuln: dict[str, int] = {}
    for k, row in enumerate(rows):
        if row["target"] == 1 and row["project"] not in open_vuln:
            open_vuln[row["project"]] = k
        elif row["target"] == 0 and row["project"] in open_vuln:
            rows[open_vuln.pop(row["project"])]["pair_id"] = row["pair_id"] = f"p{k}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "processed"


def _predictions(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]


def test_pair_groups_join_the_raw_pair_ids(paired_data: Path) -> None:
    from streamguard.features.processed import ProcessedDir
    recs = ProcessedDir(paired_data).read_split("train")
    groups = pair_groups(paired_data, recs)
    assert groups.max() >= 3
    for g in range(groups.max() + 1):
        assert sorted(recs[k]["label"] for k in np.flatnonzero(groups == g)) == [0, 1]


@pytest.mark.parametrize("kind,cfg", [
    ("lexical", LexicalConfig(ngram_min=3, ngram_max=4, max_features=20000, c_grid=[1.0])),
    ("gnn", GNNConfig(embed_dim=16, hidden=16, layers=2, head_hidden=16, epochs=2, batch_size=8,
                      tracking_uri="off", threads=1, seed=7, deterministic=True)),
])
def test_weight_zero_trains_as_before_and_a_weight_changes_training(paired_data, kind, cfg, tmp_path) -> None:
    import dataclasses
    train = registry.get(kind).train
    before = _predictions(train(paired_data, tmp_path / "default", cfg))
    zero = _predictions(train(paired_data, tmp_path / "zero", dataclasses.replace(cfg, pair_loss_weight=0.0)))
    assert zero == before  # bit for bit
    ranked = _predictions(train(paired_data, tmp_path / "on", dataclasses.replace(cfg, pair_loss_weight=5.0)))
    assert [r["id"] for r in ranked] == [r["id"] for r in before]
    assert [r["prob_vulnerable"] for r in ranked] != [r["prob_vulnerable"] for r in before]
