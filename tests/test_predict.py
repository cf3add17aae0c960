"""``streamguard predict``: any kind (lexical, fusion) on other data, refused when the data's identity differs."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from processed_fixture import make_processed

from streamguard.cli import main
from streamguard.config import LexicalConfig
from streamguard.errors import UserError
from streamguard.train import lexical, registry
from streamguard.train.registry import Kind


@dataclasses.dataclass(frozen=True)
class CodeLexicalConfig(LexicalConfig):
    """A second real, cheap kind for fusion: the code-token view of the lexical model."""
    analyzer: str = "code"


FAST = "ngram_min: 3\nngram_max: 4\nmax_features: 20000\nc_grid: [1.0]\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    data = make_processed(root)
    # "other" data: the same tokenizer and vocabulary, different functions (the sample's test rows as train)
    other = make_processed(root / "o", name="other", sizes={"train": 10, "valid": 10, "test": 60})
    (root / "lex.yaml").write_text(FAST)
    assert main(["train", "lexical", "--data", str(data), "--out", str(root / "lex"), "--config",
                 str(root / "lex.yaml")]) == 0
    registry.register(Kind("lexcode", lexical, CodeLexicalConfig, "code-token lexical"))
    try:
        assert main(["fuse", "--models", "lexical,lexcode", "--data", str(data), "--out", str(root / "fus"),
                     "--folds", "2", "--method", "stacker", "--set", f"base_configs=lexical={root / 'lex.yaml'}"]) == 0
        yield root, data, other
    finally:
        registry.unregister("lexcode")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("run", ["lex", "fus"])
def test_predict_reproduces_the_runs_own_test_predictions(trained, run) -> None:
    root, data, _ = trained
    out = root / f"{run}-again.jsonl"
    assert main(["predict", "--run", str(root / run), "--data", str(data), "--out", str(out)]) == 0
    again, written = _jsonl(out), _jsonl(root / run / "predictions" / "test.jsonl")
    assert [r["id"] for r in again] == [r["id"] for r in written]
    assert all(a["logits"] == pytest.approx(w["logits"]) and a.keys() == w.keys() | {"threshold", "verdict"}
               for a, w in zip(again, written))


def test_predict_other_data_and_split(trained) -> None:
    root, _, other = trained
    out = root / "other.jsonl"
    assert main(["predict", "--run", str(root / "fus"), "--data", str(other), "--split", "test",
                 "--out", str(out)]) == 0
    rows = _jsonl(out)
    assert [r["id"] for r in rows] == [json.loads(x)["id"] for x in (other / "test.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(0.0 <= r["prob_vulnerable"] <= 1.0 for r in rows)
    assert main(["predict", "--run", str(root / "lex"), "--data", str(other), "--split", "valid",
                 "--out", str(root / "v.jsonl")]) == 0
    assert len(_jsonl(root / "v.jsonl")) == 10


@pytest.mark.parametrize("change, what", [({"tokenizer_sha": "b" * 64}, "tokenizer"),
                                          ({"node_labels": ["<unk>", "x"]}, "node vocabulary")])
@pytest.mark.parametrize("run", ["lex", "fus"])
def test_predict_refuses_other_preprocessing(trained, tmp_path, capsys, change, what, run) -> None:
    root = trained[0]
    foreign = make_processed(tmp_path, sizes={"train": 5, "valid": 5, "test": 5}, **change)
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--run", str(root / run), "--data", str(foreign), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"another {what}" in err[0] and "--reuse-from" in err[0]
    assert not out.exists()


def test_predict_user_errors(trained, tmp_path) -> None:
    root, data, _ = trained
    from streamguard.train.predict import predict_run
    with pytest.raises(UserError, match="exp_config.json is missing"):
        predict_run(tmp_path, data, "test", tmp_path / "x.jsonl")
    with pytest.raises(UserError, match="not a processed dataset"):
        predict_run(root / "lex", tmp_path, "test", tmp_path / "x.jsonl")
    exp = json.loads((root / "lex" / "exp_config.json").read_text())
    bare = tmp_path / "old-run"
    bare.mkdir()
    (bare / "exp_config.json").write_text(json.dumps({**exp, "data_identity": None}))
    with pytest.raises(UserError, match="no data_identity"):
        predict_run(bare, data, "test", tmp_path / "x.jsonl")


def test_registry_unknown_and_missing_kinds(monkeypatch) -> None:
    with pytest.raises(UserError, match="unknown model kind 'svm'"):
        registry.get("svm")
    ghost = Kind("ghost", "streamguard.train.no_such_module", "LexicalConfig", "?")
    monkeypatch.setitem(registry.KINDS, "ghost", ghost)
    with pytest.raises(UserError, match="model kind 'ghost' is not available"):
        registry.get("ghost")
    assert registry.get("lexical") is lexical and registry.config_class("lexical") is LexicalConfig
