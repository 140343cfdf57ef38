"""Near-duplicate scripts: token shingles -> MinHash -> LSH candidates -> exact Jaccard -> union-find clusters.

Two scripts are near-duplicates when the Jaccard similarity of their sets of token n-grams ("shingles") is at least
`threshold`. Comparing every pair is quadratic, so:

1. each script becomes a set of 32-bit shingle hashes (`shingles`), computed with numpy over the raw bytes;
2. each set becomes a MinHash signature of `num_perm` values: for hash i, min over shingles x of (a_i*x + b_i) mod 2^64,
   keeping the top 32 bits (Dietzfelbinger's multiply-add-shift, a universal family for 32-bit keys). Two signatures
   agree at one position with probability equal to the Jaccard similarity of the two sets;
3. LSH banding: signatures are cut into `bands` bands of `rows` values; scripts that agree on a whole band become
   candidate pairs. `rows` is the largest that still misses a pair at exactly `threshold` with probability <= 1e-4;
4. candidates whose signatures agree at far fewer positions than `threshold` (4 standard deviations below) are dropped
   cheaply, and every remaining pair is verified with the exact Jaccard similarity of its shingle sets. Every reported
   pair therefore really is >= `threshold` (precision 1 by construction); recall is ~1 for pairs at or above it.

Determinism: hashing uses fixed constants and `seed` only (never Python's salted `hash`), and a script's shingles and
signature do not depend on which other scripts share its batch, so results are the same for any `workers`/`batch_size`.

Memory: `NearDuplicateIndex` keeps one signature per script (`num_perm` x 4 bytes: 512 B at 128) and a reference to the
texts it was fitted on. Shingle sets (4 bytes per distinct shingle, about 4 bytes per token) are recomputed only for the
scripts that appear in candidate pairs, when pairs are asked for.

Cost: linear in the number of scripts, plus the number of candidate pairs, which is quadratic in the size of a family
of near-identical scripts (all of them really are pairs). Remove exact duplicates first (`records.text_id`).
"""
from __future__ import annotations

import math
import multiprocessing
from functools import partial
from typing import Sequence

import numpy as np

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_CHUNK = 4096  # shingles per MinHash block: num_perm x 4096 x 8 bytes = 4 MB at 128, about one core's L2 cache
_MISS = 1e-4  # LSH: the largest chance of missing a pair at exactly `threshold` that we accept
_SIGMAS = 4.0  # signature pre-filter: drop candidates whose estimate is this many standard deviations below threshold

