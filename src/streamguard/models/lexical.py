"""Lexical baseline: TF-IDF over code text and a logistic regression. Texts in, logits out; no file I/O.

Two views of the code are offered: character n-grams (robust to identifier spelling, the stronger view on
Devign) and code tokens (identifiers, numbers, punctuation) as uni+bi-grams. ``union`` stacks both.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from streamguard.errors import UserError
from streamguard.models import char_ngrams

if TYPE_CHECKING:  # scikit-learn and scipy are imported where used: a scan's numpy scorer needs neither
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

ANALYZERS = ("char", "code", "union")

# One pass that keeps string/char literals intact (a "//" inside a string is not a comment) and drops comments.
_COMMENT_OR_LITERAL = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)
_CODE_TOKEN = re.compile(r"[A-Za-z_]\w*|0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?|->|\+\+|--|<<|>>|[<>!=]=|&&|\|\||\S")
_BLANK_RUN = re.compile(r"[ \t]*\n[\s]*")
_WHITESPACES = re.compile(r"\s\s+")  # what sklearn's char analyzer collapses to one space


def strip_comments(code: str) -> str:
    """Remove C comments but not comment-like text inside literals."""
    return _COMMENT_OR_LITERAL.sub(lambda m: " " if m.group(0)[0] == "/" else m.group(0), code)


def normalise(code: str, strip: bool, collapse: bool = False) -> str:
    """Comments removed and blank-line runs collapsed, each optionally. Collapsing looks tidy (Devign doubles
    every newline) but measured worse on valid: indentation and spacing n-grams carry a project's style."""
    if strip:
        code = strip_comments(code)
    return _BLANK_RUN.sub("\n", code).strip() if collapse else code


def code_tokens(code: str) -> list[str]:
    return _CODE_TOKEN.findall(code)


# --- the same text with a map back to the code's characters (line evidence) ---------------------------------

def sub_with_map(pattern: re.Pattern, text: str, idx: list[int], repl: Callable[[re.Match], str]
                 ) -> tuple[str, list[int]]:
    """``pattern.sub(repl, text)`` that also carries, for every output character, its original position."""
    out, out_idx, pos = [], [], 0
    for m in pattern.finditer(text):
        out.append(text[pos:m.start()])
        out_idx.extend(idx[pos:m.start()])
        r = repl(m)
        out.append(r)
        out_idx.extend(idx[m.start():m.start() + len(r)] if r == m.group(0) else [idx[m.start()]] * len(r))
        pos = m.end()
    out.append(text[pos:])
    out_idx.extend(idx[pos:])
    return "".join(out), out_idx


def normalise_with_map(code: str, strip: bool, collapse: bool) -> tuple[str, list[int]]:
    """``normalise`` with a map from the normalised text back to ``code``'s characters."""
    text, idx = code, list(range(len(code)))
    if strip:
        text, idx = sub_with_map(_COMMENT_OR_LITERAL, text, idx, lambda m: " " if m.group(0)[0] == "/" else m.group(0))
    if collapse:
        text, idx = sub_with_map(_BLANK_RUN, text, idx, lambda m: "\n")
        lead = len(text) - len(text.lstrip())
        text, idx = text.strip(), idx[lead:lead + len(text.strip())]
    return text, idx


def occurrences(vec: TfidfVectorizer, text: str, idx: list[int]) -> list[tuple[str, list[int]]]:
    """Every n-gram occurrence ``vec`` counts in ``text``: (term, original character positions)."""
    out = []
    lo, hi = vec.ngram_range
    if vec.analyzer == "char":
        t, m = sub_with_map(_WHITESPACES, text, idx, lambda _: " ")
        for n in range(lo, min(hi, len(t)) + 1):
            out.extend((t[i:i + n], m[i:i + n]) for i in range(len(t) - n + 1))
        return out
    toks = [(mt.group(0), idx[mt.start():mt.end()]) for mt in _CODE_TOKEN.finditer(text)]
    for n in range(lo, hi + 1):
        for i in range(len(toks) - n + 1):
            span = toks[i:i + n]
            out.append((" ".join(s for s, _ in span), [c for _, cs in span for c in cs]))
    return out


