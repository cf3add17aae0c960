"""The numpy char n-gram counter gives scikit-learn's TF-IDF rows bit for bit, on real Devign and kernel code."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from streamguard.data.extract import extract_functions
from streamguard.models import char_ngrams
from streamguard.models.lexical import LexicalFeatures, fit_classifier, normalise
from streamguard.models.lexical_store import load_lexical, save_lexical

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def funcs(path: Path) -> list[str]:
    return [json.loads(line)["func"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def fitted() -> LexicalFeatures:
    """The lexical model's own char view (3-6-grams, comments stripped), fitted on 800 real Devign functions."""
    feats = LexicalFeatures("char", 3, 6, 200_000, True)
    feats.fit_transform(funcs(ROOT / "data" / "sample" / "train.jsonl"))
    return feats


def unseen_texts() -> list[str]:
    """Real code the vocabulary never saw, and the edges: empty, shorter than n, NUL, Latin-1 and wider
    characters, whitespace runs sklearn collapses (\\x1c-\\x1f and \\x85 count as whitespace)."""
    kernel = [f.code for p in sorted((FIXTURES / "kernel_c" / "lib").glob("*.c"))[:4]
              for f in extract_functions(p.read_text(), str(p))]
    devign = funcs(ROOT / "data" / "sample" / "test.jsonl") + funcs(FIXTURES / "devign_beyond_latin1.jsonl")
    edges = ["", "a", "ab", "abc", "x\x00y = 0;\x00", "char *s = \"caf\xe9\";", "if (a)\x1c\x1d\x85  b;",
             "\u2018quoted\u2019 = 1;", "\t\n\n    return -EINVAL;\n"]
    return kernel + devign + edges


def assert_same(a: sparse.spmatrix, b: sparse.spmatrix) -> None:
    a, b = sparse.csr_matrix(a), sparse.csr_matrix(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)  # bit for bit, not approximately


def test_rows_equal_scikit_learns_on_real_code_and_edges(fitted: LexicalFeatures) -> None:
    vec = fitted._vecs[0]
    texts = [normalise(t, strip=True) for t in unseen_texts()]
    assert any(ord(c) > 255 for t in texts for c in t)  # the scikit-learn path is exercised too
    fast = char_ngrams.CharNgramCounter(vec)
    assert_same(fast.transform(texts), vec.transform(texts))
    assert fast.transform(texts).nnz > 10_000  # real code matched the vocabulary


def test_chunks_do_not_leak_n_grams_across_texts(fitted: LexicalFeatures, monkeypatch: pytest.MonkeyPatch) -> None:
    vec = fitted._vecs[0]
    texts = [normalise(t, strip=True) for t in unseen_texts()]
    monkeypatch.setattr(char_ngrams, "CHUNK_BYTES", 700)  # many chunks, most texts alone in theirs
    assert_same(char_ngrams.CharNgramCounter(vec).transform(texts), vec.transform(texts))
    joined = ["int a", "= b;"]  # "a= " would count if the texts ran together
    assert_same(char_ngrams.CharNgramCounter(vec).counts(joined), CountVectorizer.transform(vec, joined))


def test_the_lexical_model_scores_what_it_scored_before(fitted: LexicalFeatures, tmp_path: Path) -> None:
    """Through LexicalFeatures and a saved-and-loaded model (what scan and predict use)."""
    train = funcs(ROOT / "data" / "sample" / "train.jsonl")
    labels = np.array([json.loads(line)["target"] for line in
                       (ROOT / "data" / "sample" / "train.jsonl").read_text().splitlines()])
    clf = fit_classifier(fitted.fit_transform(train), labels, 1.0, 0)
    save_lexical(tmp_path, fitted, clf)
    feats, loaded = load_lexical(tmp_path)
    texts = unseen_texts()
    assert len(texts) >= char_ngrams.MIN_BATCH
    slow = sparse.hstack([v.transform([normalise(t, True) for t in texts]) for v in feats._vecs], format="csr")
    assert not feats.__dict__.get("_counters")
    assert_same(feats.transform(texts[:5]), slow[:5])  # a few texts: scikit-learn's path, no table built
    assert not feats.__dict__.get("_counters")
    assert_same(feats.transform(texts), slow)  # a batch: the counter
    assert len(feats._counters) == 1
    assert_same(feats.transform(texts[:5]), slow[:5])  # and once built, the counter for a few texts too
    assert np.array_equal(loaded.decision_function(feats.transform(texts)), clf.decision_function(slow))


def test_a_vectorizer_it_cannot_mirror_keeps_scikit_learns_path() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    assert not char_ngrams.supports(TfidfVectorizer(analyzer="char", ngram_range=(3, 7)))
    assert not char_ngrams.supports(TfidfVectorizer(analyzer="char", ngram_range=(3, 6)))  # lowercases
    assert not char_ngrams.supports(TfidfVectorizer(analyzer="word"))
    assert char_ngrams.supports(TfidfVectorizer(analyzer="char", ngram_range=(3, 6), lowercase=False))
    feats = LexicalFeatures("union", 3, 6, 5000, True)
    train = funcs(ROOT / "data" / "sample" / "train.jsonl")[:100]
    feats.fit_transform(train)
    texts = unseen_texts()
    slow = sparse.hstack([v.transform([normalise(t, True) for t in texts]) for v in feats._vecs], format="csr")
    assert_same(feats.transform(texts), slow)
    assert len(feats._counters) == 1  # the char view only; the code-token view is scikit-learn's