# Byte classes of the tokenizer. Non-ASCII bytes count as identifier bytes so that a UTF-8 letter never splits a word.
_IS_WORD = np.zeros(256, dtype=bool)
_IS_WORD[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] = True
_IS_WORD[128:] = True
_IS_SPACE = np.zeros(256, dtype=bool)
_IS_SPACE[list(b" \t\n\r\x0b\x0c")] = True


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all 64 output bits (uint64 arithmetic wraps)."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _token_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) offsets of the tokens in a uint8 buffer.

    A token is a run of identifier bytes ([A-Za-z0-9_] and any non-ASCII byte) or one other non-whitespace byte, i.e.
    `re.findall(rb"[\\w\\x80-\\xff]+|[^\\s\\w\\x80-\\xff]", data)`, without a Python loop over the bytes.
    """
    word = _IS_WORD[buf]
    punct = ~word & ~_IS_SPACE[buf]
    word_before = np.concatenate(([False], word[:-1]))
    word_after = np.concatenate((word[1:], [False]))
    starts = np.flatnonzero((word & ~word_before) | punct)
    ends = np.flatnonzero((word & ~word_after) | punct) + 1
    return starts, ends


def tokenize(text: str) -> list[str]:
    """The tokens shingles are made of: identifiers/numbers/keywords, and single punctuation characters."""
    data = text.encode("utf-8", "surrogatepass")
    starts, ends = _token_bounds(np.frombuffer(data, dtype=np.uint8))
    return [data[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts.tolist(), ends.tolist())]


def _shingle_arrays(texts: Sequence[str], ngram: int) -> list[np.ndarray]:
    """Sorted unique uint32 shingle hashes of each text, computed for the whole batch at once."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    text_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    # One newline between texts: whitespace ends tokens, so no token spans two texts.
    buf = np.frombuffer(b"\n".join(encoded) + b"\n", dtype=np.uint8)
    starts, ends = _token_bounds(buf)
    if starts.size == 0:
        return [np.empty(0, dtype=np.uint32) for _ in texts]

    # Token hash: polynomial sum of (byte + 1) * P^(offset in token), so equal tokens hash equally wherever they are.
    is_start = np.zeros(buf.size, dtype=bool)
    is_start[starts] = True
    token_of_byte = np.maximum(np.cumsum(is_start) - 1, 0)
    offset = np.arange(buf.size) - starts[token_of_byte]
    space = _IS_SPACE[buf]  # the bytes between two tokens are all whitespace: they contribute nothing
    offset[space] = 0  # (and must not size the table of powers)
    powers = np.cumprod(np.full(int(offset.max()) + 1, 0x100000001B3, dtype=_U64))  # P^1, P^2, ...
    contrib = (buf.astype(_U64) + _U64(1)) * powers[offset]
    contrib[space] = 0
    tok = _mix(np.add.reduceat(contrib, starts))
    text_of_tok = np.searchsorted(text_starts, starts, side="right") - 1

    # Shingle hash of tokens t_i..t_{i+n-1}: polynomial t_i*Q^(n-1) + ... + t_{i+n-1}, kept only inside one text.
    q = _U64(0x9E3779B97F4A7C15)
    windows = tok.size - ngram + 1
    if windows > 0:
        h = tok[:windows].copy()
        for k in range(1, ngram):
            h = h * q + tok[k:k + windows]
        inside = text_of_tok[:windows] == text_of_tok[ngram - 1:]
        shingle, owner = h[inside], text_of_tok[:windows][inside]
    else:
        shingle, owner = np.empty(0, dtype=_U64), np.empty(0, dtype=np.int64)

    # A text with fewer than `ngram` tokens gets one shingle of all of them, by the same polynomial.
    n_tokens = np.bincount(text_of_tok, minlength=len(texts))
    first_token = np.concatenate(([0], np.cumsum(n_tokens)[:-1]))
    short = np.flatnonzero((n_tokens > 0) & (n_tokens < ngram))
    if short.size:
        extra = []
        for t in short.tolist():
            h = tok[first_token[t]:first_token[t] + 1].copy()
            for k in range(1, int(n_tokens[t])):
                h = h * q + tok[first_token[t] + k]
            extra.append(h)
        shingle = np.concatenate([shingle, *extra])
        owner = np.concatenate([owner, short])

    # Sort by (text, hash) in one go, drop repeats, cut per text.
    key = _sorted_unique((owner.astype(_U64) << _U64(32)) | (_mix(shingle) >> _U64(32)))
    bounds = np.searchsorted((key >> _U64(32)).astype(np.int64), np.arange(len(texts) + 1))
    values = (key & _MASK32).astype(np.uint32)
    return [values[bounds[i]:bounds[i + 1]] for i in range(len(texts))]


def shingles(text: str, ngram: int = 5) -> set[int]:
    """The set of hashed token n-grams of `text`. Fewer than `ngram` tokens: one shingle of them all; no tokens: empty."""
    return set(_shingle_arrays([text], ngram)[0].tolist())


