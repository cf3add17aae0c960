"""The fitted lexical model on disk without pickle: arrays in safetensors, parameters in JSON.

A pickle runs code when loaded, so a shared run directory or bundle must never hold one. The TF-IDF views are
rebuilt from their parameters (``make_vectorizers``: the same code that made them for training) and given back
their vocabulary and idf; the logistic regression is rebuilt from its coefficients. Scores are identical to
the in-memory model's (tested).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import load_file, save

from streamguard.atomic import write_bytes, write_json
from streamguard.errors import UserError
from streamguard.models.lexical import LexicalFeatures, make_vectorizers
from streamguard.provenance import sha256_file

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

ARRAYS = "lexical_model.safetensors"
PARAMS = "lexical_model.json"
FORMAT = 1
_PARAM_FIELDS = ("analyzer", "ngram_min", "ngram_max", "max_features", "strip_comments", "collapse_blank_lines")


def _terms_to_arrays(vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Terms ordered by column as one UTF-8 byte array and their end offsets (any text survives, NULs too)."""
    terms = sorted(vocab, key=vocab.__getitem__)
    blobs = [t.encode("utf-8", errors="surrogatepass") for t in terms]
    ends = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).copy(), ends


def arrays_to_terms(data: np.ndarray, ends: np.ndarray) -> dict[str, int]:
    raw, starts = data.tobytes(), np.concatenate([[0], ends[:-1]]).tolist()
    return {raw[a:b].decode("utf-8", errors="surrogatepass"): i for i, (a, b) in enumerate(zip(starts, ends.tolist()))}



def save_lexical(out_dir: Path, feats: LexicalFeatures, clf: LogisticRegression) -> None:
    """Write ``lexical_model.safetensors`` + ``lexical_model.json`` (atomically; the JSON, which names the
    arrays' sha256, last)."""
    out_dir = Path(out_dir)
    arrays: dict[str, np.ndarray] = {"coef": np.asarray(clf.coef_, dtype=np.float64),
                                     "intercept": np.asarray(clf.intercept_, dtype=np.float64)}
    for i, vec in enumerate(feats._vecs):
        arrays[f"view{i}.terms"], arrays[f"view{i}.term_ends"] = _terms_to_arrays(vec.vocabulary_)
        arrays[f"view{i}.idf"] = np.asarray(vec.idf_, dtype=np.float64)
    write_bytes(out_dir / ARRAYS, save(arrays))
    params = {"format": FORMAT, "features": {k: getattr(feats, k) for k in _PARAM_FIELDS},
              "n_views": len(feats._vecs), "classes": [int(c) for c in clf.classes_],
              "arrays_sha256": sha256_file(out_dir / ARRAYS)}
    write_json(out_dir / PARAMS, params)


def load_lexical(model_dir: Path) -> tuple[LexicalFeatures, LogisticRegression]:
    """The fitted features and classifier from ``model_dir``; no pickle is read, whatever else lies there."""
    from sklearn.linear_model import LogisticRegression
    model_dir = Path(model_dir)
    if not (model_dir / PARAMS).is_file():
        legacy = " (it holds only a model.pkl, which is never loaded: pickle can run code; retrain it)" \
            if (model_dir / "model.pkl").exists() else ""
        raise UserError(f"{model_dir} has no {PARAMS}; the lexical model is missing{legacy}")
    try:
        params: dict[str, Any] = json.loads((model_dir / PARAMS).read_text())
        if params.get("format") != FORMAT:
            raise UserError(f"{model_dir / PARAMS}: unknown lexical model format {params.get('format')!r}")
        if sha256_file(model_dir / ARRAYS) != params["arrays_sha256"]:
            raise UserError(f"{model_dir / ARRAYS} does not match the sha256 in {PARAMS} (corrupt or replaced)")
        arrays = load_file(str(model_dir / ARRAYS))
        feats = LexicalFeatures(**{k: params["features"][k] for k in _PARAM_FIELDS})
        vecs = make_vectorizers(feats.analyzer, feats.ngram_min, feats.ngram_max, feats.max_features)
        if len(vecs) != params["n_views"]:
            raise UserError(f"{model_dir / PARAMS}: {params['n_views']} views for analyzer {feats.analyzer!r}")
        for i, vec in enumerate(vecs):
            vec.vocabulary_ = arrays_to_terms(arrays[f"view{i}.terms"], arrays[f"view{i}.term_ends"])
            vec.idf_ = arrays[f"view{i}.idf"].astype(np.float32)
        feats._vecs = vecs
        clf = LogisticRegression()
        clf.coef_, clf.intercept_ = arrays["coef"], arrays["intercept"]
        clf.classes_ = np.array(params["classes"])
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise UserError(f"{model_dir}: cannot load the lexical model ({type(exc).__name__}: {exc})") from None
    if clf.coef_.shape[1] != feats.n_features:
        raise UserError(f"{model_dir}: {clf.coef_.shape[1]} coefficients for {feats.n_features} features")
    return feats, clf