def make_vectorizers(analyzer: str, ngram_min: int, ngram_max: int, max_features: int) -> list[TfidfVectorizer]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    if analyzer not in ANALYZERS:
        raise UserError(f"lexical analyzer must be one of {', '.join(ANALYZERS)}, got {analyzer!r}")
    if not 1 <= ngram_min <= ngram_max:
        raise UserError(f"lexical n-gram range must satisfy 1 <= ngram_min <= ngram_max, got "
                        f"{ngram_min}..{ngram_max}")
    out = []
    if analyzer in ("char", "union"):
        # min_df=2 drops n-grams seen in a single function: they cannot generalise and dominate memory.
        out.append(TfidfVectorizer(analyzer="char", ngram_range=(ngram_min, ngram_max), min_df=2,
                                   max_features=max_features, sublinear_tf=True, lowercase=False,
                                   dtype=np.float32))
    if analyzer in ("code", "union"):
        out.append(TfidfVectorizer(analyzer="word", tokenizer=code_tokens, token_pattern=None, preprocessor=None,
                                   ngram_range=(1, 2), min_df=2, max_features=max_features, sublinear_tf=True,
                                   lowercase=False, dtype=np.float32))
    return out


@dataclass
class LexicalFeatures:
    """Fitted TF-IDF view(s) of the code; ``transform`` gives one sparse row per function."""
    analyzer: str = "char"
    ngram_min: int = 3
    ngram_max: int = 6
    max_features: int = 500000
    strip_comments: bool = True
    collapse_blank_lines: bool = False

    def fit_transform(self, codes: Sequence[str]) -> sparse.csr_matrix:
        from scipy import sparse
        self._vecs = make_vectorizers(self.analyzer, self.ngram_min, self.ngram_max, self.max_features)
        self.__dict__.pop("_counters", None)  # counters of the views fitted before
        texts = [normalise(c, self.strip_comments, self.collapse_blank_lines) for c in codes]
        x = sparse.hstack([v.fit_transform(texts) for v in self._vecs], format="csr")
        for v in self._vecs:
            # The pruned terms (millions of char n-grams) are only kept for introspection: drop them so the
            # saved model stays small.
            v.stop_words_ = None
        return x

    def transform(self, codes: Sequence[str]) -> sparse.csr_matrix:
        from scipy import sparse
        texts = [normalise(c, self.strip_comments, self.collapse_blank_lines) for c in codes]
        return sparse.hstack([self._view_transform(v, texts) for v in self._vecs], format="csr")

    def _view_transform(self, vec: TfidfVectorizer, texts: list[str]) -> sparse.csr_matrix:
        """scikit-learn's rows; char n-grams through the numpy counter (the same rows, several times faster)."""
        counters = self.__dict__.setdefault("_counters", {})
        # Building the counter's table costs what scikit-learn takes for ~100 functions: a few texts (one function
        # scored through the API, a small diff) go through scikit-learn unless the table is already there.
        if not char_ngrams.supports(vec) or (id(vec) not in counters and len(texts) < char_ngrams.MIN_BATCH):
            return vec.transform(texts)
        if id(vec) not in counters:
            counters[id(vec)] = char_ngrams.CharNgramCounter(vec)
        return counters[id(vec)].transform(texts)

    @property
    def vectorizers(self) -> list[TfidfVectorizer]:
        """The fitted views, in column order."""
        return self._vecs

    @property
    def n_features(self) -> int:
        return sum(len(v.vocabulary_) for v in self._vecs)


def fit_classifier(x: sparse.csr_matrix, y: np.ndarray, c: float, seed: int,
                   sample_weight: np.ndarray | None = None) -> LogisticRegression:
    # liblinear is deterministic and fast on sparse, wide, binary problems like this one.
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=seed)
    return clf.fit(x, y, sample_weight=sample_weight)


def logits(clf: LogisticRegression, x: sparse.csr_matrix) -> np.ndarray:
    """Two-class logits [l0, l1] whose softmax equals the classifier's probability (symmetric split of
    the log-odds), so every model kind's logits mean the same thing to the fusion."""
    d = clf.decision_function(x).astype(np.float64)
    return np.stack([-d / 2.0, d / 2.0], axis=1)
