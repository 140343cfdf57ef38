"""Near-duplicate scripts: token shingles -> MinHash -> LSH candidates -> exact Jaccard -> union-find clusters.

Two scripts are near-duplicates when the Jaccard similarity of their sets of token n-grams ("shingles") is at least
`threshold`. Comparing every pair is quadratic, so:

1. each script becomes a set of 32-bit shingle hashes (`shingles`), computed with numpy over the raw bytes;
2. each set becomes a MinHash signature of `num_perm` values: value i is the minimum of (a_i*x + b_i) mod 2^32 over
   the set's shingle hashes x (a_i odd: a bijection). The hashes are already well mixed, so each minimum falls on a
   uniformly random member of the set, and two signatures agree at a position with probability equal to the Jaccard
   similarity of the two sets (checked by the tests: the agreement rate matches Jaccard within its sampling error);
3. LSH banding: signatures are cut into `bands` bands of `rows` values; scripts that agree on a whole band become
   candidate pairs. `rows` is the largest that still misses a pair at exactly `threshold` with probability <= 1e-4;
4. candidates whose signatures agree at far fewer positions than `threshold` (4 standard deviations below) are dropped
   cheaply, and every remaining pair is verified with the exact Jaccard similarity of its shingle sets, hashed again
   to 64 bits (`shingles`). 32 bits would not do: a script shorter than the n-gram size has one shingle, so a single
   hash collision reads as Jaccard 1.0, and among 100,000 distinct `echo N` scripts a few pairs collide in 32 bits.
   In 64 bits, two distinct shingles collide with probability 2^-64: for single-shingle scripts, about n^2 / 2^65
   for n of them (3e-8 at n = 1,000,000), and no higher for longer scripts, whose Jaccard one collision moves by
   less than 1/size. Every reported pair therefore is >= `threshold` up to those odds; recall is ~1 for pairs at or
   above it.

Determinism: hashing uses fixed constants and `seed` only (never Python's salted `hash`), and a script's shingles and
signature do not depend on which other scripts share its batch, so results are the same for any `workers`/`batch_size`.

Memory: `NearDuplicateIndex` keeps one signature per script (`num_perm` x 4 bytes: 512 B at 128) and a reference to the
texts it was fitted on; `fit` reads the texts one batch at a time, as the worker processes take them. LSH bands are
built one at a time (about 40 bytes per script while one is sorted), union-find takes 16 bytes per script, and pairs
that fail verification are remembered (they meet again in other bands: a few bytes per script). Shingle sets (8 bytes
per distinct shingle, about 8 bytes per token) are recomputed while `pairs`/`clusters` verify candidates, only for
texts whose signatures pass the pre-filter, and kept in a cache of at most _CACHE_BYTES. While hashing, a process
needs about 50 bytes per byte of the ~128 KB of text it hashes at once (50 MB for a single 1 MB script), plus 2 MB
for MinHash.

Cost: `fit` is linear in the amount of text. `pairs` verifies every candidate pair, so a family of m near-identical
scripts costs m(m-1)/2 verifications (m = 2,000: 2 million pairs, ~25 s); `clusters` needs about m (0.2 s). Remove
exact duplicates first (`records.text_id`).
"""
from __future__ import annotations

import math
import multiprocessing
from array import array
from collections import OrderedDict
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from pipeline.config import DedupConfig

_DEDUP = DedupConfig()  # the schema's defaults: the one source of the threshold, n-gram size and permutations

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_P = 0x100000001B3  # odd, so it has an inverse modulo 2^64
_P_INVERSE = pow(_P, -1, 2**64)
_BUFFER_CHARS = 1 << 17  # text hashed in one buffer, so its arrays (~50 bytes per byte) stay small and in cache
_CHUNK = 4096  # shingles per MinHash block: num_perm x 4096 x 4 bytes = 2 MB at 128, one core's L2 cache here
_MISS = 1e-4  # LSH: the largest chance of missing a pair at exactly `threshold` that we accept
_SIGMAS = 4.0  # signature pre-filter: drop candidates whose estimate is this many standard deviations below threshold
_CACHE_BYTES = 8 << 20  # shingle arrays kept for reuse while verifying (~4,000 scripts of 2 KB)
_PAIRS_AT_ONCE = 1024  # `pairs`/`clusters` verify candidates in chunks: their texts are read and hashed together
_SMALL_RUN = 16  # `clusters`: runs up to this long have their pairs pre-filtered before their texts are hashed

