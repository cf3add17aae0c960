"""The lexical kind: features, the C chosen on valid, the run-dir contract, raw-code use, fold mode."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from processed_fixture import make_processed, texts_by_split

from streamguard.cli import main
from streamguard.config import LexicalConfig
from streamguard.errors import UserError
from streamguard.features.processed import ProcessedDir
from streamguard.models.lexical import LexicalFeatures, code_tokens, normalise, strip_comments
from streamguard.train import lexical

FAST = {'ngram_min': 3, 'ngram_max': 4, 'max_features': 20000, 'c_grid': [0.3, 3.0]}


def test_strip_comments_keeps_literals() -> None:
    code = 'int f() { /* gone */ char *s = "// kept /* kept */"; // gone too\n return 0; }'
    out = strip_comments(code)
    assert "gone" not in out and '"// kept /* kept */"' in out


def test_code_tokens_and_normalise() -> None:
    assert code_tokens("if (p->len >= 0x1F) x++;") == ["if", "(", "p", "->", "len", ">=", "0x1F", ")", "x",
                                                        "++", ";"]
    assert normalise("a;\n\n\n\n  b; // c\n", strip=True, collapse=True) == "a;\nb;"
    assert normalise("a;\n\n  b; // c\n", strip=False) == "a;\n\n  b; // c\n"


@pytest.mark.parametrize("analyzer", ["char", "code", "union"])
def test_features_shape_and_unknown_text(analyzer: str) -> None:
    feats = LexicalFeatures(analyzer, 2, 3, 1000, True)
    x = feats.fit_transform(["int a = b;", "char *p = q;", "int a = b;"])
    assert x.shape == (3, feats.n_features) and feats.n_features > 0
    assert feats.transform(["zzzz"]).shape == (1, feats.n_features)


def test_bad_analyzer_is_user_error() -> None:
    with pytest.raises(UserError, match="analyzer"):
        LexicalFeatures("words", 1, 2, 100, True).fit_transform(["a"])


def test_train_writes_contract_and_uses_raw_code(tmp_path, monkeypatch) -> None:
    data = make_processed(tmp_path)
    seen = []
    real = LexicalFeatures.fit_transform
    monkeypatch.setattr(LexicalFeatures, "fit_transform", lambda self, codes: seen.append(list(codes)) or
                        real(self, codes))
    run = lexical.train(data, tmp_path / "run", LexicalConfig(**FAST))
    exp = json.loads((run / "exp_config.json").read_text())
    assert exp["model"] == "lexical" and exp["selected_C"] in FAST["c_grid"] and len(exp["c_trials"]) == 2
    assert exp["data_identity"]["tokenizer_sha256"] == "a" * 64 and "train.jsonl" in exp["data_sha256"]
    # the fit saw the whole raw functions, not the 600-character processed prefixes
    assert sorted(seen[0]) == sorted(texts_by_split(data)["train"])
    for split in ("valid", "test"):
        rows = [json.loads(x) for x in (run / "predictions" / f"{split}.jsonl").read_text().splitlines()]
        ids = [json.loads(x)["id"] for x in (data / f"{split}.jsonl").read_text().splitlines()]
        assert [r["id"] for r in rows] == ids
        for r in rows:
            assert set(r) == {"id", "label", "prob_vulnerable", "logits", "project"}
            z = r["logits"][1] - r["logits"][0]
            assert math.isclose(r["prob_vulnerable"], 1 / (1 + math.exp(-z)), rel_tol=1e-9)
    # predict from disk gives what train wrote
    again = lexical.predict(run, data, "test")
    written = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    assert np.allclose([r["logits"] for r in again], [r["logits"] for r in written])


def test_chosen_c_has_best_valid_accuracy(tmp_path) -> None:
    data = make_processed(tmp_path)
    run = lexical.train(data, tmp_path / "run", LexicalConfig(**{**FAST, "c_grid": [0.01, 1.0, 100.0]}))
    exp = json.loads((run / "exp_config.json").read_text())
    best = max(t["accuracy"] for t in exp["c_trials"])
    chosen = next(t for t in exp["c_trials"] if t["C"] == exp["selected_C"])
    assert chosen["accuracy"] == best


def test_without_the_raw_split_says_so_and_the_processed_code_still_trains(tmp_path) -> None:
    data = make_processed(tmp_path)
    for split in ("train", "valid", "test"):
        (tmp_path / "raw" / f"{split}.jsonl").unlink()
    with pytest.raises(UserError, match="raw split file not found"):
        lexical.train(data, tmp_path / "run", LexicalConfig(**FAST))
    seen = []
    real = LexicalFeatures.fit_transform
    LexicalFeatures.fit_transform = lambda self, codes: seen.append(list(codes)) or real(self, codes)
    try:
        lexical.train(data, tmp_path / "run", LexicalConfig(**FAST, code_source="processed"))
    finally:
        LexicalFeatures.fit_transform = real
    processed = [r["code"] for r in ProcessedDir(data).read_split("train")]
    assert seen[0] == processed


def test_fold_mode_fits_only_given_ids(tmp_path, monkeypatch) -> None:
    data = make_processed(tmp_path)
    by_text = texts_by_split(data)["train"]
    keep = set(sorted(by_text.values())[::2])
    seen = []
    real = LexicalFeatures.fit_transform
    monkeypatch.setattr(LexicalFeatures, "fit_transform", lambda self, codes: seen.append(list(codes)) or
                        real(self, codes))
    lexical.train(data, tmp_path / "run", LexicalConfig(**FAST), train_ids=keep)
    assert {by_text[t] for t in seen[0]} == keep and len(seen[0]) == len(keep)
    with pytest.raises(UserError, match="not in"):
        lexical.train(data, tmp_path / "run2", LexicalConfig(**FAST), train_ids={"CODEXGLUE-TRAIN-99999"})


def test_cli_train_lexical(tmp_path, capsys) -> None:
    data = make_processed(tmp_path)
    cfg = tmp_path / "lex.yaml"
    cfg.write_text("analyzer: code\nc_grid: [1.0]\n")
    assert main(["train", "lexical", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(cfg),
                 "--set", "max_features=5000"]) == 0
    exp = json.loads((tmp_path / "run" / "exp_config.json").read_text())
    assert exp["hyperparameters"]["analyzer"] == "code" and exp["hyperparameters"]["max_features"] == 5000
    capsys.readouterr()  # the training's own log lines (C trials) are not part of the error
    assert main(["train", "lexical", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_predict_loads_the_model_once_until_its_files_are_written_again(tmp_path, monkeypatch) -> None:
    """scan predicts chunk after chunk: the model is read once, and read again once it is replaced."""
    from streamguard.atomic import write_text
    from streamguard.models.lexical_store import PARAMS

    data = make_processed(tmp_path)
    run = lexical.train(data, tmp_path / "run", LexicalConfig(**FAST))
    loads = []
    real = lexical.load_lexical
    monkeypatch.setattr(lexical, "load_lexical", lambda d: loads.append(d) or real(d))
    first = lexical.predict(run, data, "test")
    lexical.predict(run, data, "valid")
    assert len(loads) == 1
    write_text(run / PARAMS, (run / PARAMS).read_text())  # replaced (a new file), as a rerun replaces it
    assert lexical.predict(run, data, "test") == first and len(loads) == 2
