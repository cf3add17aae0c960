"""The fusion stage: out-of-fold logits, and the proof that no valid or test item reaches any fit."""
from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest
from processed_fixture import make_processed, texts_by_split

from streamguard.cli import main
from streamguard.config import FuseConfig
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.models.lexical import LexicalFeatures
from streamguard.rundir import prediction_rows, write_exp_config
from streamguard.train import fuse, lexical, registry
from streamguard.train.registry import Kind


@dataclasses.dataclass(frozen=True)
class SpyConfig:
    seed: int = 0
    epochs: int = 100


def make_spy() -> types.SimpleNamespace:
    """A fake base kind that memorises: a perfect logit (+-10) for any item it was fit on, a weak noisy one
    otherwise. Leakage into an out-of-fold prediction would therefore show as |logit| = 10."""
    fits: dict[str, set[str]] = {}

    def train(data_dir: Path, out_dir: Path, cfg: SpyConfig, train_ids: set[str] | None = None) -> Path:
        all_train = {r["id"] for r in _split(data_dir, "train")}
        ids = all_train if train_ids is None else set(train_ids)
        assert ids <= all_train, "a spy fit was given non-train ids"
        fits[str(out_dir)] = ids
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "seen.json").write_text(json.dumps({"ids": sorted(ids), "seed": cfg.seed}))
        write_exp_config(out_dir, "spy", data_dir, dataclasses.asdict(cfg))
        return Path(out_dir)

    def predict(run_dir: Path, data_dir: Path, split: str, ids: set[str] | None = None) -> list[dict]:
        record = json.loads((Path(run_dir) / "seen.json").read_text())
        seen = set(record["ids"])
        recs = ProcessedDir(data_dir).read_split(split, ids=ids)
        rng = np.random.default_rng([len(recs), record["seed"]])  # each seed its own noise
        z = [10.0 * (2 * r["label"] - 1) if r["id"] in seen else 0.4 * (2 * r["label"] - 1) + rng.normal()
             for r in recs]
        return prediction_rows(recs, np.stack([-np.array(z) / 2, np.array(z) / 2], axis=1))

    def export_files(run: Path, dst: Path) -> None:
        (dst / "seen.json").write_text((Path(run) / "seen.json").read_text())

    # the rest of the kind contract (streamguard.train.kinds): a spy has no line evidence and reads raw text
    return types.SimpleNamespace(
        train=train, predict=predict, fits=fits, CONFIG=SpyConfig, BUNDLE_FILES=("seen.json",),
        line_scores=lambda model_dir, prep_dir, codes: [np.zeros(c.count("\n") + 1) for c in codes],
        export_files=export_files, config_from_run=lambda exp: SpyConfig(**exp["hyperparameters"]),
        uses_torch=lambda model_dir: False, reads_features=lambda model_dir: False)


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    data = make_processed(tmp_path)
    spy = make_spy()
    registry.register(Kind("spy", spy, SpyConfig, "a spy kind"))
    lex_fits: list[list[str]] = []
    clf_rows: list[int] = []
    real_ft, real_fit = LexicalFeatures.fit_transform, lexical.fit_classifier
    monkeypatch.setattr(LexicalFeatures, "fit_transform",
                        lambda self, codes: lex_fits.append(list(codes)) or real_ft(self, codes))
    monkeypatch.setattr(lexical, "fit_classifier",
                        lambda x, y, c, seed: clf_rows.append(x.shape[0]) or real_fit(x, y, c, seed))
    fusion_fits = []
    real_fuse_fit = fuse.fusion_model.fit
    monkeypatch.setattr(fuse.fusion_model, "fit",
                        lambda z, y, method, seed=42: fusion_fits.append((z, y)) or real_fuse_fit(z, y, method, seed))
    lex_yaml = tmp_path / "lex.yaml"
    lex_yaml.write_text("ngram_min: 3\nngram_max: 4\nmax_features: 20000\nc_grid: [1.0]\n")
    cfg = FuseConfig(models=["lexical", "spy"], folds=3, fold_epochs=2, base_configs=[f"lexical={lex_yaml}"])
    yield types.SimpleNamespace(data=data, spy=spy, lex_fits=lex_fits, clf_rows=clf_rows,
                                fusion_fits=fusion_fits, cfg=cfg, out=tmp_path / "fusion")
    registry.unregister("spy")


