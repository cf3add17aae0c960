"""One MLflow store per workspace: every kind logs to it, and a fusion's fold and base runs nest under it."""
from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient
from processed_fixture import make_processed

from streamguard.config import FuseConfig, LexicalConfig
from streamguard.train import fuse, lexical, mlflow_store


def test_store_uri_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_store.store_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"  # beside runs/
    assert mlflow_store.short_uri(mlflow_store.store_uri()) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    assert mlflow_store.store_uri() == "sqlite:////elsewhere/m.db"
    assert mlflow_store.store_uri("http://tracking:5000") == "http://tracking:5000"
    assert mlflow_store.store_uri("off") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "OFF")
    assert mlflow_store.store_uri() is None


def _runs(uri: str) -> dict[str, object]:
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("streamguard")
    return {r.info.run_name: r for r in c.search_runs([exp.experiment_id])}


def test_a_small_fusion_lists_its_runs_nested_in_the_one_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    data = make_processed(tmp_path)
    (tmp_path / "lex.yaml").write_text("ngram_min: 3\nngram_max: 3\nmax_features: 5000\nc_grid: [1.0]\n")
    lexical.train(data, tmp_path / "runs" / "lexical", LexicalConfig(ngram_min=3, ngram_max=3, c_grid=[1.0]))
    cfg = FuseConfig(models=["lexical"], folds=2, base_configs=[f"lexical={tmp_path / 'lex.yaml'}"])
    out = tmp_path / "runs" / "fusion"
    fuse.train(data, out, cfg)

    runs = _runs(uri)
    assert set(runs) == {"lexical", "fusion", "lexical/fold-0", "lexical/fold-1", "base/lexical"}
    fusion_id = (out / "mlflow_run_id").read_text().strip()
    assert runs["fusion"].info.run_id == fusion_id
    for name in ("lexical/fold-0", "lexical/fold-1", "base/lexical"):
        assert runs[name].data.tags[mlflow_store.PARENT_TAG] == fusion_id
        assert runs[name].data.tags[mlflow_store.KIND_TAG] == "lexical"
    for name in ("lexical", "fusion"):
        assert mlflow_store.PARENT_TAG not in runs[name].data.tags
    for run in runs.values():  # parameters and metrics for every kind, under the engine's metric names
        assert run.info.status == "FINISHED" and run.data.params["seed"] == "42"
        assert 0.0 <= run.data.metrics["val_accuracy"] <= 1.0 and "val_roc_auc" in run.data.metrics
    assert runs["fusion"].data.params["folds"] == "2" and "weight_lexical" in runs["fusion"].data.metrics
    assert runs["lexical"].data.params["c_grid"] == "[1.0]" and runs["lexical"].data.metrics["features"] > 0

    fuse.train(data, out, cfg)  # a rerun continues the same runs: none is added
    assert {n: r.info.run_id for n, r in _runs(uri).items()} == {n: r.info.run_id for n, r in runs.items()}
    assert not list(Path(tmp_path).rglob("runs/**/mlflow.db"))
