"""Character n-gram counts for a fitted TfidfVectorizer, vectorised with numpy.

scikit-learn counts char n-grams in pure Python (one substring and one dict lookup per n-gram): on a scan that
is almost all of the lexical model's time. Here a batch of texts becomes one byte array, and every n-gram of a
Latin-1 text becomes one integer at once: its bytes (n <= 6) packed into a uint64 with n above them, exact and
collision-free. The vocabulary is packed the same way once into an open-addressing table, and all n-grams are
looked up in it at once. A text with a character beyond Latin-1 (rare in C) is counted by scikit-learn itself.
The counts then go through the vectorizer's own TF-IDF step, so the rows equal scikit-learn's bit for bit
(tests/test_char_ngrams.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: KeyTable and the packing serve the scan's numpy scorer without them
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

MAX_N = 6                      # 6 bytes and the length fit in 64 bits
MIN_BATCH = 256                # fewer texts than this are not worth building the table for (LexicalFeatures)
CHUNK_BYTES = 250_000          # texts are packed in chunks of about this size: bounded memory on big trees
_LENGTH_SHIFT = np.uint64(8 * MAX_N)


def supports(vec: TfidfVectorizer) -> bool:
    """Whether the vectorizer's n-grams are exactly what this counter computes (else: scikit-learn's own path)."""
    return (vec.analyzer == "char" and 1 <= vec.ngram_range[0] <= vec.ngram_range[1] <= MAX_N
            and not vec.lowercase and vec.preprocessor is None and vec.strip_accents is None
            and vec.input == "content")


class CharNgramCounter:
    """``transform`` equals ``vec.transform`` for a fitted char-n-gram TfidfVectorizer ``vec``."""

    def __init__(self, vec: TfidfVectorizer) -> None:
        if not supports(vec):
            raise ValueError("not a plain char n-gram vectorizer")
        self.vec = vec
        self.min_n, self.max_n = vec.ngram_range
        terms = list(vec.vocabulary_)
        cols = np.fromiter(vec.vocabulary_.values(), dtype=np.int64, count=len(terms))
        keys, latin1 = pack_terms(terms)
        self.table = KeyTable(keys[latin1], cols[latin1])

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self.vec._tfidf.transform(self.counts(texts), copy=False)

    def counts(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The document-term count matrix, as CountVectorizer.transform makes it."""
        from scipy import sparse
        from sklearn.feature_extraction.text import CountVectorizer
        collapsed = [self.vec._white_spaces.sub(" ", t) for t in texts]  # what _char_ngrams does first
        encoded, fallback = [], []
        for i, text in enumerate(collapsed):
            try:
                encoded.append(text.encode("latin-1"))
            except UnicodeEncodeError:
                encoded.append(b"")
                fallback.append(i)
        parts = [self._chunk_counts(encoded[a:b]) for a, b in _chunks([len(e) for e in encoded])]
        x = sparse.vstack(parts, format="csr") if parts else self._empty(0)
        if fallback:  # counted by scikit-learn, added in their rows (left empty above)
            slow = CountVectorizer.transform(self.vec, [texts[i] for i in fallback])
            place = sparse.csr_matrix((np.ones(len(fallback)), (fallback, np.arange(len(fallback)))),
                                      shape=(len(texts), len(fallback)))
            x = (x + place @ sparse.csr_matrix(slow)).astype(self.vec.dtype).tocsr()
        x.sort_indices()
        return x

    def _empty(self, rows: int) -> sparse.csr_matrix:
        from scipy import sparse
        return sparse.csr_matrix((rows, len(self.vec.vocabulary_)), dtype=self.vec.dtype)

    def _chunk_counts(self, encoded: list[bytes]) -> sparse.csr_matrix:
        from scipy import sparse
        docs, cols, counts = ngram_cells(self.table, self.min_n, self.max_n, encoded)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(docs, minlength=len(encoded)))])
        return sparse.csr_matrix((counts.astype(self.vec.dtype), cols, indptr),
                                 shape=(len(encoded), len(self.vec.vocabulary_)))