def _split(data: Path, split: str) -> list[dict]:
    return ProcessedDir(data).read_split(split, keep=("id", "label"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_no_valid_or_test_item_reaches_any_fit(setup) -> None:
    s = setup
    fuse.train(s.data, s.out, s.cfg)
    texts = texts_by_split(s.data)
    train_ids, heldout_texts = set(texts["train"].values()), set(texts["valid"]) | set(texts["test"])
    # lexical: every feature and classifier fit saw train texts only (3 folds + the full model)
    assert len(s.lex_fits) == 4 and s.clf_rows == [len(f) for f in s.lex_fits]
    assert all(not (set(f) & heldout_texts) and set(f) <= set(texts["train"]) for f in s.lex_fits)
    # spy: 3 fold fits + 1 full fit, train ids only
    assert len(s.spy.fits) == 4 and all(ids <= train_ids for ids in s.spy.fits.values())
    oof = {k: _jsonl(s.out / "oof" / f"{k}.jsonl") for k in ("lexical", "spy")}
    for kind, rows in oof.items():
        assert sorted(r["id"] for r in rows) == sorted(train_ids)  # every train item once, nothing else
        for i in range(3):
            held = {r["id"] for r in rows if r["fold"] == i}
            if kind == "spy":
                fitted = s.spy.fits[str(s.out / "folds" / "spy" / f"fold-{i}")]
            else:
                fitted = {texts["train"][t] for t in s.lex_fits[i]}
            assert not held & fitted and fitted | held == train_ids  # predicted by a model that never saw it
    assert all(abs(r["logits"][1] - r["logits"][0]) < 9.0 for r in oof["spy"])  # no memorised logit in OOF
    # the fusion was fit once, on exactly the OOF logits of the train items, in id order
    (z, y), = s.fusion_fits
    ids = sorted(train_ids)
    for col, kind in enumerate(("lexical", "spy")):
        by_id = {r["id"]: r for r in oof[kind]}
        assert np.allclose(z[:, col], [by_id[i]["logits"][1] - by_id[i]["logits"][0] for i in ids])
    assert list(y) == [by_id[i]["label"] for i in ids]
    # full base models trained on all of train
    assert s.spy.fits[str(s.out / "base" / "spy")] == train_ids and set(s.lex_fits[3]) == set(texts["train"])


def test_run_dir_contract_and_fold_budget(setup) -> None:
    s = setup
    fuse.train(s.data, s.out, s.cfg)
    exp = json.loads((s.out / "exp_config.json").read_text())
    assert exp["model"] == "fusion" and exp["base_models"] == ["lexical", "spy"] and exp["folds"] == 3
    assert exp["fold_epochs"] == 2 and exp["data_identity"]["tokenizer_sha256"] == "a" * 64
    assert json.loads((s.out / "folds" / "spy" / "fold-0" / "exp_config.json").read_text())[
        "hyperparameters"]["epochs"] == 2
    meta = json.loads((s.out / "fusion.json").read_text())
    assert meta["method"] == "weighted" and len(meta["weights"]) == 2 and "threshold" in meta
    for split in ("valid", "test"):
        rows = _jsonl(s.out / "predictions" / f"{split}.jsonl")
        assert [r["id"] for r in rows] == [r["id"] for r in _split(s.data, split)]
        assert all(set(r) == {"id", "label", "prob_vulnerable", "logits", "project"} for r in rows)
    # the threshold is the best accuracy cut on valid, folded into the logits
    va = _jsonl(s.out / "predictions" / "valid.jsonl")
    acc = np.mean([(r["prob_vulnerable"] > 0.5) == r["label"] for r in va])
    margins = np.array([r["logits"][1] - r["logits"][0] for r in va])
    labels = np.array([r["label"] for r in va])
    assert acc >= max(np.mean((margins > c) == labels) for c in margins) - 1e-12


def test_rerun_resumes_finished_folds(setup) -> None:
    s = setup
    fuse.train(s.data, s.out, s.cfg)
    first = (s.out / "oof" / "lexical.jsonl").read_text()
    s.lex_fits.clear()
    s.spy.fits.clear()
    fuse.train(s.data, s.out, s.cfg)
    assert len(s.lex_fits) == 1 and list(s.spy.fits) == [str(s.out / "base" / "spy")]  # only full models
    assert (s.out / "oof" / "lexical.jsonl").read_text() == first


def test_bad_models_fail_before_training(tmp_path, monkeypatch, capsys) -> None:
    data = make_processed(tmp_path, sizes={"train": 30, "valid": 10, "test": 10})
    monkeypatch.setitem(registry.KINDS, "ghost", Kind("ghost", "streamguard.train.ghost_kind", "LexicalConfig", "?"))
    with pytest.raises(UserError, match="'ghost' is not available"):
        fuse.train(data, tmp_path / "f", FuseConfig(models=["lexical", "ghost"]))
    for models, msg in (("lexical,lexical", "twice"), ("fusion", "cannot be a base"), ("nope", "unknown")):
        assert main(["fuse", "--models", models, "--data", str(data), "--out", str(tmp_path / "f")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0]
    assert not (tmp_path / "f" / "folds").exists()


def test_a_finished_full_run_serves_as_base_model_and_fold_runs_are_refused(setup) -> None:
    s = setup
    full = s.spy.train(s.data, s.out.parent / "spy-full", SpyConfig())
    (full / "predictions").mkdir()
    (full / "predictions" / "valid.jsonl").write_text("")
    cfg = dataclasses.replace(s.cfg, base_runs=[f"spy={full}"])
    fuse.train(s.data, s.out, cfg)
    # the spy's full model was not trained again: 3 fold fits + the reused run's own fit
    assert sorted(s.spy.fits) == sorted([str(full)] + [str(s.out / "folds" / "spy" / f"fold-{i}") for i in range(3)])
    meta = json.loads((s.out / "fusion.json").read_text())
    # the reused run is copied into the fusion dir, which never points outside itself
    assert meta["base_runs"]["spy"] == "base/spy" and (s.out / "base" / "spy" / "exp_config.json").is_file()
    assert len(_jsonl(s.out / "predictions" / "test.jsonl")) == len(_split(s.data, "test"))
    fold_run = s.out / "folds" / "spy" / "fold-0"
    exp = json.loads((fold_run / "exp_config.json").read_text())
    (fold_run / "exp_config.json").write_text(json.dumps({**exp, "train_ids_given": True}))
    with pytest.raises(UserError, match="subset of train"):
        fuse.reused_base_runs(dataclasses.replace(s.cfg, base_runs=[f"spy={fold_run}"]), s.data)


def test_base_seeds_make_one_base_model_of_averaged_seed_logits(setup) -> None:
    s = setup
    registry.register(Kind("spy", s.spy, SpyConfig, "a spy kind", neural=True))  # seeds apply to neural kinds
    cfg = dataclasses.replace(s.cfg, base_seeds=[1, 2])
    fuse.train(s.data, s.out, cfg)
    # every spy fold and full model exists once per seed, each fitted on the right ids with its own seed
    for seed in (1, 2):
        for i in range(3):
            assert str(s.out / "folds" / "spy" / f"seed-{seed}" / f"fold-{i}") in s.spy.fits
        assert json.loads((s.out / "base/spy" / f"seed-{seed}" / "seen.json").read_text())["seed"] == seed
    assert not (s.out / "folds" / "lexical" / "seed-1").exists()  # lexical is deterministic: one model
    # the OOF logit of the spy is the mean of its two seeds' fold logits
    oof = {r["id"]: r for r in _jsonl(s.out / "oof" / "spy.jsonl")}
    members = [{r["id"]: r for i in range(3) for r in _jsonl(s.out / f"folds/spy/seed-{seed}/fold-{i}/oof.jsonl")}
               for seed in (1, 2)]
    margin = lambda r: r["logits"][1] - r["logits"][0]  # noqa: E731
    assert all(np.isclose(margin(oof[i]), (margin(members[0][i]) + margin(members[1][i])) / 2) for i in oof)
    assert any(not np.isclose(margin(members[0][i]), margin(members[1][i])) for i in oof)  # the seeds differ
    # test predictions: the fusion's weights applied to the averaged seed logits of the full models
    meta = json.loads((s.out / "fusion.json").read_text())
    z = {k: {r["id"]: margin(r) for r in fuse.seeds.predict_ensemble(k, s.out / "base" / k, s.data, "test")}
         for k in ("lexical", "spy")}
    for r in _jsonl(s.out / "predictions" / "test.jsonl"):
        fused = meta["weights"][0] * z["lexical"][r["id"]] + meta["weights"][1] * z["spy"][r["id"]] + meta["bias"]
        assert np.isclose(margin(r), fused - meta["threshold"])
    assert json.loads((s.out / "exp_config.json").read_text())["base_seeds"] == {"lexical": [None], "spy": [1, 2]}


def test_a_reused_base_run_must_be_the_ensemble_the_folds_use(setup, tmp_path) -> None:
    s = setup
    registry.register(Kind("spy", s.spy, SpyConfig, "a spy kind", neural=True))
    for seed in (1, 2):
        s.spy.train(s.data, tmp_path / "spy-runs" / f"seed-{seed}", SpyConfig(seed=seed))
        (tmp_path / "spy-runs" / f"seed-{seed}" / "predictions").mkdir()
        (tmp_path / "spy-runs" / f"seed-{seed}" / "predictions" / "valid.jsonl").write_text("")
    reuse = [f"spy={tmp_path / 'spy-runs'}"]
    with pytest.raises(UserError, match=r"holds seeds \[1, 2\].*base_seeds"):
        fuse.train(s.data, s.out, dataclasses.replace(s.cfg, base_runs=reuse))
    fuse.train(s.data, s.out, dataclasses.replace(s.cfg, base_runs=reuse, base_seeds=[2, 1]))
    assert sorted(p.name for p in (s.out / "base" / "spy").iterdir()) == ["seed-1", "seed-2"]  # copied whole
