"""A saved lexical model's scores without scikit-learn: what a scan of a lexical bundle runs.

Importing scikit-learn (it pulls scipy.stats, pandas and pyarrow) cost more than scoring 6,000 kernel functions
(benchmarks/results/scan_speed_v2.md). This reads the model's arrays (lexical_model.safetensors) and redoes, in
numpy, the few steps a fitted char TF-IDF + logistic regression takes, in scikit-learn's own arithmetic and
order: counts (models/char_ngrams.py), ``log(count) + 1`` and x idf in float32, the L2 norm accumulated in
float64 over float32 squares, the division cast back to float32, the dot product with the coefficients in float64
in column order, plus the intercept; then the same probability formula as ``rundir.prediction_rows``. A text
beyond Latin-1 gets None (the caller scores it through scikit-learn). Tested against the scikit-learn path.

Both one-view analyzers: char n-grams (counted in numpy, models/char_ngrams.py) and code tokens (uni+bi-grams of
``lexical.code_tokens``, joined by a space as scikit-learn's word analyzer joins them; looked up in a dict: the
vocabulary terms are words, not packable bytes). The default model is a code-token one.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamguard.models.char_ngrams import MAX_N, KeyTable, ngram_cells, pack_terms
from streamguard.models.lexical import code_tokens, normalise
from streamguard.models.lexical_store import ARRAYS, FORMAT, PARAMS, arrays_to_terms

_WHITESPACES = r"\s\s+"  # scikit-learn's char analyzer collapses these to one space first


class FastLexicalScorer:
    """P(vulnerable) for raw function texts from a one-view char n-gram or code-token model directory."""

    def __init__(self, model_dir: Path, params: dict, arrays: dict[str, np.ndarray]):
        import re
        f = params["features"]
        self.analyzer = f["analyzer"]
        self.strip, self.collapse = f["strip_comments"], f["collapse_blank_lines"]
        self.min_n, self.max_n = f["ngram_min"], f["ngram_max"]
        self.white = re.compile(_WHITESPACES)
        self.idf = arrays["view0.idf"].astype(np.float32)
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)[0]
        self.intercept = float(np.asarray(arrays["intercept"], dtype=np.float64)[0])
        if self.analyzer == "char":
            keys, cols = _term_keys(arrays["view0.terms"], arrays["view0.term_ends"])
            self.table = KeyTable(keys, cols)
        else:
            self.vocab = arrays_to_terms(arrays["view0.terms"], arrays["view0.term_ends"])

    @classmethod
    def open(cls, model_dir: Path) -> FastLexicalScorer | None:
        """The scorer, or None when the model is not one it reproduces (another analyzer, several views, longer
        n-grams, a format it does not know). The sha256 check is ``load_lexical``'s."""
        from streamguard.errors import UserError
        from streamguard.provenance import sha256_file
        model_dir = Path(model_dir)
        try:
            params = json.loads((model_dir / PARAMS).read_text())
        except (OSError, ValueError):
            return None
        f = params.get("features") or {}
        char = (f.get("analyzer") == "char" and 1 <= int(f.get("ngram_min", 0)) <= int(f.get("ngram_max", 99))
                <= MAX_N)
        if (params.get("format") != FORMAT or params.get("n_views") != 1 or params.get("classes") != [0, 1]
                or not (char or f.get("analyzer") == "code")):
            return None
        if sha256_file(model_dir / ARRAYS) != params.get("arrays_sha256"):
            raise UserError(f"{model_dir / ARRAYS} does not match the sha256 in {PARAMS} (corrupt or replaced)")
        from safetensors.numpy import load_file
        return cls(model_dir, params, load_file(str(model_dir / ARRAYS)))

    def probabilities(self, codes: Sequence[str]) -> list[float | None]:
        """Each text's probability; None for a text beyond Latin-1 (char n-grams only)."""
        if self.analyzer == "code":
            texts = [normalise(code, self.strip, self.collapse) for code in codes]
            out = []
            for start in range(0, len(texts), 512):
                chunk = texts[start:start + 512]
                out.extend(self._scores(*_code_cells(self.vocab, chunk), len(chunk)).tolist())
            return [_prob(d) for d in out]
        encoded: list[bytes] = []
        latin1: list[bool] = []
        for code in codes:
            text = self.white.sub(" ", normalise(code, self.strip, self.collapse))
            try:
                encoded.append(text.encode("latin-1"))
                latin1.append(True)
            except UnicodeEncodeError:
                encoded.append(b"")
                latin1.append(False)
        out: list[float | None] = []
        start = 0
        for stop in _chunk_ends([len(e) for e in encoded]):
            out.extend(self._decision(encoded[start:stop]).tolist())
            start = stop
        return [_prob(d) if ok else None for d, ok in zip(out, latin1)]

    def _decision(self, encoded: list[bytes]) -> np.ndarray:
        return self._scores(*ngram_cells(self.table, self.min_n, self.max_n, encoded), len(encoded))

    def _scores(self, docs: np.ndarray, cols: np.ndarray, counts: np.ndarray, n_texts: int) -> np.ndarray:
        """Decision values from (text, column, count) cells sorted by text then column, as scikit-learn's
        sublinear TF-IDF, L2 norm and logistic regression compute them."""
        v = np.log(counts.astype(np.float32)) + np.float32(1.0)
        v *= self.idf[cols]
        norm = np.sqrt(np.bincount(docs, weights=(v * v).astype(np.float64), minlength=n_texts))
        safe = np.where(norm == 0.0, 1.0, norm)
        x = (v.astype(np.float64) / safe[docs]).astype(np.float32)
        return np.bincount(docs, weights=x.astype(np.float64) * self.coef[cols], minlength=n_texts) \
            + self.intercept


