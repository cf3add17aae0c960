"""Scanning large trees: results stream in bounded batches, ``--jobs 2`` gives the results of one process, and
``--cache`` re-scores only what changed (scan/stream.py, scan/cache.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from scan_fixture import FAST, make_bundle

import streamguard
from streamguard.cli import main
from streamguard.config import LexicalConfig
from streamguard.data.extract import extract_functions
from streamguard.scan import detector, stream
from streamguard.scan.bundle import export_run
from streamguard.scan.model import Scorer
from streamguard.train import lexical

RAW_SMALL = Path(__file__).parent / "fixtures" / "raw_small"
N_FILES = stream.WINDOW + 6  # more than one window: the extraction processes are used


@pytest.fixture(scope="module")
def model(processed_small, tmp_path_factory):
    return make_bundle(processed_small, tmp_path_factory.mktemp("scalemodel"))[1]


@pytest.fixture()
def tree(tmp_path):
    """N_FILES files of real Devign functions (one or two each), in two folders."""
    funcs = [json.loads(x)["func"] for split in ("train", "valid", "test")
             for x in (RAW_SMALL / f"{split}.jsonl").read_text().splitlines() if x.strip()]
    root = tmp_path / "tree"
    for i in range(N_FILES):
        f = root / f"d{i % 2}" / f"f{i:03d}.c"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("\n\n".join(funcs[i % len(funcs):i % len(funcs) + 1 + i % 2]) + "\n")
    return root


def _scan(model: Path, tree: Path, workers: int = 1, **kw):
    with streamguard.load(model, workers=workers) as det:
        return det.scan([tree], root=tree, **kw)


def _rows(report) -> list[tuple]:
    return [(f.path, f.function, f.start_line, f.score, f.fingerprint, f.evidence) for f in report.findings]


def test_batches_are_bounded_and_results_equal_one_batch(model, tree, monkeypatch):
    whole = _scan(model, tree, evidence=2, evidence_for=5)
    sizes = []
    real = Scorer.probabilities

    def spy(self, codes):
        sizes.append(len(codes))
        return real(self, codes)

    monkeypatch.setattr(Scorer, "probabilities", spy)
    monkeypatch.setattr(detector, "CHUNK", 16)
    chunked = _scan(model, tree, evidence=2, evidence_for=5)
    n = len(chunked.findings)
    assert n > 64 and len(sizes) > 4 and max(sizes) < 16 + 2  # a file's functions join the batch together
    assert _rows(chunked) == _rows(whole)
    assert sum(bool(f.evidence) for f in chunked.findings) == min(5, len(chunked.above()))


def test_evidence_candidates_keep_only_the_top(tmp_path):
    cands = stream.EvidenceCandidates(0.5, 3)
    base = streamguard.scan.results.Finding("a.c", "f", 1, 2, 0.0, 0.5, "clean")
    for i in range(500):
        cands.offer(replace(base, start_line=i, score=(i % 97) / 97), "code")
        assert len(cands.items) <= 4 * 3 + 64
    assert [f.score for f, _ in cands.chosen()] == [96 / 97] * 3


def test_two_jobs_give_the_results_of_one(model, tree):
    one, two = _scan(model, tree, 1, evidence=2), _scan(model, tree, 2, evidence=2)
    assert _rows(one) == _rows(two) and one.files == two.files and len(one.files) == N_FILES


def test_cache_hits_then_rescores_only_the_changed_file(model, tree, tmp_path):
    cache = tmp_path / "cache"
    first = _scan(model, tree, cache=cache)
    n = len(first.findings)
    assert first.summary()["cache"] == {"files_from_cache": 0, "files_parsed": N_FILES, "functions_rescored": n}
    again = _scan(model, tree, cache=cache, evidence=2)
    assert again.summary()["cache"] == {"files_from_cache": N_FILES, "files_parsed": 0, "functions_rescored": 0}
    assert [r[:5] for r in _rows(again)] == [r[:5] for r in _rows(first)] and again.files == first.files
    assert any(f.evidence for f in again.findings) or not again.above()  # texts of cached functions re-read
    changed = tree / "d1" / "f001.c"
    changed.write_text(changed.read_text() + "\nint added(int a)\n{\n\treturn a * 2;\n}\n")
    third = _scan(model, tree, cache=cache)
    assert third.summary()["cache"] == {"files_from_cache": N_FILES - 1, "files_parsed": 1,
                                        "functions_rescored": 3}
    assert len(third.findings) == n + 1
    corrupt = next(cache.rglob("*.json"))
    corrupt.write_text("{not json")
    assert _scan(model, tree, cache=cache).summary()["cache"]["files_parsed"] == 1


def test_a_new_threshold_reuses_scores_a_new_model_does_not(model, tree, tmp_path, processed_small):
    cache = tmp_path / "cache"
    first = _scan(model, tree, cache=cache)
    with streamguard.load(model, threshold=0.01) as det:
        low = det.scan([tree], root=tree, cache=cache)
    assert low.summary()["cache"]["functions_rescored"] == 0 and len(low.above()) >= len(first.above())
    run = lexical.train(processed_small, tmp_path / "run2", LexicalConfig(**{**FAST, "c_grid": [8.0]}))
    other = export_run(run, tmp_path / "bundle2")
    assert _scan(other, tree, cache=cache).summary()["cache"]["files_from_cache"] == 0


def test_cli_jobs_and_cache(model, tree, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["scan", str(tree), "--model", str(model), "--format", "json", "--out", str(out), "--root", str(tree),
            "--cache", str(tmp_path / "c"), "--jobs", "2", "--fail-on", "none"]
    assert main(args) == 0
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["summary"]["cache"]["files_from_cache"] == N_FILES
    schema = Path(streamguard.__file__).parent / "resources" / "scan-result.schema.json"
    jsonschema.validate(doc, json.loads(schema.read_text()))
    (tmp_path / "file").write_text("x")
    assert main([*args[:-6], "--cache", str(tmp_path / "file"), "--fail-on", "none"]) == 2
    assert "--cache folder" in capsys.readouterr().err


def test_numpy_lexical_scorer_equals_scikit_learn_and_imports_none_of_it(model, tree):
    from streamguard.rundir import prediction_rows
    codes = [f.code for p in sorted(tree.rglob("*.c")) for f in extract_functions(
        p.read_bytes(), p.name)] + ["int f(void)\n{\n\treturn '\u20ac';\n}\n"]  # beyond Latin-1: scikit-learn's
    fast = lexical.score_texts(model / "model", codes)
    feats, clf = lexical.loaded_model(model / "model")
    rows = prediction_rows([{"id": "", "label": 0}] * len(codes), lexical.logits(clf, feats.transform(codes)))
    assert fast.tolist() == [r["prob_vulnerable"] for r in rows]  # bit for bit: the same arithmetic, same order
    code = ("import sys, streamguard\n"
            f"with streamguard.load({str(model)!r}) as det: rep = det.scan([{str(tree)!r}], evidence=0)\n"
            "assert rep.findings and not [m for m in ('sklearn', 'scipy') if m in sys.modules], sys.modules.keys()\n")
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_models_code_tokens_scored_without_scikit_learn_bit_for_bit():
    """The default model (code-token uni+bi-grams) takes the numpy scorer too: real kernel functions, an empty
    text and one beyond Latin-1 score as scikit-learn scores them, and a scan imports neither it nor scipy."""
    from streamguard.rundir import prediction_rows
    model = Path(streamguard.__file__).parent / "resources" / "default_model"
    kernel = Path(__file__).parent / "fixtures" / "kernel_c" / "lib"
    codes = [f.code for p in sorted(kernel.glob("*.c")) for f in extract_functions(p.read_bytes(), p.name)]
    codes += ["int f(void)\n{\n\treturn '\u20ac';\n}\n", "", "/* a comment alone */"]
    fast = lexical.score_texts(model / "model", codes)
    feats, clf = lexical.loaded_model(model / "model")
    assert feats.analyzer == "code"
    rows = prediction_rows([{"id": "", "label": 0}] * len(codes), lexical.logits(clf, feats.transform(codes)))
    assert fast.tolist() == [r["prob_vulnerable"] for r in rows]
    code = ("import sys, streamguard\n"
            f"with streamguard.load() as det: rep = det.scan([{str(kernel / 'hexdump.c')!r}], evidence=0)\n"
            "assert rep.findings and not [m for m in ('sklearn', 'scipy') if m in sys.modules], sys.modules.keys()\n")
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", code], check=True)
