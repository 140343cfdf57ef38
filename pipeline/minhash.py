"""Texts -> token shingles -> one-permutation MinHash signatures: the hashing half of near-duplicate search.

Imports numpy only: `NearDuplicateIndex.fit` runs `signatures` in spawned worker processes, each of which imports
this module (importing the config schema as well cost ~0.8 s per worker).

1. Each text becomes a set of 64-bit token 5-gram ("shingle") hashes, computed with numpy over the raw bytes of about
   _BUFFER_CHARS of text at a time (`shingle_arrays`, `shingles`). Tokens: runs of identifier bytes, or single
   punctuation bytes (`tokenize`); whitespace only separates them. A text shorter than the n-gram size has one
   shingle of all its tokens.
2. Each set becomes a signature of `num_perm` 32-bit values by one-permutation hashing with optimal densification
   (Li, Owen, Zhang 2012; Shrivastava 2017): one more 64-bit mix of each shingle hash (keyed by `seed`); its top 32
   bits choose one of `num_perm` bins, its low 32 bits are the value, and each bin keeps the minimum value that falls
   in it. An empty bin j then takes the value of the first non-empty bin in a fixed random order of the bins that is
   its own (`_probe_tables`), the same order for every text. Cost per text: one hash and one minimum per shingle,
   where classic MinHash computes num_perm hashes of every shingle, plus (num_perm - m) * m steps to fill the empty
   bins of a text with m non-empty ones (at most num_perm^2 / 4; none for most texts of over ~1,000 shingles).
   Why two signatures agree at a position with probability equal to the Jaccard similarity J of the two sets: let b*
   be the first bin, in position j's order (j itself first), that is non-empty for the union U of the two sets, and
   u the element of U with the smallest value in b*. Every earlier bin is empty for both sets, so both take their
   value at j from b*; if u is in both sets both take u's value, and if it is in one only, the other set's value is
   larger or comes from another bin (equal only by a 2^-32 coincidence). By symmetry u is a uniform draw from U, so
   P(agree) = |A & B| / |A | B| = J. Positions are not independent draws as with num_perm permutations (bins split
   one random partition, and bins borrow from the same donors), but the tests measure the agreement rate's mean and
   spread over many seeds, for large sets and for sets smaller than num_perm, against J and sqrt(J(1 - J) / num_perm)
   (classic MinHash's), and the rate at which a band of positions agrees against J^rows.

Determinism: hashing uses fixed constants and `seed` only (never Python's salted `hash`), and a text's shingles and
signature do not depend on which other texts share its buffer or batch.

Memory: while hashing, a process needs about 50 bytes per byte of the ~128 KB of text it hashes at once (50 MB for a
single 1 MB script), and a few MB while it fills empty bins.
"""
from __future__ import annotations

import functools
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np

T = TypeVar("T", bound=Sequence)

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_P = 0x100000001B3  # odd, so it has an inverse modulo 2^64
_P_INVERSE = pow(_P, -1, 2**64)
_BUFFER_CHARS = 1 << 17  # text hashed in one buffer, so its arrays (~50 bytes per byte) stay small and in cache
EMPTY = 0xFFFFFFFF  # signature value of an empty bin; a text without shingles has nothing else
_DENSIFY_STEPS = 1 << 20  # (empty bin, non-empty bin) comparisons made at once while densifying (~2 MB)

# Byte classes of the tokenizer. Non-ASCII bytes count as identifier bytes so that a UTF-8 letter never splits a word.
_IS_WORD = np.zeros(256, dtype=bool)
_IS_WORD[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] = True
_IS_WORD[128:] = True
_IS_SPACE = np.zeros(256, dtype=bool)
_IS_SPACE[list(b" \t\n\r\x0b\x0c")] = True
_SPACE, _WORD, _PUNCT = 0, 1, 2
_CLASS = np.where(_IS_WORD, _WORD, np.where(_IS_SPACE, _SPACE, _PUNCT)).astype(np.uint8)  # one lookup, not two


def mix(x: np.ndarray) -> np.ndarray:
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


def groups_by_size(items: Iterable[T], budget: int) -> Iterator[list[T]]:
    """Consecutive groups of items whose len()s add up to about `budget` (an item longer than that alone)."""
    group: list[T] = []
    size = 0
    for item in items:
        if group and size + len(item) > budget:
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item)
    if group:
        yield group


def _buffers(texts: Iterable[str]) -> Iterator[list[str]]:
    """Consecutive groups of texts of about _BUFFER_CHARS characters (a longer text alone): hashed as one buffer."""
    return groups_by_size(texts, _BUFFER_CHARS)