def _code_cells(vocab: dict[str, int], texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, column, count) of the vocabulary's code-token uni- and bi-grams in ``texts``, sorted by text then
    column (as ``char_ngrams.ngram_cells`` gives them for char n-grams)."""
    docs, cols, counts = [], [], []
    for i, text in enumerate(texts):
        toks = code_tokens(text)
        found: dict[int, int] = {}
        for term in (*toks, *map(" ".join, zip(toks, toks[1:]))):
            col = vocab.get(term)
            if col is not None:
                found[col] = found.get(col, 0) + 1
        for col in sorted(found):
            docs.append(i)
            cols.append(col)
            counts.append(found[col])
    return np.array(docs, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(counts, dtype=np.int64)


def _prob(z: float) -> float:
    """``rundir.prediction_rows``' formula (logits -d/2, d/2: their difference is d)."""
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _term_keys(data: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed keys and columns of the vocabulary's Latin-1 terms, read from the saved UTF-8 bytes: ASCII terms
    (nearly all) at once, the others one by one."""
    ends = ends.astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    lengths = ends - starts
    high = np.zeros(len(ends), dtype=bool)
    over = np.flatnonzero(data >= 128)
    if len(over):
        high[np.searchsorted(ends, over, side="right")] = True
    ascii_cols = np.flatnonzero(~high & (lengths <= MAX_N))
    keys = np.zeros(len(ascii_cols), dtype=np.uint64)
    for j in range(MAX_N):
        take = j < lengths[ascii_cols]
        byte = data[np.minimum(starts[ascii_cols] + j, len(data) - 1)].astype(np.uint64)
        keys = np.where(take, (keys << np.uint64(8)) | byte, keys)
    keys |= lengths[ascii_cols].astype(np.uint64) << np.uint64(8 * MAX_N)
    raw = data.tobytes()
    other = [(int(i), raw[starts[i]:ends[i]].decode("utf-8", errors="surrogatepass")) for i in np.flatnonzero(high)]
    other = [(i, t) for i, t in other if len(t) <= MAX_N and all(ord(ch) < 256 for ch in t)]
    if other:
        okeys, _ = pack_terms([t for _, t in other])
        keys = np.concatenate([keys, okeys])
        ascii_cols = np.concatenate([ascii_cols, np.array([i for i, _ in other], dtype=np.int64)])
    return keys, ascii_cols.astype(np.int64)


def _chunk_ends(sizes: list[int], chunk_bytes: int = 250_000) -> list[int]:
    """Stops of consecutive runs of texts of about ``chunk_bytes`` (bounded memory), as char_ngrams chunks."""
    out, total = [], 0
    for i, size in enumerate(sizes):
        if total and total + size > chunk_bytes:
            out.append(i)
            total = 0
        total += size
    if sizes:
        out.append(len(sizes))
    return out
