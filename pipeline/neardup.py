"""Near-duplicate scripts: shingles -> one-permutation MinHash -> LSH candidates -> exact Jaccard -> union-find.

Two scripts are near-duplicates when the Jaccard similarity of their sets of token n-grams ("shingles") is at least
`threshold`. Comparing every pair is quadratic, so:

1. each script becomes a signature of `num_perm` values (`minhash.signatures`: one-permutation MinHash with optimal
   densification, computed in worker processes); two signatures agree at a position with probability equal to the
   Jaccard similarity of the two scripts' shingle sets (see `pipeline/minhash.py` and its tests);
2. LSH banding: signatures are cut into `bands` bands of `rows` values; scripts that agree on a whole band become
   candidate pairs. `rows` is the largest that still misses a pair at exactly `threshold` with probability <= 1e-4,
   reckoning each position an independent draw that agrees with probability `threshold` (the tests check, over many
   seeds, that a pair's band agreement rate matches J^rows). At the default 0.85 and 128 values: 21 bands of 6 rows,
   P(miss) = (1 - 0.85^6)^21 = 4.8e-5 at J = 0.85, 1.2e-7 at 0.9; a pair at J = 0.5 becomes a candidate with
   probability 0.28, at 0.3 with 0.015;
3. candidates whose signatures agree at far fewer positions than `threshold` are dropped cheaply: below 5 classic
   MinHash standard deviations under it (sqrt(J(1 - J) / num_perm): 0.692 at the defaults). One-permutation
   signatures spread 1.0-1.2x as much (measured by the tests), so that is at least 4.2 of their own deviations: a
   pair at exactly the threshold falls under it with probability ~1.5e-5. Every remaining pair is verified with the
   exact Jaccard similarity of its 64-bit shingle sets (`shingles`). The signatures' 32-bit values would not do: a
   script shorter than the n-gram size has one shingle, so two such scripts have equal signatures when their values
   collide (among 300,000 distinct `echo N` scripts about ten pairs do: 300,000^2 / 2^33). In 64 bits, two distinct
   shingles collide with probability 2^-64: for single-shingle scripts, about n^2 / 2^65 for n of them (3e-8 at n =
   1,000,000), and no higher for longer scripts, whose Jaccard one collision moves by less than 1/size. Every reported
   pair therefore is >= `threshold` up to those odds (precision 1.0), and a pair at or above the threshold is missed
   with probability below 1e-4 (LSH and pre-filter together: 6.3e-5 at exactly 0.85, far less above it).

Determinism: a script's signature does not depend on which other scripts share its batch (`minhash`), so results are
the same for any `workers`/`batch_size`.

Memory: `NearDuplicateIndex` keeps one signature per script (`num_perm` x 4 bytes: 512 B at 128) and a reference to the
texts it was fitted on; `fit` reads the texts one batch at a time, as the worker processes take them (texts on disk,
`records.TextsOnDisk`, are read by the workers themselves). LSH bands are built one at a time (about 40 bytes per
script while one is sorted); the runs of texts sharing a band value are kept (8 bytes per member: only texts that
share a band with another), so `pairs` and `clusters` do not recompute them. Union-find takes 16 bytes per script,
and pairs that fail verification are remembered (they meet again in other bands: a few bytes per script). Shingle
sets (8 bytes per distinct shingle, about 8 bytes per token) are recomputed while `pairs`/`clusters` verify
candidates, only for texts whose signatures pass the pre-filter, and kept in a cache of at most _CACHE_BYTES.

Cost: `fit` is linear in the amount of text, hashed over `workers` processes. Verification reads and hashes the
candidates' texts again (`_ShingleCache`), over the worker processes too once a call has hashed _POOL_AFTER texts
(a large corpus: starting them costs ~0.5 s). `pairs` verifies every candidate pair, so a family of m near-identical
scripts costs m(m-1)/2 verifications (m = 2,000: 2 million pairs, ~25 s); `clusters` needs about m (0.2 s). Remove
exact duplicates first (`records.text_id`).
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.pool
import sys
from array import array
from collections import OrderedDict
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from pipeline import minhash
from pipeline.config import DedupConfig
from pipeline.minhash import EMPTY, jaccard, jaccard_sorted, shingles, sorted_unique, tokenize  # noqa: F401 (re-export)
from pipeline.run.records import TextsOnDisk

_DEDUP = DedupConfig()  # the schema's defaults: the one source of the threshold, n-gram size and permutations

_MISS = 1e-4  # LSH: the largest chance of missing a pair at exactly `threshold` that we accept
_SIGMAS = 5.0  # signature pre-filter: drop candidates whose estimate is this many standard deviations below threshold
_CACHE_BYTES = 8 << 20  # shingle arrays kept for reuse while verifying (~4,000 scripts of 2 KB)
_PAIRS_AT_ONCE = 1024  # `pairs`/`clusters` verify candidates in chunks: their texts are read and hashed together
_SMALL_RUN = 16  # `clusters`: runs up to this long have their pairs pre-filtered before their texts are hashed
_POOL_AFTER = 20_000  # texts verification hashes in this process before it starts worker processes for the rest


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

    def roots(self, items: np.ndarray) -> np.ndarray:
        """`find` of every item at once (numpy pointer jumping; union by size keeps the trees O(log n) deep)."""
        parent = np.frombuffer(self.parent, dtype=np.int64)
        roots = parent[items]
        while True:
            up = parent[roots]
            if np.array_equal(up, roots):
                return roots
            roots = up

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
        `if __name__ == "__main__":` guard. Texts on disk (`records.TextsOnDisk`) are read by the workers themselves:
        each gets the file's offsets once, then ranges of indices, so this process neither parses nor sends them.
        """
        starts = range(0, len(texts), self.batch_size)
        params = dict(ngram=self.ngram, num_perm=self.num_perm, seed=self.seed)
        self.texts_, self.runs_ = texts, None
        self.signatures_ = np.empty((len(texts), self.num_perm), dtype=np.uint32)

        def store(parts: Iterable[np.ndarray]) -> None:  # in place: no list of parts and no concatenated copy
            for start, part in zip(starts, parts):
                self.signatures_[start:start + len(part)] = part

        workers = min(self.workers, len(starts))
        if workers > 1 and isinstance(texts, TextsOnDisk):
            ranges = ((s, s + self.batch_size) for s in starts)
            with _spawn_pool(workers, minhash.hold_texts, (texts,)) as pool:
                store(pool.imap(partial(minhash.signatures_of_range, **params), ranges))
            return self
        # A generator: the pool's feeder thread takes a batch only as the pipe to the workers has room, so a few
        # batches of text are in memory at a time, not the corpus.
        batches = (texts[s:s + self.batch_size] for s in starts)
        work = partial(minhash.signatures, **params)
        if workers > 1:
            with _spawn_pool(workers) as pool:
                store(pool.imap(work, batches))
        else:
            store(map(work, batches))
        return self

    def _band_runs(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per LSH band: (members, starts, sizes): the texts that share the band with another, in runs of equal band
        values (runs ordered by band hash, texts in a run by index). Computed once, for `pairs` and `clusters`."""
        if self.runs_ is None:
            ids = np.flatnonzero(self.signatures_[:, 0] != EMPTY)  # texts without shingles pair with nothing
            self.runs_ = [self._runs(ids, band) for band in range(self.bands)]
        return self.runs_

    def _runs(self, ids: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One band's runs. A function of its own, so the band's keys (~40 bytes per text) are freed on return."""
        cols = slice(band * self.rows, (band + 1) * self.rows)
        # the band's columns copied out first: one pass over the signatures, not `rows` strided gathers
        block = self.signatures_[:, cols] if ids.size == len(self.signatures_) else self.signatures_[ids, cols]
        block = np.ascontiguousarray(block)
        key = block[:, 0].astype(np.uint64)
        for col in range(1, self.rows):
            key = minhash.mix(key)  # the same values in another order give another key
            key ^= block[:, col]
        del block
        order = np.argsort(key)  # equal keys end up adjacent; members of a run are sorted below
        key = key[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        sizes = np.diff(np.append(starts, key.size))
        in_run = np.repeat(sizes > 1, sizes)
        owner = np.repeat(np.arange(sizes.size), sizes)[in_run]  # the run of each member
        members = ids[order[in_run]]
        members = members[np.lexsort((members, owner))]  # texts of a run by index (argsort is not stable)
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
            codes = sorted_unique(np.concatenate(found))  # merged band by band: a pair in many bands is held once
        i, j = codes // n, codes % n
        likely = self._likely(i, j)
        i, j = i[likely].tolist(), j[likely].tolist()
        out = []
        with _ShingleCache(self.texts_, self.ngram, self.workers) as cache:
            for s in range(0, len(i), _PAIRS_AT_ONCE):
                first, second = i[s:s + _PAIRS_AT_ONCE], j[s:s + _PAIRS_AT_ONCE]
                sets = cache.get(first + second)
                for a, b in zip(first, second):
                    sim = jaccard_sorted(sets[a], sets[b])
                    if sim >= self.threshold:
                        out.append((a, b, sim))
        return out

    def clusters(self) -> list[list[int]]:
        """Groups of two or more texts connected by verified pairs (transitively); singletons are left out.

        Each group is sorted, groups are ordered by their first member. The same groups as union-find over `pairs()`,
        without verifying every pair: within a run of texts sharing a band, a text is compared with the texts of each
        other group only until one matches. A family of m near-identical texts costs about m verifications, not m^2/2.
        """
        sig = self.signatures_
        apart: set[tuple[int, int]] = set()  # verified, not near (x < y: runs are in index order), for later bands
        uf = UnionFind(len(sig))
        with _ShingleCache(self.texts_, self.ngram, self.workers) as cache:

            def near(x: int, y: int) -> bool:
                if (x, y) in apart or (sig[x] == sig[y]).mean() < self._floor:
                    return False  # most chance candidates stop here, before their texts are read
                sets = cache.get((x, y))
                if jaccard_sorted(sets[x], sets[y]) >= self.threshold:
                    return True
                apart.add((x, y))
                return False

            for members, starts, sizes in self._band_runs():  # a band at a time: a pair joined in one is skipped after
                if not starts.size:
                    continue
                roots = uf.roots(members)  # runs already one group need nothing (most, after a few bands)
                split = np.minimum.reduceat(roots, starts) != np.maximum.reduceat(roots, starts)
                runs = [members[s:s + k].tolist() for s, k in zip(starts[split].tolist(), sizes[split].tolist())]
                for chunk in minhash.groups_by_size(runs, _PAIRS_AT_ONCE):  # about _PAIRS_AT_ONCE texts each
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


@contextlib.contextmanager
def _spawn_pool(workers: int, initializer: Callable | None = None,
                initargs: tuple = ()) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of `workers` spawned processes that import only what the hashing needs.

    Spawn, not fork: forking a process that already runs threads (torch, BLAS) can deadlock. A spawned process
    re-runs the parent's __main__ module first (so that functions defined there can be unpickled), which costs the
    imports of whatever started us (the CLI: ~0.35 s a worker, a benchmark: ~1 s) while the hashing function lives in
    `pipeline.minhash` (numpy only). So the workers are started with __main__'s name and path hidden, then restored.
    """
    main = sys.modules["__main__"]
    saved = {key: main.__dict__[key] for key in ("__spec__", "__file__") if key in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer, initargs)  # starts the workers now
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
    with pool:
        yield pool


class _ShingleCache:
    """Shingle arrays of texts by index, computed on demand; the most recently used are kept, up to `budget` bytes.

    Verification needs the sets of the candidates only, and most of them once (a pair verified in one band is joined
    or remembered as apart before the next), so a small cache serves the reuse (a text compared with several others
    in a row) without holding a set per candidate. Once it has hashed _POOL_AFTER texts (about 1.5 s of work: a large
    corpus), it hashes the rest over `workers` spawned processes (over `records.TextsOnDisk`, they read the texts too);
    use it in a `with` block, which ends them.
    """

    def __init__(self, texts: Sequence[str], ngram: int, workers: int = 1, budget: int = _CACHE_BYTES):
        self.texts, self.ngram, self.workers, self.budget = texts, ngram, workers, budget
        self._arrays: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = self._hashed = 0
        self._stack = contextlib.ExitStack()
        self._pool: multiprocessing.pool.Pool | None = None

    def __enter__(self) -> "_ShingleCache":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def get(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The shingle arrays of texts `ids`; those not cached are read and hashed together."""
        wanted = dict.fromkeys(ids)
        missing = [i for i in wanted if i not in self._arrays]
        for i, arr in zip(missing, self._hash(missing)):
            self._arrays[i] = arr  # its own array (`sorted_unique` returns a new one), not a view of its batch's
            self._bytes += arr.nbytes
        for i in wanted:
            wanted[i] = self._arrays[i]
            self._arrays.move_to_end(i)
        while self._bytes > self.budget:
            self._bytes -= self._arrays.popitem(last=False)[1].nbytes
        return wanted

    def _hash(self, ids: list[int]) -> list[np.ndarray]:
        if self._pool is None and self.workers > 1 and self._hashed >= _POOL_AFTER:
            on_disk = isinstance(self.texts, TextsOnDisk)
            held = (minhash.hold_texts, (self.texts,)) if on_disk else ()
            self._pool = self._stack.enter_context(_spawn_pool(self.workers, *held))
        self._hashed += len(ids)
        if self._pool is None or len(ids) < 2 * self.workers:
            return minhash.shingle_arrays((self.texts[i] for i in ids), self.ngram) if ids else []
        parts = [ids[k::self.workers] for k in range(self.workers)]  # interleaved: even when sorted by length
        if isinstance(self.texts, TextsOnDisk):  # the workers hold the texts: send indices
            tasks = [(part, None, self.ngram) for part in parts]
        else:
            tasks = [(part, [self.texts[i] for i in part], self.ngram) for part in parts]
        hashed = dict(zip((i for part in parts for i in part),
                          (arr for arrays in self._pool.map(minhash.shingle_arrays_task, tasks) for arr in arrays)))
        return [hashed[i] for i in ids]


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
