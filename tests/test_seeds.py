"""--seeds on training commands (OUT/seed-N, resumable, evaluation groups them) and lexical sample weights."""
import argparse
import json
from pathlib import Path

import pytest
from processed_fixture import make_processed

from streamguard.cli import main
from streamguard.config import LexicalConfig
from streamguard.evaluate.runs import group_runs
from streamguard.train.seeds import parse_seeds, train_seeds

FAST = "analyzer: code\nngram_min: 1\nngram_max: 1\nmax_features: 5000\nc_grid: [1.0]\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("seeds")
    (tmp / "lex.yaml").write_text(FAST)
    return make_processed(tmp)


def test_cli_seeds_make_one_run_per_seed_and_resume(data, tmp_path, caplog):
    out = tmp_path / "lex"
    argv = ["train", "lexical", "--data", str(data), "--out", str(out), "--config", str(data.parent / "lex.yaml"),
            "--seeds", "3,1"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed-1", "seed-3"]
    assert [json.loads((out / f"seed-{s}/exp_config.json").read_text())["seed"] for s in (1, 3)] == [1, 3]
    stamp = (out / "seed-1/predictions/test.jsonl").stat().st_mtime_ns
    assert main(argv) == 0
    assert (out / "seed-1/predictions/test.jsonl").stat().st_mtime_ns == stamp  # finished seeds are skipped
    (group,) = group_runs([f"lexical={out}/seed-*"])
    assert [r.seed for r in group.runs] == [1, 3]


def test_python_entry_point_never_mutates_the_config(data, tmp_path):
    cfg = LexicalConfig(analyzer="code", ngram_min=1, ngram_max=1, max_features=5000, c_grid=[1.0], seed=42)
    runs = train_seeds("lexical", data, tmp_path / "r", cfg, [5])
    assert cfg.seed == 42 and json.loads((runs[0] / "exp_config.json").read_text())["seed"] == 5


@pytest.mark.parametrize("spec", ["", "1,1", "a,b", "-1"])
def test_bad_seed_lists_are_user_errors(spec):
    from streamguard.errors import UserError
    with pytest.raises(UserError):
        parse_seeds(spec)


def test_seed_and_seeds_together_are_refused(data, tmp_path, capsys):
    assert main(["train", "gnn", "--data", str(data), "--out", str(tmp_path / "g"), "--seed", "1",
                 "--seeds", "1,2"]) == 2
    assert "not both" in capsys.readouterr().err


def test_lexical_reads_denoise_sample_weights(data, tmp_path):
    train_rows = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines()]
    weights = tmp_path / "w.jsonl"
    weights.write_text("".join(json.dumps({"id": r["id"], "weight": 0.05}) + "\n"
                               for r in train_rows if r["label"]))
    cfg = data.parent / "lex.yaml"
    probs = {}
    for name, extra in (("plain", []), ("weighted", ["--set", f"sample_weights={weights}"])):
        assert main(["train", "lexical", "--data", str(data), "--out", str(tmp_path / name), "--config", str(cfg),
                     *extra]) == 0
        rows = [json.loads(x) for x in (tmp_path / name / "predictions/test.jsonl").read_text().splitlines()]
        probs[name] = sum(r["prob_vulnerable"] for r in rows) / len(rows)
    assert probs["weighted"] < probs["plain"] - 0.1  # every vulnerable train item weighs 0.05


def test_seeds_with_register_registers_every_seed_run(data, tmp_path, capsys, monkeypatch):
    """The bug this replaces: the wrapped command trained every seed, then exited 2 ("OUT is not a run
    directory") because it registered OUT itself, the folder of the seed runs."""
    import mlflow

    from streamguard.cloud.model_registry import list_versions
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    out = tmp_path / "lex"
    assert main(["train", "lexical", "--data", str(data), "--out", str(out), "--config", str(data.parent / "lex.yaml"),
                 "--seeds", "1,2", "--register", "lex-seeds"]) == 0
    printed = capsys.readouterr().out
    assert "registered lex-seeds version 1" in printed and "registered lex-seeds version 2" in printed
    rows = list_versions(store, "lex-seeds")
    assert [r["version"] for r in rows] == [2, 1] and {r["kind"] for r in rows} == {"lexical"}
    client = mlflow.MlflowClient(store)
    by_version = sorted(rows, key=lambda r: r["version"])
    sources = [client.get_run(r["run_id"]).data.tags["source_run_dir"] for r in by_version]
    assert sources == [str(out / "seed-1"), str(out / "seed-2")]


def test_fuse_and_every_train_kind_declare_seeds_and_register():
    from streamguard.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    train = next(a for a in sub["train"]._actions if isinstance(a, argparse._SubParsersAction)).choices
    for parser in [*train.values(), sub["fuse"]]:
        flags = {f for a in parser._actions for f in a.option_strings}
        assert {"--seeds", "--register", "--config", "--set"} <= flags, parser.prog
