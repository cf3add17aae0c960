"""The kind contract (streamguard.train.kinds): every registered kind, the fusion included, trains quickly on real
Devign functions, exports, loads as a bundle and scans a C tree with line evidence, scoring each function as
its run predicted it; a kind missing a part of the contract is refused in one line; no other code names a kind."""
from __future__ import annotations

import ast
import dataclasses
import json
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

import streamguard
from streamguard.config import AnalysersConfig, FuseConfig, GNNConfig, LexicalConfig, TransformerConfig, to_dict
from streamguard.errors import UserError
from streamguard.scan.bundle import export_run
from streamguard.train import kinds, registry
from streamguard.train.registry import Kind

NEURAL = {"epochs": 1, "batch_size": 8, "tracking_uri": "off", "threads": 1, "seed": 7}
# A quick config per kind: a kind added to the registry without one here fails this test, as it should.
QUICK = {
    "lexical": LexicalConfig(ngram_min=3, ngram_max=4, max_features=20000, c_grid=[1.0]),
    "analysers": AnalysersConfig(top_rules=8, c_grid=[1.0]),
    "gnn": GNNConfig(embed_dim=16, hidden=16, layers=2, head_hidden=16, **NEURAL),
    "transformer": TransformerConfig(model="tiny", tiny_layers=1, tiny_hidden=32, tiny_heads=2,
                                     tiny_intermediate=64, max_length=96, lr=1e-3, **NEURAL),
}
FUSION_BASES = ["lexical", "gnn"]
N_FUNCS = 5
SRC = Path(__file__).resolve().parents[1] / "src" / "streamguard"


def _config(kind: str, root: Path):
    if kind in QUICK:
        return QUICK[kind]
    assert not registry.entry(kind).trainable, f"add a quick config for the kind '{kind}' to QUICK"
    paths = []
    for base in FUSION_BASES:  # the stacking kind: two folds over quick base models
        (root / f"{base}.yaml").write_text(yaml.safe_dump(to_dict(QUICK[base])))
        paths.append(f"{base}={root / f'{base}.yaml'}")
    return FuseConfig(models=FUSION_BASES, folds=2, fold_epochs=1, base_configs=paths, seed=7)


@pytest.fixture(scope="module", params=registry.known_kinds())
def exported(request, processed_small, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"contract-{kind}")
    run = registry.get(kind).train(processed_small, root / "run", _config(kind, root))
    return kind, run, export_run(run, root / "bundle")


def test_every_kind_trains_exports_loads_and_scans_as_its_run_predicted(exported, processed_small, tmp_path):
    kind, run, bundle = exported
    raw = [json.loads(x) for x in (Path(processed_small).parent / "raw" / "test.jsonl").read_text().splitlines()]
    predicted = {r["id"]: r["prob_vulnerable"] for r in
                 (json.loads(x) for x in (run / "predictions" / "test.jsonl").read_text().splitlines())}
    funcs = [r["func"] for r in raw[:N_FUNCS]]
    tree = tmp_path / "tree"
    tree.mkdir()
    for i, func in enumerate(funcs):
        (tree / f"f{i}.c").write_text(func)
    with streamguard.load(bundle, threshold=0.0, precision="fp32") as det:
        assert det.kind == kind and registry.missing_bundle_file(bundle / "model", kind) is None
        # the bundle scores the run's test functions as the run did
        scores = det.score(funcs)
        np.testing.assert_allclose([s.raw_prob for s in scores], [predicted[f"CODEXGLUE-TEST-{i}"] for i in
                                                              range(N_FUNCS)], rtol=0, atol=1e-5)
        # a scan finds them in the tree: a function ends at its "}" (Devign's rows end with a newline after it,
        # which a raw-text model sees), scored the same, with evidence inside each function
        report = det.scan([tree], root=tree, evidence=2, evidence_for=N_FUNCS)
        expected = {f"f{i}.c": s.prob for i, s in enumerate(det.score([f.rstrip("\n") for f in funcs]))}
    assert not report.rejected and sorted(f.path for f in report.findings) == sorted(expected)
    np.testing.assert_allclose([f.score for f in report.findings], [expected[f.path] for f in report.findings],
                               rtol=0, atol=1e-9)
    for f in report.findings:
        assert all(f.start_line <= e.line <= f.end_line for e in f.evidence)
    assert all(f.evidence for f in report.findings)


def _module(**drop: bool) -> types.ModuleType:
    """A module implementing the contract (by delegation to the lexical kind) less the parts in ``drop``."""
    lexical = registry.get("lexical")
    mod = types.ModuleType("plugin_kind")
    for part in kinds.PARTS:
        if part not in drop:
            setattr(mod, part, getattr(lexical, part))
    return mod


@pytest.mark.parametrize("missing", kinds.PARTS)
def test_a_kind_missing_a_part_is_refused_at_registration_in_one_line(missing):
    with pytest.raises(UserError) as err:
        registry.register(Kind("plugin", _module(**{missing: True}), LexicalConfig, "a plug-in"))
    assert "plugin" not in registry.KINDS
    message = str(err.value)
    assert "\n" not in message and message.startswith("model kind 'plugin' does not implement the kind contract")
    assert message.endswith(f"plugin_kind has no {missing}" + ("" if missing.isupper() else "()"))


def test_a_lazily_loaded_kind_is_checked_when_loaded_and_a_complete_one_registers(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "plugin_kind", _module(line_scores=True))
    monkeypatch.setitem(registry.KINDS, "plugin", Kind("plugin", "plugin_kind", LexicalConfig, "a plug-in"))
    with pytest.raises(UserError, match=r"plugin_kind has no line_scores\(\)$"):
        registry.get("plugin")
    with pytest.raises(UserError, match="the registry's config GNNConfig is not a plugin_kind.CONFIG"):
        registry.register(Kind("plugin", _module(), GNNConfig, "a plug-in"))
    sub = dataclasses.make_dataclass("Sub", [], bases=(LexicalConfig,), frozen=True)  # a narrower config is fine
    registry.register(Kind("plugin", _module(), sub, "a plug-in"))
    assert registry.get("plugin").predict is registry.get("lexical").predict


def _names_a_kind(node: ast.AST, names: set[str]) -> bool:
    """A comparison with a kind's name, or a dict keyed by one: kind knowledge outside the kind."""
    consts = [n for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in names]
    return bool(consts) and isinstance(node, ast.Compare | ast.Dict)


def test_no_code_outside_the_kinds_and_the_registry_branches_on_a_kind():
    names = set(registry.known_kinds())
    own = {"train/registry.py", *(registry.entry(k).module.removeprefix("streamguard.").replace(".", "/") + ".py"
                                  for k in names)}
    # The cloud cost estimate tabulates measured throughput per kind and variant (data, not a code path).
    allowed = own | {"cloud/estimate.py", "scan/bundle_check.py"}  # follow-ups: per-kind prices, per-kind bundle checks
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare | ast.Dict) and _names_a_kind(node, names):
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"kind names outside the kinds' modules: {found}"