def ngram_cells(table: KeyTable, min_n: int, max_n: int, encoded: list[bytes]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, column, count) of every vocabulary n-gram present in the Latin-1 ``encoded`` texts, sorted by text
    then column (a CSR matrix's order)."""
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)
    ends = np.repeat(np.cumsum(lengths), lengths)          # each position's text end
    docs = np.repeat(np.arange(len(encoded)), lengths)     # each position's text
    rows, cols = [], []
    for n in range(min_n, max_n + 1):
        m = len(buf) - n + 1
        if m <= 0:
            break
        inside = np.arange(m) + n <= ends[:m]              # the n-gram does not cross into the next text
        keys = np.zeros(m, dtype=np.uint64)
        for j in range(n):
            keys = (keys << np.uint64(8)) | buf[j:j + m]
        found = table.get(keys[inside] | (np.uint64(n) << _LENGTH_SHIFT))
        hit = found >= 0
        rows.append(docs[:m][inside][hit])
        cols.append(found[hit])
    width = max(table.width, 1)
    # (text, column) packed in one integer, uint32 when it fits: sorting it is most of the cost
    kind = np.uint32 if len(encoded) * width < 2**32 else np.int64
    cells, counts = np.unique(np.concatenate(rows or [np.zeros(0, np.int64)]).astype(kind) * kind(width)
                              + np.concatenate(cols or [np.zeros(0, np.int64)]).astype(kind), return_counts=True)
    return (cells // kind(width)).astype(np.int64), (cells % kind(width)).astype(np.int64), counts


class KeyTable:
    """uint64 key -> column, open addressing with linear probing, built and queried a whole array at a time.

    numpy has no hash map; binary search over a sorted 500,000-term vocabulary costs about 19 cache misses a
    lookup, this table (a quarter full) about one. Key 0 marks an empty slot: a packed key always has n > 0."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        self.mask = np.uint64((1 << bits) - 1)
        self.shift = np.uint64(64 - bits)
        self.keys = np.zeros(1 << bits, dtype=np.uint64)
        self.values = np.full(1 << bits, -1, dtype=np.int32)  # columns; int32 halves what a lookup gathers
        self.width = int(values.max()) + 1 if len(values) else 0   # the columns' count (cells are packed by it)
        pending, slot = np.arange(len(keys)), self._slot(keys)
        while len(pending):
            free = self.keys[slot] == 0
            _, first = np.unique(slot[free], return_index=True)   # one key per free slot wins it
            won = np.zeros(len(pending), dtype=bool)
            won[np.flatnonzero(free)[first]] = True
            self.keys[slot[won]], self.values[slot[won]] = keys[pending[won]], values[pending[won]]
            pending, slot = pending[~won], (slot[~won] + np.uint64(1)) & self.mask  # the rest probe on

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        return (keys * np.uint64(0x9E3779B97F4A7C15)) >> self.shift  # Fibonacci hashing: top bits of the product

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Each key's value, -1 where the key is absent. The first probe answers most keys (a quarter-full
        table), so it runs over the whole array without index lists; only keys that met another key probe on."""
        slot = self._slot(keys)
        stored = self.keys[slot]
        hit = stored == keys
        out = np.where(hit, self.values[slot], -1)
        todo = np.flatnonzero(~hit & (stored != 0))
        slot = slot[todo]
        while len(todo):
            slot = (slot + np.uint64(1)) & self.mask
            stored, wanted = self.keys[slot], keys[todo]
            hit = stored == wanted
            out[todo[hit]] = self.values[slot[hit]]
            more = ~hit & (stored != 0)
            todo, slot = todo[more], slot[more]
        return out


def pack_terms(terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each term's packed key, and whether it is Latin-1 (only those can match a Latin-1 text)."""
    lengths = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
    if len(terms) and lengths.max() > MAX_N:
        raise ValueError(f"a vocabulary term is longer than {MAX_N} characters")
    points = np.array(terms, dtype=f"<U{MAX_N}").view(np.uint32).reshape(len(terms), MAX_N)
    keys = np.zeros(len(terms), dtype=np.uint64)
    for j in range(MAX_N):
        keys = np.where(j < lengths, (keys << np.uint64(8)) | points[:, j].astype(np.uint64), keys)
    latin1 = (points < 256).all(axis=1)
    return keys | (lengths.astype(np.uint64) << _LENGTH_SHIFT), latin1


def _chunks(sizes: list[int]) -> list[tuple[int, int]]:
    """[start, stop) ranges of consecutive texts of about CHUNK_BYTES each (a longer text is a chunk alone)."""
    out, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if total and total + size > CHUNK_BYTES:
            out.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out
