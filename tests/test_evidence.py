"""Line evidence: a planted decisive line must come first; the lexical attribution is exact."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from streamguard.features.ast import ASTParser
from streamguard.models.lexical import LexicalFeatures, fit_classifier, normalise, normalise_with_map
from streamguard.models.lexical_store import load_lexical, save_lexical
from streamguard.train import evidence as explain
from streamguard.train import gnn, lexical

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "train.jsonl"
PLANTED = "    memcpy(frame_buf, user_data, user_len);"


def _planted_data(n: int = 120, seed: int = 0) -> tuple[list[str], list[int]]:
    """Real Devign functions; label 1 exactly when the planted line was inserted (at a random line)."""
    rng = random.Random(seed)
    funcs = [json.loads(x)["func"] for x in SAMPLE.read_text().splitlines()[:n]]
    codes, labels = [], []
    for i, f in enumerate(funcs):
        lines = f.split("\n")
        if i % 2:
            lines.insert(rng.randrange(2, max(3, len(lines) - 1)), PLANTED)
        codes.append("\n".join(lines))
        labels.append(i % 2)
    return codes, labels


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory) -> tuple[Path, list[str], list[int]]:
    codes, labels = _planted_data()
    feats = LexicalFeatures("union", 3, 5, 50000, True)
    clf = fit_classifier(feats.fit_transform(codes[:80]), np.array(labels[:80]), 10.0, 0)
    out = tmp_path_factory.mktemp("planted")
    save_lexical(out, feats, clf)
    return out, codes[80:], labels[80:]


def test_planted_line_comes_first_for_lexical(planted_model):
    model_dir, codes, labels = planted_model
    scores = lexical.line_scores(model_dir, None, codes)
    held_out_positive = [(c, s) for c, s, y in zip(codes, scores, labels) if y == 1]
    assert len(held_out_positive) >= 15
    for code, s in held_out_positive:
        top_line, _ = explain.top_lines(s, 3)[0]
        assert code.split("\n")[top_line - 1] == PLANTED


def test_lexical_line_scores_sum_to_the_decision_value(planted_model):
    model_dir, codes, _ = planted_model
    feats, clf = load_lexical(model_dir)
    decision = clf.decision_function(feats.transform(codes[:6])) - clf.intercept_[0]
    sums = [s.sum() for s in lexical.line_scores(model_dir, None, codes[:6])]
    np.testing.assert_allclose(sums, decision, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("strip,collapse", [(True, False), (True, True), (False, True), (False, False)])
def test_normalise_with_map_matches_normalise(strip, collapse):
    code = 'int f() {\n\n   /* c */ char *s = "// not";\n\n\n  return 0; // end\n}\n'
    text, idx = normalise_with_map(code, strip, collapse)
    assert text == normalise(code, strip, collapse) and len(idx) == len(text)
    for ch, i in zip(text, idx):
        assert ch == code[i] or ch in " \n"


def test_gnn_node_spans_cover_their_leaves():
    code = "int f(int a)\n{\n\tif (a > 1)\n\t\treturn a;\n\treturn 0;\n}\n"
    graph = ASTParser().parse(code)
    spans = gnn.node_spans(code, graph)
    leaves = [(label, span) for label, is_text, span in zip(graph.labels, graph.leaf_text, spans) if is_text]
    assert leaves and all(span is not None and code[span[0]:span[1]] == label for label, span in leaves)
    assert spans[0] == (0, code.rindex("0") + 1)  # the root spans its first to its last leaf
