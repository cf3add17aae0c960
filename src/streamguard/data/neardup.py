"""Text keys for exact duplicates and MinHash/LSH near duplicates (datasketch) of C functions.

Both work on C tokens with comments removed, so formatting does not hide a duplicate: ReVeal's space-tokenised
``a -> b ;`` and Devign's ``a->b;`` give the same tokens. Near duplicates: Jaccard similarity of the sets of
5-token shingles, candidates from MinHash LSH (128 permutations) tuned to a threshold 0.2 below the one asked
for, each candidate then checked against the exact Jaccard of the two shingle sets: the LSH only decides which
pairs are looked at (its false positives are removed; a pair at the threshold is missed with probability
``miss_probability``, 1e-4 at 0.8, 1e-7 at 0.87: see docs/data-collection.md).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from streamguard.data.risky_api import risky_name

DEFAULT_THRESHOLD = 0.8  # Jaccard of 5-token shingle sets; measured in benchmarks/results/merge_devign.md
NUM_PERM = 128
CANDIDATE_MARGIN = 0.2  # the LSH looks for pairs from threshold - margin: misses at the threshold are then rare
SHINGLE = 5
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")
NORM_TOKEN = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[A-Za-z_]\w*|\d[\w.]*|\S')
# names that keep their text in the normalised stream: renaming them changes what the code does
KEPT_NAMES = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long register
restrict return short signed sizeof static struct switch typedef union unsigned void volatile while _Bool bool
true false NULL size_t ssize_t off_t ptrdiff_t intptr_t uintptr_t int8_t int16_t int32_t int64_t uint8_t uint16_t
uint32_t uint64_t FILE errno va_list va_start va_end va_arg assert abort exit printf fprintf vfprintf puts fputs
putchar fopen fclose fwrite fflush fseek ftell open close write lseek strlen strnlen strcmp strncmp strcasecmp
strchr strrchr strstr strdup strndup strtol strtoul strtoll strtoull atoi atol memcmp memchr ioctl mmap munmap
""".split())


def code_tokens(code: str) -> list[str]:
    """C tokens (identifiers, numbers, single punctuation characters) of the code without comments."""
    return _TOKEN.findall(COMMENT.sub(" ", code))


def text_key(code: str) -> str:
    """What "the same function" means everywhere (the import audit and ``--dedup``, the merge, the corpus's Devign
    exclusion): equal C token sequences once comments are removed, so texts that differ only in whitespace,
    comments or token spacing (``a->b`` / ``a -> b``) are the same function."""
    return hashlib.sha1(" ".join(code_tokens(code)).encode("utf-8", errors="replace")).hexdigest()


def normalised_tokens(code: str) -> list[str]:
    """The token stream with names abstracted, so that a consistently renamed copy gives the same stream:
    every identifier becomes ``$0``, ``$1``, ... in order of first appearance, except C keywords, standard
    types and library / risky API names (``KEPT_NAMES``, ``risky_api.RISKY_APIS``); string, character and number
    literals become ``STR``, ``CHR``, ``NUM``; operators and punctuation stay."""
    names: dict[str, str] = {}
    out = []
    for tok in NORM_TOKEN.findall(COMMENT.sub(" ", code)):
        head = tok[0]
        if head in "\"'":
            out.append("STR" if head == '"' else "CHR")
        elif head.isdigit():
            out.append("NUM")
        elif head.isalpha() or head == "_":
            out.append(tok if tok in KEPT_NAMES or risky_name(tok) else names.setdefault(tok, f"${len(names)}"))
        else:
            out.append(tok)
    return out


def normalised_shingle_hashes(code: str) -> np.ndarray:
    """``shingle_hashes`` of the normalised token stream (renamed copies get the same set)."""
    return _shingles(normalised_tokens(code))


def shingle_hashes(code: str) -> np.ndarray:
    """Sorted unique 32-bit hashes of the 5-token shingles (the whole text when it is shorter)."""
    return _shingles(code_tokens(code))


def _shingles(toks: list[str]) -> np.ndarray:
    grams = [" ".join(toks[i:i + SHINGLE]) for i in range(max(1, len(toks) - SHINGLE + 1))]
    return np.unique(np.array([int.from_bytes(hashlib.blake2b(g.encode("utf-8", errors="replace"),
                                                              digest_size=4).digest(), "little")
                               for g in grams], dtype=np.uint32))


def _identity(value: int) -> int:
    return value


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 1.0


def near_pairs(shingles: Sequence[np.ndarray], threshold: float = DEFAULT_THRESHOLD,
               seed: int = 1) -> list[tuple[int, int, float]]:
    """All pairs (i < j) whose exact shingle Jaccard is >= threshold among the LSH candidates."""
    from datasketch import MinHash, MinHashLSH  # here: text_key's users (the audit, the corpus) need none of it
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    lsh = MinHashLSH(threshold=max(0.3, threshold - CANDIDATE_MARGIN), num_perm=NUM_PERM, weights=(0.2, 0.8))
    # the shingles are hashed already: MinHash permutes those 32-bit values as they are
    minhashes = MinHash.bulk([s.tolist() for s in shingles], num_perm=NUM_PERM, seed=seed, hashfunc=_identity)
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    pairs = []
    for i, m in enumerate(minhashes):
        for j in lsh.query(m):
            if j > i:
                jac = jaccard(shingles[i], shingles[j])
                if jac >= threshold:
                    pairs.append((i, j, round(jac, 4)))
    return sorted(pairs)


def near_equal_pairs(codes: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int, float]]:
    """Pairs (i < j) near-equal on the raw tokens or on the normalised ones (``normalised_tokens``), with the
    larger of the two Jaccards: what the merge's leakage guarantee and near-duplicate rules call near-equal."""
    best: dict[tuple[int, int], float] = {}
    for shingle in (shingle_hashes, normalised_shingle_hashes):
        for i, j, jac in near_pairs([shingle(c) for c in codes], threshold):
            best[i, j] = max(best.get((i, j), 0.0), jac)
    return sorted((i, j, jac) for (i, j), jac in best.items())


def miss_probability(similarity: float, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Probability that the LSH never proposes a pair of this Jaccard (1 - P(some band matches))."""
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=max(0.3, threshold - CANDIDATE_MARGIN), num_perm=NUM_PERM, weights=(0.2, 0.8))
    b, r = lsh.b, lsh.r
    return float((1 - similarity ** r) ** b)