def jaccard(a: set[int], b: set[int]) -> float:
    """|a & b| / |a | b|; 0.0 when either set is empty (an empty text is a near-duplicate of nothing)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """`jaccard` for sorted arrays of unique values."""
    if a.size == 0 or b.size == 0:
        return 0.0
    idx = np.minimum(np.searchsorted(b, a), b.size - 1)
    inter = int(np.count_nonzero(b[idx] == a))
    return inter / (a.size + b.size - inter)


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for 1-d integers; sort + mask is several times faster than np.unique on numpy 2.4."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if x.size else x


def _hash_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(np.uint64).max
    return (rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True),
            rng.integers(0, top, num_perm, dtype=np.uint64, endpoint=True))


def _signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) uint32. A text without shingles gets all 0xFFFFFFFF."""
    a, b = _hash_params(num_perm, seed)
    a, b = a[:, None], b[:, None]
    sets = _shingle_arrays(texts, ngram)
    x = np.concatenate(sets).astype(_U64)
    owner = np.repeat(np.arange(len(sets)), [s.size for s in sets])
    sig = np.full((len(texts), num_perm), 0xFFFFFFFF, dtype=np.uint32)
    # Blocks of _CHUNK shingles keep the num_perm x block matrix in cache and bound memory for huge texts.
    for s in range(0, x.size, _CHUNK):
        block, block_owner = x[s:s + _CHUNK], owner[s:s + _CHUNK]
        cuts = np.flatnonzero(np.concatenate(([True], block_owner[1:] != block_owner[:-1])))
        h = a * block
        h += b
        # min then shift == shift then min (the shift is monotone), and far fewer shifts
        mins = (np.minimum.reduceat(h, cuts, axis=1) >> _U64(32)).astype(np.uint32).T
        rows = block_owner[cuts]  # distinct: a text's shingles are contiguous
        sig[rows] = np.minimum(sig[rows], mins)
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) with P(miss | J = threshold) <= 1e-4."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if (1.0 - threshold ** rows) ** bands <= _MISS:
            return bands, rows
    return num_perm, 1