def shingle_arrays(texts: Iterable[str], ngram: int) -> list[np.ndarray]:
    """Sorted unique 64-bit shingle hashes of each text (what verification compares), about _BUFFER_CHARS at a time."""
    out: list[np.ndarray] = []
    for group in _buffers(texts):
        values, owner = _shingle_hashes(group, ngram)
        # The short texts' shingles come last (see `_shingle_hashes`): put them in text order (windows already are).
        order = np.argsort(owner, kind="stable")
        owner, values = owner[order], mix(values[order])
        bounds = np.searchsorted(owner, np.arange(len(group) + 1))
        # One sort per text: np.lexsort((values, owner)) over the buffer took longer than all the hashing
        out += [sorted_unique(values[bounds[i]:bounds[i + 1]]) for i in range(len(group))]
    return out


def _shingle_hashes(texts: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, text) of every shingle of `texts`, joined into one byte buffer: every step is one numpy operation over
    all of them. The hashes are the raw polynomials (uint64, not yet mixed, repeats kept); the windows come in text
    order, then the one shingle of each text shorter than `ngram` tokens."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    text_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    # One newline between texts: whitespace ends tokens, so no token spans two texts.
    buf = np.frombuffer(b"\n".join(encoded) + b"\n", dtype=np.uint8)
    starts, ends = _token_bounds(buf)
    if starts.size == 0:
        return np.empty(0, dtype=_U64), np.empty(0, dtype=np.int64)

    # Token hash: sum of (byte + 1) * P^(offset in token), from prefix sums over the buffer; multiplying by P^-start
    # cancels the token's position, so equal tokens hash equally wherever they are.
    powers, inverse_powers = _powers(buf.size)
    prefix = np.zeros(buf.size + 1, dtype=_U64)
    weighted = buf.astype(_U64)
    weighted += _U64(1)
    weighted *= powers  # in place: one temporary of 8 bytes per byte, not three
    np.cumsum(weighted, out=prefix[1:])
    tok = mix((prefix[ends] - prefix[starts]) * inverse_powers[starts])
    first_token = np.searchsorted(starts, text_starts)  # tokens are in buffer order, so each text's are a run
    n_tokens = np.diff(np.append(first_token, starts.size))
    text_of_tok = np.repeat(np.arange(len(texts)), n_tokens)

    # Shingle hash of tokens t_i..t_{i+n-1}: polynomial t_i*Q^(n-1) + ... + t_{i+n-1}, kept only inside one text.
    q = _U64(0x9E3779B97F4A7C15)
    windows = tok.size - ngram + 1
    if windows > 0:
        h = tok[:windows].copy()
        for k in range(1, ngram):
            h *= q
            h += tok[k:k + windows]
        inside = text_of_tok[:windows] == text_of_tok[ngram - 1:]
        shingle, owner = h[inside], text_of_tok[:windows][inside]
    else:
        shingle, owner = np.empty(0, dtype=_U64), np.empty(0, dtype=np.int64)

    # A text with fewer than `ngram` tokens gets one shingle of all of them, by the same polynomial.
    short = np.flatnonzero((n_tokens > 0) & (n_tokens < ngram))
    if short.size:
        first, count = first_token[short], n_tokens[short]
        extra = tok[first]
        for k in range(1, ngram - 1):  # all short texts at once, token by token, each while it has tokens left
            more = np.flatnonzero(count > k)
            extra[more] = extra[more] * q + tok[first[more] + k]
        shingle = np.concatenate([shingle, extra])
        owner = np.concatenate([owner, short])
    return shingle, owner


def shingles(text: str, ngram: int = 5) -> set[int]:
    """The token n-grams of `text` as 64-bit hashes (what verification compares). Fewer than `ngram` tokens: one
    shingle of them all; no tokens: empty."""
    return set(shingle_arrays([text], ngram)[0].tolist())