# Byte classes of the tokenizer. Non-ASCII bytes count as identifier bytes so that a UTF-8 letter never splits a word.
_IS_WORD = np.zeros(256, dtype=bool)
_IS_WORD[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] = True
_IS_WORD[128:] = True
_IS_SPACE = np.zeros(256, dtype=bool)
_IS_SPACE[list(b" \t\n\r\x0b\x0c")] = True
_SPACE, _WORD, _PUNCT = 0, 1, 2
_CLASS = np.where(_IS_WORD, _WORD, np.where(_IS_SPACE, _SPACE, _PUNCT)).astype(np.uint8)  # one lookup, not two


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all 64 output bits (uint64 arithmetic wraps).

    Returns a new array (`x` is left alone), updated in place after the first step: one temporary, not five.
    """
    x = x ^ (x >> _U64(30))
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _token_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) offsets of the tokens in a uint8 buffer.

    A token is a run of identifier bytes ([A-Za-z0-9_] and any non-ASCII byte) or one other non-whitespace byte, i.e.
    `re.findall(rb"[\\w\\x80-\\xff]+|[^\\s\\w\\x80-\\xff]", data)`, without a Python loop over the bytes.
    """
    if buf.size == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    cls = _CLASS.take(buf)  # `take` of a uint8 table: about twice as fast as boolean fancy indexing
    word, punct = cls == _WORD, cls == _PUNCT
    word_before = np.empty_like(word)
    word_before[0], word_before[1:] = False, word[:-1]
    word_after = np.empty_like(word)
    word_after[-1], word_after[:-1] = False, word[1:]
    starts = np.flatnonzero((word > word_before) | punct)  # bool a > b: a & ~b in one pass
    ends = np.flatnonzero((word > word_after) | punct) + 1
    return starts, ends


def tokenize(text: str) -> list[str]:
    """The tokens shingles are made of: identifiers/numbers/keywords, and single punctuation characters."""
    data = text.encode("utf-8", "surrogatepass")
    starts, ends = _token_bounds(np.frombuffer(data, dtype=np.uint8))
    return [data[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts.tolist(), ends.tolist())]


