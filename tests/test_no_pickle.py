"""Issue 14 item 1: loading a run directory (lexical or fusion) never executes a pickle."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from processed_fixture import make_processed

from streamguard.config import LexicalConfig
from streamguard.errors import UserError
from streamguard.models.lexical import LexicalFeatures, fit_classifier, logits
from streamguard.models.lexical_store import ARRAYS, PARAMS, load_lexical, save_lexical
from streamguard.train import lexical
from streamguard.train.predict import predict_run

FAST = {"ngram_min": 3, "ngram_max": 4, "max_features": 20000, "c_grid": [1.0]}


class _Exploit:
    """A pickle whose loading would create ``marker`` (as ``os.system`` would run any command)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def lexical_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nopickle")
    data = make_processed(root)
    return data, lexical.train(data, root / "run", LexicalConfig(**FAST))


def test_run_holds_no_pickle_and_reloads_identically(lexical_run):
    data, run = lexical_run
    assert not list(run.rglob("*.pkl")) and (run / ARRAYS).is_file() and (run / PARAMS).is_file()
    saved = [json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    again = lexical.predict(run, data, "test")
    np.testing.assert_allclose([r["prob_vulnerable"] for r in again], [r["prob_vulnerable"] for r in saved],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("analyzer", ["char", "code", "union"])
def test_store_round_trip_every_analyzer(tmp_path, analyzer):
    codes = ["int a = b;\x00", "char *p = q; // é", "int a = b;", "if (x) free(p);", "free(p); free(p);"] * 3
    y = np.array([0, 1, 0, 1, 1] * 3)
    feats = LexicalFeatures(analyzer, 2, 3, 1000, True)
    clf = fit_classifier(feats.fit_transform(codes), y, 1.0, 0)
    save_lexical(tmp_path, feats, clf)
    feats2, clf2 = load_lexical(tmp_path)
    new = ["free(q); int a;", "zzz", codes[1]]
    np.testing.assert_array_equal(logits(clf2, feats2.transform(new)), logits(clf, feats.transform(new)))


def test_crafted_pickle_in_run_dir_never_runs(lexical_run, tmp_path):
    data, run = lexical_run
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    shutil.copy(run / "exp_config.json", evil / "exp_config.json")  # a real run's identity, copied
    with open(evil / "model.pkl", "wb") as fh:
        pickle.dump(_Exploit(marker), fh)
    with pytest.raises(UserError, match="never loaded"):
        predict_run(evil, data, "test", tmp_path / "out.jsonl")
    assert not marker.exists()
    # next to a real model, the pickle is ignored and the real model scores
    shutil.copy(run / ARRAYS, evil / ARRAYS)
    shutil.copy(run / PARAMS, evil / PARAMS)
    assert predict_run(evil, data, "test", tmp_path / "out.jsonl") > 0
    assert not marker.exists()


def test_tampered_arrays_are_refused(lexical_run, tmp_path):
    _, run = lexical_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    blob = bytearray((copy / ARRAYS).read_bytes())
    blob[-1] ^= 0xFF
    (copy / ARRAYS).write_bytes(bytes(blob))
    with pytest.raises(UserError, match="sha256"):
        load_lexical(copy)


def test_fusion_base_run_outside_the_run_dir_is_refused(lexical_run, tmp_path):
    data, run = lexical_run
    fusion = tmp_path / "fusion"
    fusion.mkdir()
    exp = json.loads((run / "exp_config.json").read_text())
    exp["model"] = "fusion"
    (fusion / "exp_config.json").write_text(json.dumps(exp))
    meta = {"models": ["lexical"], "base_runs": {"lexical": os.path.relpath(run, fusion)}, "method": "weighted",
            "weights": [1.0], "bias": 0.0, "threshold": 0.0}
    (fusion / "fusion.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="outside"):
        predict_run(fusion, data, "test", tmp_path / "f.jsonl")
    # inside the fusion dir it is fine
    shutil.copytree(run, fusion / "base" / "lexical")
    meta["base_runs"]["lexical"] = "base/lexical"
    (fusion / "fusion.json").write_text(json.dumps(meta))
    assert predict_run(fusion, data, "test", tmp_path / "f.jsonl") > 0