def jaccard(a: set[int], b: set[int]) -> float:
    """|a & b| / |a | b|; 0.0 when either set is empty (an empty text is a near-duplicate of nothing)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """`jaccard` for sorted arrays of unique values."""
    if a.size == 0 or b.size == 0:
        return 0.0
    idx = np.minimum(np.searchsorted(b, a), b.size - 1)
    inter = int(np.count_nonzero(b[idx] == a))
    return inter / (a.size + b.size - inter)


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for 1-d integers; sort + mask is several times faster than np.unique on numpy 2.4."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if x.size else x


def _seed_key(seed: int) -> np.uint64:
    """The 64-bit constant a shingle hash is XORed with before mixing: a different hash function per seed."""
    return mix(np.array([seed], dtype=_U64) + _U64(0x9E3779B97F4A7C15))[0]


@functools.lru_cache(maxsize=8)
def _probe_tables(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Where an empty bin borrows from: row j of `order` is a random permutation of the bins, the order in which
    empty bin j looks for a non-empty one (the same for every text: that is what makes borrowing agree), and row j
    of `rank` its inverse (rank[j, b]: the place of bin b in j's order). Both (num_perm, num_perm), int16."""
    rng = np.random.default_rng([seed, 0x0D3E5])
    dtype = np.int16 if num_perm < 2**15 else np.int32
    order = rng.permuted(np.tile(np.arange(num_perm, dtype=dtype), (num_perm, 1)), axis=1)
    return order, np.argsort(order, axis=1).astype(dtype)


def signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation MinHash signatures (len(texts), num_perm) uint32. A text without shingles gets all EMPTY."""
    sig = np.full((len(texts), num_perm), EMPTY, dtype=np.uint32)
    key, row = _seed_key(seed), 0
    for group in _buffers(texts):
        shingle, owner = _shingle_hashes(group, ngram)
        h = mix(shingle ^ key)
        # The top 32 bits pick the bin (multiply-shift: uniform for any num_perm), the low 32 bits are the value,
        # capped below EMPTY so that a real minimum never reads as "no shingles".
        cell = (((h >> _U64(32)) * _U64(num_perm)) >> _U64(32)).astype(np.int64)
        cell += (owner + row) * num_perm
        np.minimum.at(sig.reshape(-1), cell, np.minimum(h & _MASK32, _U64(EMPTY - 1)).astype(np.uint32))
        row += len(group)
    _densify(sig, seed)
    return sig


_HELD: Sequence[str] = ()  # a worker process's texts (`hold_texts`), e.g. records.TextsOnDisk: read by index range


def hold_texts(texts: Sequence[str]) -> None:
    """Pool initializer: keep `texts` in this worker process, for `signatures_of_range`."""
    global _HELD
    _HELD = texts


def signatures_of_range(bounds: tuple[int, int], ngram: int, num_perm: int, seed: int) -> np.ndarray:
    """`signatures` of the held texts start..stop-1 (read here, in the worker)."""
    return signatures(_HELD[bounds[0]:bounds[1]], ngram, num_perm, seed)


def shingle_arrays_task(task: tuple[list[int], list[str] | None, int]) -> list[np.ndarray]:
    """`shingle_arrays` in a worker process: (ids, their texts or None to read the held ones, ngram)."""
    ids, texts, ngram = task
    return shingle_arrays(texts if texts is not None else (_HELD[i] for i in ids), ngram)


def _densify(sig: np.ndarray, seed: int) -> None:
    """Fill the empty bins of each text that has a non-empty one, in place: bin j takes the value of the first
    non-empty bin in its probe order (`_probe_tables`), Shrivastava's optimal densification (2017).

    A text with m non-empty bins of k compares the places of its m bins in each empty bin's order: (k - m) * m steps,
    at most k^2 / 4, not (k - m) * k (short scripts are common); a text with one non-empty bin is filled directly."""
    k = sig.shape[1]
    empty = sig == EMPTY
    n_empty = empty.sum(axis=1)
    one = np.flatnonzero(n_empty == k - 1)  # one non-empty bin (one-line scripts): every bin borrows from it
    sig[one] = sig[one].min(axis=1, keepdims=True)
    rows = np.flatnonzero((n_empty > 0) & (n_empty < k - 1))
    if rows.size == 0:
        return
    order, rank = _probe_tables(k, seed)
    full_count = k - n_empty[rows]
    for m in np.unique(full_count).tolist():  # texts with m non-empty bins together: a (texts, k - m, m) block
        same = rows[full_count == m]
        step = max(1, _DENSIFY_STEPS // ((k - m) * m))  # bounded memory: ~_DENSIFY_STEPS x 2 bytes a block
        for s in range(0, same.size, step):
            texts = same[s:s + step]
            sub = empty[texts]
            holes = np.nonzero(sub)[1].reshape(texts.size, k - m)
            full = np.nonzero(~sub)[1].reshape(texts.size, m)
            first = rank[holes[:, :, None], full[:, None, :]].min(axis=2)  # each hole's earliest non-empty bin
            sig[texts[:, None], holes] = np.take_along_axis(sig[texts], order[holes, first], axis=1)