_POWERS = np.ones(1, dtype=_U64), np.ones(1, dtype=_U64)  # P^j and P^-j mod 2^64, grown on demand (per process)


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^j and P^-j mod 2^64 for j < n; cached, because computing them costs as much as hashing the bytes."""
    global _POWERS
    if _POWERS[0].size < n:
        size = max(n, 2 * _POWERS[0].size)
        tables = []
        for base in (_P, _P_INVERSE):
            t = np.full(size, base, dtype=_U64)
            t[0] = 1
            tables.append(np.cumprod(t))
        _POWERS = tables[0], tables[1]
    return _POWERS[0][:n], _POWERS[1][:n]


def _shingle_arrays(texts: Iterable[str], ngram: int, wide: bool = False) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text: uint32 (MinHash), or uint64 with `wide` (exact verification).
    Texts are hashed together, about _BUFFER_CHARS at a time."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    out: list[np.ndarray] = []
    group: list[str] = []
    size = 0
    for text in texts:
        if group and size + len(text) > _BUFFER_CHARS:
            out += _shingle_buffer(group, ngram, wide)
            group, size = [], 0
        group.append(text)
        size += len(text)
    return out + _shingle_buffer(group, ngram, wide) if group else out


def _shingle_buffer(texts: list[str], ngram: int, wide: bool = False) -> list[np.ndarray]:
    """`_shingle_arrays` for texts joined into one byte buffer: every step is one numpy operation over all of them."""
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    text_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    # One newline between texts: whitespace ends tokens, so no token spans two texts.
    buf = np.frombuffer(b"\n".join(encoded) + b"\n", dtype=np.uint8)
    starts, ends = _token_bounds(buf)
    if starts.size == 0:
        return [np.empty(0, dtype=_U64 if wide else np.uint32) for _ in texts]

    # Token hash: sum of (byte + 1) * P^(offset in token), from prefix sums over the buffer; multiplying by P^-start
    # cancels the token's position, so equal tokens hash equally wherever they are.
    powers, inverse_powers = _powers(buf.size)
    prefix = np.zeros(buf.size + 1, dtype=_U64)
    weighted = buf.astype(_U64)
    weighted += _U64(1)
    weighted *= powers  # in place: one temporary of 8 bytes per byte, not three
    np.cumsum(weighted, out=prefix[1:])
    tok = _mix((prefix[ends] - prefix[starts]) * inverse_powers[starts])
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

    if wide:  # 64-bit hashes, for verification: group by text, then sort each text's and drop repeats
        values = _mix(shingle)
        if short.size:  # the short texts' shingles were appended: put them in text order (windows already are)
            order = np.argsort(owner, kind="stable")
            owner, values = owner[order], values[order]
        bounds = np.searchsorted(owner, np.arange(len(texts) + 1))
        # One sort per text: np.lexsort((values, owner)) over the buffer took longer than all the hashing
        return [_sorted_unique(values[bounds[i]:bounds[i + 1]]) for i in range(len(texts))]
    # 32-bit hashes, for MinHash: sort by (text, hash) in one go as one uint64 key, drop repeats, cut per text.
    key = _sorted_unique((owner.astype(_U64) << _U64(32)) | (_mix(shingle) >> _U64(32)))
    bounds = np.searchsorted((key >> _U64(32)).astype(np.int64), np.arange(len(texts) + 1))
    values = (key & _MASK32).astype(np.uint32)
    return [values[bounds[i]:bounds[i + 1]] for i in range(len(texts))]


def shingles(text: str, ngram: int = 5) -> set[int]:
    """The token n-grams of `text` as 64-bit hashes (what verification compares). Fewer than `ngram` tokens: one
    shingle of them all; no tokens: empty."""
    return set(_shingle_arrays([text], ngram, wide=True)[0].tolist())


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
    """(a, b) of the permutations x -> (a*x + b) mod 2^32 (a odd, so each is a bijection of the 32-bit hashes)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, num_perm, dtype=np.uint64) | 1
    b = rng.integers(0, 2**32, num_perm, dtype=np.uint64)
    return a.astype(np.uint32), b.astype(np.uint32)