def _band_pairs(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """All pairs of `ids` sharing a key, as (m, 2) int64 rows (i < j)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, members = keys[order], ids[order]
    run_starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    run_sizes = np.diff(np.append(run_starts, keys.size))
    out = [np.empty((0, 2), dtype=np.int64)]
    for size in np.unique(run_sizes[run_sizes > 1]).tolist():
        # every run of this size at once: a (runs, size) matrix of members, paired by the upper triangle
        group = members[run_starts[run_sizes == size][:, None] + np.arange(size)]
        first, second = np.triu_indices(size, 1)
        p, r = group[:, first].ravel(), group[:, second].ravel()
        out.append(np.stack([np.minimum(p, r), np.maximum(p, r)], axis=1))
    return np.concatenate(out)


class UnionFind:
    """Disjoint sets over 0..n-1 (union by size, path halving)."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, i: int, j: int) -> bool:
        """Merge the sets of i and j; False if they were already one set."""
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        if self.size[ri] < self.size[rj]:
            ri, rj = rj, ri
        self.parent[rj] = ri
        self.size[ri] += self.size[rj]
        return True

    def groups(self, min_size: int = 1) -> list[list[int]]:
        """The sets with at least `min_size` members, each sorted, ordered by their smallest member."""
        members: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            members.setdefault(self.find(i), []).append(i)
        return [g for g in members.values() if len(g) >= min_size]  # built in index order: already sorted


class NearDuplicateIndex:
    """Find all pairs of texts whose shingle sets have Jaccard similarity >= threshold.

    >>> index = NearDuplicateIndex(threshold=0.85).fit(texts)
    >>> index.pairs()     # [(i, j, jaccard), ...] with i < j, sorted
    >>> index.clusters()  # [[i, j, k], ...] groups of two or more, connected by verified pairs
    """

    def __init__(self, threshold: float = 0.85, ngram: int = 5, num_perm: int = 128, seed: int = 1,
                 workers: int = 2, batch_size: int = 256):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < 1 or batch_size < 1 or workers < 1:
            raise ValueError(f"num_perm, batch_size and workers must be >= 1, got {num_perm}, {batch_size}, {workers}")
        self.threshold, self.ngram, self.num_perm, self.seed = threshold, ngram, num_perm, seed
        self.workers, self.batch_size = workers, batch_size
        self.bands, self.rows = lsh_params(threshold, num_perm)

    def fit(self, texts: Sequence[str]) -> "NearDuplicateIndex":
        """Compute every text's signature, in batches spread over `workers` processes. Keeps `texts` by reference."""
        batches = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        work = partial(_signatures, ngram=self.ngram, num_perm=self.num_perm, seed=self.seed)
        if min(self.workers, len(batches)) > 1:
            # spawn, not fork: forking a process that already runs threads (torch, BLAS) can deadlock
            with multiprocessing.get_context("spawn").Pool(min(self.workers, len(batches))) as pool:
                parts = pool.map(work, batches, chunksize=1)
        else:
            parts = [work(batch) for batch in batches]
        self.texts_ = texts
        self.signatures_ = np.concatenate(parts) if parts else np.empty((0, self.num_perm), dtype=np.uint32)
        return self

    def _candidates(self, between: int | None) -> np.ndarray:
        """Candidate pairs (m, 2): sharing an LSH band, and with a signature estimate not far below threshold."""
        sig = self.signatures_
        ids = np.flatnonzero((sig != 0xFFFFFFFF).any(axis=1))  # texts without shingles pair with nothing
        found = [np.empty(0, dtype=np.int64)]
        for band in range(self.bands):
            cols = sig[ids, band * self.rows:(band + 1) * self.rows].astype(_U64)
            key = np.zeros(ids.size, dtype=_U64)
            for c in range(self.rows):
                key = _mix(key ^ cols[:, c])
            pairs = _band_pairs(key, ids)
            if between is not None:
                pairs = pairs[(pairs[:, 0] < between) & (pairs[:, 1] >= between)]
            found.append(pairs[:, 0] * len(sig) + pairs[:, 1])
        codes = _sorted_unique(np.concatenate(found))  # sorted by (i, j): the order of every result below
        pairs = np.stack([codes // len(sig), codes % len(sig)], axis=1)
        floor = self.threshold - _SIGMAS * math.sqrt(self.threshold * (1 - self.threshold) / self.num_perm)
        keep = np.ones(len(pairs), dtype=bool)
        for s in range(0, len(pairs), 65536):  # bounded memory: 65536 x num_perm bytes of comparisons
            p = pairs[s:s + 65536]
            keep[s:s + 65536] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1) >= floor
        return pairs[keep]

    def _verified(self, pairs: np.ndarray, uf: UnionFind | None = None) -> list[tuple[int, int, float]]:
        """The pairs whose exact Jaccard is >= threshold; with `uf`, skip pairs it already connects and union the rest."""
        ids = np.unique(pairs)
        sets = {}
        for s in range(0, ids.size, self.batch_size):
            chunk = ids[s:s + self.batch_size].tolist()
            sets.update(zip(chunk, _shingle_arrays([self.texts_[i] for i in chunk], self.ngram)))
        out = []
        for i, j in pairs.tolist():
            if uf is not None and uf.find(i) == uf.find(j):
                continue  # already connected: verifying this pair cannot change the clusters
            sim = _jaccard_sorted(sets[i], sets[j])
            if sim >= self.threshold:
                out.append((i, j, sim))
                if uf is not None:
                    uf.union(i, j)
        return out

    def pairs(self, between: int | None = None) -> list[tuple[int, int, float]]:
        """Verified near-duplicate pairs (i, j, jaccard), i < j, sorted. With `between=k`: only i < k <= j."""
        return self._verified(self._candidates(between))

    def clusters(self) -> list[list[int]]:
        """Groups of two or more texts connected by verified pairs (transitively); singletons are left out.

        Each group is sorted, groups are ordered by their first member. Same groups as union-find over `pairs()`, but
        cheaper: a candidate pair already inside one group is not verified.
        """
        uf = UnionFind(len(self.signatures_))
        self._verified(self._candidates(None), uf)
        return uf.groups(min_size=2)


def cross_pairs(texts_a: Sequence[str], texts_b: Sequence[str], threshold: float = 0.85, ngram: int = 5,
                num_perm: int = 128, seed: int = 1, workers: int = 2) -> list[tuple[int, int, float]]:
    """Verified near-duplicate pairs (i, j, jaccard) with texts_a[i] ~ texts_b[j], e.g. train/test leakage."""
    index = NearDuplicateIndex(threshold, ngram, num_perm, seed, workers).fit(list(texts_a) + list(texts_b))
    n = len(texts_a)
    return [(i, j - n, sim) for i, j, sim in index.pairs(between=n)]