def _signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) uint32. A text without shingles gets all 0xFFFFFFFF."""
    a, b = _hash_params(num_perm, seed)
    a, b = a[:, None], b[:, None]
    sets = _shingle_arrays(texts, ngram)
    x = np.concatenate(sets)
    owner = np.repeat(np.arange(len(sets)), [s.size for s in sets])
    sig = np.full((len(texts), num_perm), 0xFFFFFFFF, dtype=np.uint32)
    # Blocks of _CHUNK shingles keep the num_perm x block matrix in cache and bound memory for huge texts.
    for s in range(0, x.size, _CHUNK):
        block, block_owner = x[s:s + _CHUNK], owner[s:s + _CHUNK]
        cuts = np.flatnonzero(np.concatenate(([True], block_owner[1:] != block_owner[:-1])))
        h = a * block
        h += b
        rows = block_owner[cuts]  # distinct: a text's shingles are contiguous
        sig[rows] = np.minimum(sig[rows], np.minimum.reduceat(h, cuts, axis=1).T)
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) with P(miss | J = threshold) <= 1e-4."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if (1.0 - threshold ** rows) ** bands <= _MISS:
            return bands, rows
    return num_perm, 1


class UnionFind:
    """Disjoint sets over 0..n-1 (union by size, path halving)."""

    def __init__(self, n: int):
        # arrays of machine integers: 16 bytes per element, where lists of Python ints take about 44
        self.parent = array("q", range(n))
        self.size = array("q", [1]) * n

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
            root = self.find(i)
            if self.size[root] >= min_size:  # filtered first: no list for each of a million singletons
                members.setdefault(root, []).append(i)
        return list(members.values())  # built in index order: already sorted


class NearDuplicateIndex:
    """Find all pairs of texts whose shingle sets have Jaccard similarity >= threshold.

    >>> index = NearDuplicateIndex(threshold=0.9).fit(texts)
    >>> index.pairs()     # [(i, j, jaccard), ...] with i < j, sorted
    >>> index.clusters()  # [[i, j, k], ...] groups of two or more, connected by verified pairs
    """

    def __init__(self, threshold: float = _DEDUP.threshold, ngram: int = _DEDUP.ngram_size,
                 num_perm: int = _DEDUP.num_perm, seed: int = 1, workers: int = _DEDUP.workers, batch_size: int = 256):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if num_perm < 1 or batch_size < 1 or workers < 1:
            raise ValueError(f"num_perm, batch_size and workers must be >= 1, got {num_perm}, {batch_size}, {workers}")
        self.threshold, self.ngram, self.num_perm, self.seed = threshold, ngram, num_perm, seed
        self.workers, self.batch_size = workers, batch_size
        self.bands, self.rows = lsh_params(threshold, num_perm)
        # Pre-filter: a pair whose signatures agree at fewer positions than this is not verified. A pair at exactly
        # `threshold` falls below it with probability ~3e-5 (_SIGMAS standard deviations of the estimate).
        self._floor = threshold - _SIGMAS * math.sqrt(threshold * (1 - threshold) / num_perm)

    def fit(self, texts: Sequence[str]) -> "NearDuplicateIndex":
        """Compute every text's signature, `batch_size` texts a task, over `workers` processes.

        Keeps `texts` by reference (pairs are verified on them: do not change it afterwards). With more than one
        worker and batch, the pool is started with "spawn", so a script calling this needs the usual
        `if __name__ == "__main__":` guard.
        """
        starts = range(0, len(texts), self.batch_size)
        # A generator: the pool's feeder thread reads a batch only when a worker is ready to take it, so a few
        # batches of text are in memory at a time, not the corpus (texts may be on disk: `records.TextsOnDisk`).
        batches = (texts[s:s + self.batch_size] for s in starts)
        work = partial(_signatures, ngram=self.ngram, num_perm=self.num_perm, seed=self.seed)
        self.texts_ = texts
        self.signatures_ = np.empty((len(texts), self.num_perm), dtype=np.uint32)

        def store(parts: Iterable[np.ndarray]) -> None:  # in place: no list of parts and no concatenated copy
            for start, part in zip(starts, parts):
                self.signatures_[start:start + len(part)] = part

        if min(self.workers, len(starts)) > 1:
            # spawn, not fork: forking a process that already runs threads (torch, BLAS) can deadlock
            with multiprocessing.get_context("spawn").Pool(min(self.workers, len(starts))) as pool:
                store(pool.imap(work, batches))
        else:
            store(map(work, batches))
        return self

    def _band_runs(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per LSH band: (members, starts, sizes): the texts that share the band with another, in runs of equal band
        values (runs ordered by band hash, texts in a run by index)."""
        ids = np.flatnonzero(self.signatures_.min(axis=1) != 0xFFFFFFFF)  # texts without shingles pair with nothing
        for band in range(self.bands):
            yield self._runs(ids, band)

    def _runs(self, ids: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One band's runs. A function of its own, so the band's keys (~40 bytes per text) are freed on return,
        before the caller works through the runs."""
        key = np.zeros(ids.size, dtype=_U64)
        for col in range(band * self.rows, (band + 1) * self.rows):
            key = _mix(key ^ self.signatures_[ids, col])
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        sizes = np.diff(np.append(starts, key.size))
        members = ids[order[np.repeat(sizes > 1, sizes)]]  # only texts in runs of two or more
        sizes = sizes[sizes > 1]
        return members, np.cumsum(sizes) - sizes, sizes

    def _likely(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The signature pre-filter of pairs (i[k], j[k]), all at once (see `_floor`)."""
        keep = np.zeros(len(i), dtype=bool)
        for s in range(0, len(i), 8192):  # bounded memory: two 8192 x num_perm x 4-byte blocks of signatures (8 MB)
            sl = slice(s, s + 8192)
            keep[sl] = (self.signatures_[i[sl]] == self.signatures_[j[sl]]).mean(axis=1) >= self._floor
        return keep

    def pairs(self, between: int | None = None) -> list[tuple[int, int, float]]:
        """Verified near-duplicate pairs (i, j, jaccard), i < j, sorted. With `between=k`: only i < k <= j.

        A family of m near-identical texts has m*(m-1)/2 pairs, all verified: prefer `clusters` to group them.
        """
        n = len(self.signatures_)
        codes = np.empty(0, dtype=np.int64)  # candidate pairs as i * n + j, sorted: the order of the result
        for members, starts, sizes in self._band_runs():
            found = [codes]
            for size in np.unique(sizes).tolist():
                # every run of this size at once: a (runs, size) matrix of members, paired by its upper triangle
                group = members[starts[sizes == size][:, None] + np.arange(size)]
                first, second = np.triu_indices(size, 1)
                p, q = group[:, first].ravel(), group[:, second].ravel()
                i, j = np.minimum(p, q), np.maximum(p, q)
                if between is not None:
                    across = (i < between) & (j >= between)
                    i, j = i[across], j[across]
                found.append(i * n + j)
            codes = _sorted_unique(np.concatenate(found))  # merged band by band: a pair in many bands is held once
        i, j = codes // n, codes % n
        likely = self._likely(i, j)
        i, j = i[likely].tolist(), j[likely].tolist()
        cache = _ShingleCache(self.texts_, self.ngram)
        out = []
        for s in range(0, len(i), _PAIRS_AT_ONCE):
            first, second = i[s:s + _PAIRS_AT_ONCE], j[s:s + _PAIRS_AT_ONCE]
            sets = cache.get(first + second)
            for a, b in zip(first, second):
                sim = _jaccard_sorted(sets[a], sets[b])
                if sim >= self.threshold:
                    out.append((a, b, sim))
        return out

    def clusters(self) -> list[list[int]]:
        """Groups of two or more texts connected by verified pairs (transitively); singletons are left out.

        Each group is sorted, groups are ordered by their first member. The same groups as union-find over `pairs()`,
        without verifying every pair: within a run of texts sharing a band, a text is compared with the texts of each
        other group only until one matches. A family of m near-identical texts costs about m verifications, not m^2/2.
        """
        sig, cache = self.signatures_, _ShingleCache(self.texts_, self.ngram)
        apart: set[tuple[int, int]] = set()  # verified, not near (x < y: runs are in index order), for later bands

        def near(x: int, y: int) -> bool:
            if (x, y) in apart or (sig[x] == sig[y]).mean() < self._floor:
                return False  # most chance candidates stop here, before their texts are read
            sets = cache.get((x, y))
            if _jaccard_sorted(sets[x], sets[y]) >= self.threshold:
                return True
            apart.add((x, y))
            return False

        uf = UnionFind(len(sig))
        for members, starts, sizes in self._band_runs():  # one band at a time: a pair joined in one is skipped after
            runs = [members[s:s + k].tolist() for s, k in zip(starts.tolist(), sizes.tolist())]
            runs = [run for run in runs if len({uf.find(x) for x in run}) > 1]  # one group already: nothing to do
            for chunk in _chunks(runs, _PAIRS_AT_ONCE):
                # Hash the texts this chunk will likely verify in one call (a call per pair costs ~0.5 ms of numpy
                # overhead); at most _PAIRS_AT_ONCE texts, so they stay in the cache while the chunk is joined.
                cache.get(self._likely_verified(chunk, uf, apart))
                for run in chunk:
                    _join_run(run, uf, near)
        return uf.groups(min_size=2)

    def _likely_verified(self, runs: list[list[int]], uf: UnionFind, apart: set[tuple[int, int]]) -> list[int]:
        """Texts of `runs` that `clusters` will probably verify: in a pair of different groups, not known apart, that
        passes the signature pre-filter. Runs longer than _SMALL_RUN (families): all their members."""
        ids: dict[int, None] = {}
        first, second = [], []
        for run in runs:
            if len(run) > _SMALL_RUN:
                ids.update(dict.fromkeys(run))
                continue
            for a in range(len(run)):
                for b in range(a + 1, len(run)):
                    x, y = run[a], run[b]
                    if (x, y) not in apart and uf.find(x) != uf.find(y):
                        first.append(x)
                        second.append(y)
        if first:
            i, j = np.array(first), np.array(second)
            likely = self._likely(i, j)
            ids.update(dict.fromkeys(np.concatenate((i[likely], j[likely])).tolist()))
        return list(ids)


class _ShingleCache:
    """Shingle arrays of texts by index, computed on demand; the most recently used are kept, up to `budget` bytes.

    Verification needs the sets of the candidates only, and most of them once (a pair verified in one band is joined
    or remembered as apart before the next), so a small cache serves the reuse (a text compared with several others
    in a row) without holding a set per candidate.
    """

    def __init__(self, texts: Sequence[str], ngram: int, budget: int = _CACHE_BYTES):
        self.texts, self.ngram, self.budget = texts, ngram, budget
        self._arrays: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The shingle arrays of texts `ids`; those not cached are read and hashed together."""
        wanted = dict.fromkeys(ids)
        missing = [i for i in wanted if i not in self._arrays]
        hashed = _shingle_arrays((self.texts[i] for i in missing), self.ngram, wide=True) if missing else []
        for i, arr in zip(missing, hashed):
            self._arrays[i] = arr = arr.copy()  # a copy: the array is a view that would keep its whole batch alive
            self._bytes += arr.nbytes
        for i in wanted:
            wanted[i] = self._arrays[i]
            self._arrays.move_to_end(i)
        while self._bytes > self.budget:
            self._bytes -= self._arrays.popitem(last=False)[1].nbytes
        return wanted


def _chunks(runs: list[list[int]], texts: int) -> Iterator[list[list[int]]]:
    """Consecutive runs, grouped so that each group holds about `texts` texts (a longer run alone)."""
    chunk: list[list[int]] = []
    size = 0
    for run in runs:
        if chunk and size + len(run) > texts:
            yield chunk
            chunk, size = [], 0
        chunk.append(run)
        size += len(run)
    if chunk:
        yield chunk


def _join_run(run: list[int], uf: UnionFind, near: Callable[[int, int], bool]) -> None:
    """Union every pair of `run` that is `near`, calling `near` only for pairs not connected yet: each text is compared
    with the earlier texts of each other group until one matches (then the rest of that group is connected)."""
    placed: dict[int, list[int]] = {}  # root -> the run's texts already in that group
    for y in run:
        for root in list(placed):
            if root not in placed or uf.find(root) == uf.find(y):
                continue  # merged away meanwhile, or already y's group
            for x in placed[root]:
                if near(x, y):
                    rx, ry = uf.find(x), uf.find(y)
                    uf.union(x, y)
                    placed[uf.find(y)] = placed.pop(rx, []) + placed.pop(ry, [])
                    break
        placed.setdefault(uf.find(y), []).append(y)


def cross_pairs(texts_a: Sequence[str], texts_b: Sequence[str], threshold: float = _DEDUP.threshold,
                ngram: int = _DEDUP.ngram_size, num_perm: int = _DEDUP.num_perm, seed: int = 1,
                workers: int = _DEDUP.workers) -> list[tuple[int, int, float]]:
    """Verified near-duplicate pairs (i, j, jaccard) with texts_a[i] ~ texts_b[j], e.g. train/test leakage."""
    index = NearDuplicateIndex(threshold, ngram, num_perm, seed, workers).fit(list(texts_a) + list(texts_b))
    n = len(texts_a)
    return [(i, j - n, sim) for i, j, sim in index.pairs(between=n)]
