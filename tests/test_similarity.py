"""Near-duplicate detection: tokens, shingles, MinHash, verified pairs, clusters, cross-collection pairs."""
import itertools
import math
import random
import re
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.minhash import EMPTY, _densify, _probe_tables, shingle_arrays, signatures
from pipeline.run.records import Record, TextsOnDisk
from pipeline.neardup import NearDuplicateIndex, UnionFind, _join_run, cross_pairs, jaccard, lsh_params, shingles, tokenize

WORDS = "alpha beta gamma delta path file temp data user key value send load save shell exec host port list".split()


def script(rng: random.Random, lines: int = 30) -> str:
    """A random PowerShell-looking script, one statement a line."""
    out = []
    for _ in range(lines):
        v, f, w = rng.choice(WORDS) + str(rng.randrange(100)), rng.choice(WORDS).title(), rng.choice(WORDS)
        out.append(rng.choice([
            f"${v} = Get-{f} -Path 'C:\\{w}\\{v}.txt' -Count {rng.randrange(1000)}",
            f"if (${v} -gt {rng.randrange(1000)}) {{ Write-Host \"{w} {f}\" }}",
            f"Invoke-WebRequest -Uri 'http://{w}{rng.randrange(99)}.com/{v}' -OutFile ${v}",
            f"foreach (${v} in ${w}) {{ ${v}.{f}({rng.randrange(100)}) }}",
        ]))
    return "\n".join(out)


def edit_line(text: str, i: int, rng: random.Random) -> str:
    lines = text.split("\n")
    lines[i] = script(rng, 1)
    return "\n".join(lines)


def corpus(seed: int = 0, n: int = 40) -> tuple[list[str], set[tuple[int, int]]]:
    """`n` unrelated scripts, then a one-line edit of every fourth one; returns texts and the planted pairs."""
    rng = random.Random(seed)
    texts = [script(rng, rng.randrange(20, 40)) for _ in range(n)]
    planted = set()
    for i in range(0, n, 4):
        texts.append(edit_line(texts[i], rng.randrange(10), rng))
        planted.add((i, len(texts) - 1))
    return texts, planted


def reference_tokens(text: str) -> list[str]:
    data = text.encode("utf-8", "surrogatepass")
    return [t.decode("utf-8") for t in re.findall(rb"[\w\x80-\xff]+|[^\s\w\x80-\xff]", data)]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_tokenize_matches_the_documented_regex(text):
    assert tokenize(text) == reference_tokens(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=4), st.integers(1, 6))
def test_shingles_and_signatures_of_a_text_do_not_depend_on_its_batch(texts, ngram):
    together = shingle_arrays(texts, ngram)
    sigs = signatures(texts, ngram, 32, 1)
    for text, arr, sig in zip(texts, together, sigs):
        assert np.array_equal(arr, shingle_arrays([text], ngram)[0])
        assert set(arr.tolist()) == shingles(text, ngram)
        assert np.array_equal(sig, signatures([text], ngram, 32, 1)[0])
        assert (sig == EMPTY).all() == (not arr.size)  # no shingles: all empty; else no empty bin is left


def test_distinct_short_scripts_whose_signatures_collide_are_not_merged():
    """`echo 23038` and `echo 232765` have one shingle each, whose 32-bit signature values are equal (found among
    300,000 `echo N`): their signatures are identical, so they are a candidate pair, and a verification on 32-bit
    hashes could read Jaccard 1.0 and merge them. Verification compares 64-bit hashes."""
    pair = ["echo 23038", "echo 232765"]
    sig = signatures(pair, 5, 128, 1)
    assert np.array_equal(sig[0], sig[1]) and len(shingles(pair[0])) == 1  # the collision the test is about
    assert shingles(pair[0]) != shingles(pair[1])
    index = NearDuplicateIndex(threshold=0.85, workers=1).fit(pair + ["echo 1", "echo 1 "])
    assert index.pairs() == [(2, 3, 1.0)]  # the whitespace-only variant is still found
    assert index.clusters() == [[2, 3]]
    assert cross_pairs(pair[:1], pair[1:], workers=1) == []


def test_shingles_ignore_whitespace_and_short_texts_get_one():
    assert shingles("$a = Get-Item  -Path\t'x'\r\n") == shingles("$a=Get-Item -Path 'x'")
    assert shingles("") == shingles(" \n\t") == set()
    assert len(shingles("whoami")) == len(shingles("ls -la")) == 1
    assert shingles("ls -la") != shingles("ls -l")


def test_jaccard():
    a = shingles(script(random.Random(1)))
    assert jaccard(a, set(a)) == 1.0
    assert jaccard({1, 2, 3}, {3, 4}) == 0.25
    assert jaccard(set(), set()) == jaccard(a, set()) == 0.0


def test_one_line_edit_is_a_near_duplicate_and_another_script_is_not():
    rng = random.Random(2)
    original = script(rng)
    edited = edit_line(original, 15, rng)
    other = script(rng)  # same language, same statement shapes, different content
    assert jaccard(shingles(original), shingles(edited)) >= 0.85
    pairs = NearDuplicateIndex(threshold=0.85, workers=1).fit([original, other, edited]).pairs()
    assert [(i, j) for i, j, _ in pairs] == [(0, 2)]


def test_pairs_are_exactly_the_brute_force_pairs():
    texts, planted = corpus()
    index = NearDuplicateIndex(threshold=0.85, workers=1).fit(texts)
    sets = [shingles(t) for t in texts]
    truth = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2) if jaccard(sets[i], sets[j]) >= 0.85}
    pairs = index.pairs()
    assert planted <= truth
    assert [(i, j) for i, j, _ in pairs] == sorted(truth)
    for i, j, sim in pairs:
        assert sim == jaccard(sets[i], sets[j]) >= 0.85


def test_signature_agreement_estimates_jaccard_for_large_and_small_sets():
    """Over many seeds, two one-permutation signatures agree at a position with probability J (the mean within its
    sampling error), with a spread close to classic MinHash's sqrt(J(1 - J) / k) (1.0-1.2x measured), and a band of
    `rows` positions agrees with probability J^rows: what the LSH miss rate and the signature pre-filter assume. For
    sets much larger than num_perm and much smaller (where densification fills most bins)."""
    rng = random.Random(3)
    big = script(rng, 400)
    small = script(rng, 4)
    cmdlet = "$a = Get-Item -Path 'C:\\x\\y.txt' -Count 5"
    cases = [(big, "\n".join(big.split("\n")[100:] + [script(rng, 100)])),  # thousands of shingles
             (small, edit_line(small, 1, rng)),  # ~80
             (cmdlet, cmdlet.replace("5", "6"))]  # 18
    k, seeds = 128, 150
    _, rows = lsh_params(0.85, k)
    for a, b in cases:
        true = jaccard(shingles(a), shingles(b))
        sd = math.sqrt(true * (1 - true) / k)  # classic MinHash's spread of the agreement rate
        agree = np.array([(lambda s: s[0] == s[1])(signatures([a, b], 5, k, seed)) for seed in range(seeds)])
        rate = agree.mean(axis=1)
        assert abs(rate.mean() - true) < 4 * 1.3 * sd / math.sqrt(seeds), (true, rate.mean())
        assert 0.7 * sd < rate.std() < 1.3 * sd, (true, rate.std(), sd)
        bands = agree[:, :k // rows * rows].reshape(seeds, -1, rows).all(axis=2).mean(axis=1)
        assert abs(bands.mean() - true ** rows) < 4 * bands.std() / math.sqrt(seeds) + 0.01, (true, bands.mean())


def test_densify_borrows_from_the_first_non_empty_bin_in_each_bins_order():
    rng = np.random.default_rng(0)
    for k in (16, 128):
        sig = rng.integers(0, 1000, (200, k)).astype(np.uint32)
        sig[rng.random((200, k)) < rng.random((200, 1))] = EMPTY  # texts from nearly full to nearly empty
        sig[:2] = EMPTY  # no shingles: stays empty
        sig[2:4] = EMPTY
        sig[2:4, 3] = 7  # one non-empty bin
        order, _ = _probe_tables(k, 5)
        expected = sig.copy()
        for t, j in zip(*np.nonzero(sig == EMPTY)):
            donors = [b for b in order[j] if sig[t, b] != EMPTY]
            expected[t, j] = sig[t, donors[0]] if donors else EMPTY
        _densify(sig, 5)
        assert np.array_equal(sig, expected)


def test_signatures_do_not_depend_on_batch_or_position():
    rng = random.Random(4)
    big, small = script(rng, 400), script(rng, 3)
    alone = signatures([big], 5, 64, 1)
    mixed = signatures([small, big, "", small], 5, 64, 1)
    assert np.array_equal(alone[0], mixed[1])
    assert np.array_equal(mixed[0], mixed[3])


def test_results_do_not_depend_on_workers_or_batch_size(tmp_path, monkeypatch):
    import pipeline.neardup as similarity

    texts, _ = corpus(seed=5)
    one = NearDuplicateIndex(workers=1, batch_size=len(texts)).fit(texts)
    main = sys.modules["__main__"]
    before = main.__dict__.get("__spec__"), main.__dict__.get("__file__")
    two = NearDuplicateIndex(workers=2, batch_size=7).fit(texts)  # 8 batches over a pool of 2 processes
    assert (main.__dict__.get("__spec__"), main.__dict__.get("__file__")) == before  # hidden from workers, restored
    path = tmp_path / "records.jsonl"  # texts on disk: the workers read their own batches
    offsets = []
    with open(path, "w", encoding="utf-8") as f:
        for k, text in enumerate(texts):
            offsets.append(f.tell())
            f.write(Record(id=str(k), text=text, label="benign").to_json() + "\n")
    disk = NearDuplicateIndex(workers=2, batch_size=9).fit(TextsOnDisk(path, offsets))
    monkeypatch.setattr(similarity, "_POOL_AFTER", 0)  # verification hashes over the workers from the start too
    for other in (two, disk):
        assert np.array_equal(one.signatures_, other.signatures_)
        assert one.pairs() == other.pairs()
        assert one.clusters() == other.clusters()


def test_clusters_are_transitive():
    rng = random.Random(6)
    a = script(rng, 40)
    b = "\n".join([script(rng, 3)] + a.split("\n")[3:])  # a with its head rewritten
    c = "\n".join(b.split("\n")[:-3] + [script(rng, 3)])  # b with its tail rewritten: further from a
    s = [shingles(t) for t in (a, b, c)]
    near, far = min(jaccard(s[0], s[1]), jaccard(s[1], s[2])), jaccard(s[0], s[2])
    assert far < near
    threshold = (near + far) / 2  # a~b and b~c, but not a~c
    texts = [a, script(rng), b, c]
    index = NearDuplicateIndex(threshold=threshold, workers=1).fit(texts)
    assert [(i, j) for i, j, _ in index.pairs()] == [(0, 2), (2, 3)]
    assert index.clusters() == [[0, 2, 3]]


def test_clusters_are_the_connected_components_of_pairs():
    # chains of texts, each two lines away from the previous one: bucket-mates are similar to some, not all, others
    rng = random.Random(9)
    texts = []
    for _ in range(6):
        text = script(rng, 30)
        for _ in range(8):
            texts.append(text)
            text = edit_line(edit_line(text, rng.randrange(30), rng), rng.randrange(30), rng)
    texts += [script(rng) for _ in range(10)]
    rng.shuffle(texts)
    for threshold in (0.5, 0.7, 0.85):
        index = NearDuplicateIndex(threshold=threshold, workers=1).fit(texts)
        uf = UnionFind(len(texts))
        for i, j, _ in index.pairs():
            uf.union(i, j)
        assert index.clusters() == uf.groups(min_size=2)
        assert len(index.clusters()) > 0


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_joining_runs_connects_exactly_what_all_pairs_would(data):
    n = data.draw(st.integers(2, 10))
    edges = data.draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).map(lambda e: tuple(sorted(e)))))
    runs = data.draw(st.lists(st.lists(st.integers(0, n - 1), min_size=2, unique=True), max_size=4))
    joined, expected = UnionFind(n), UnionFind(n)

    def near(x, y):
        assert joined.find(x) != joined.find(y)  # never verifies a pair it has already connected
        return tuple(sorted((x, y))) in edges

    for run in runs:
        _join_run(run, joined, near)
        for x, y in itertools.combinations(run, 2):
            if tuple(sorted((x, y))) in edges:
                expected.union(x, y)
    assert joined.groups() == expected.groups()


def test_union_find():
    uf = UnionFind(6)
    assert uf.union(4, 1) and uf.union(1, 5) and uf.union(0, 2)
    assert not uf.union(5, 4)
    assert uf.groups() == [[0, 2], [1, 4, 5], [3]]
    assert uf.groups(min_size=2) == [[0, 2], [1, 4, 5]]
    assert uf.roots(np.array([5, 3, 2, 4, 1, 0])).tolist() == [uf.find(i) for i in (5, 3, 2, 4, 1, 0)]
    chain = UnionFind(64)  # deeper trees: roots follows parents until none moves
    for i in range(0, 64, 2):
        chain.union(i, i + 1)
    for step in (2, 4, 8, 16, 32):
        for i in range(0, 64, 2 * step):
            chain.union(i + step, i)
    assert chain.roots(np.arange(64)).tolist() == [chain.find(i) for i in range(64)] == [chain.find(0)] * 64


def test_cross_pairs_reports_only_pairs_across_the_two_lists():
    rng = random.Random(7)
    train = [script(rng) for _ in range(6)]
    train.append(edit_line(train[0], 3, rng))  # a near-duplicate inside train: not leakage
    test = [script(rng) for _ in range(4)]
    test.append(edit_line(train[2], 20, rng))
    found = cross_pairs(train, test, threshold=0.85, workers=1)
    assert [(i, j) for i, j, _ in found] == [(2, 4)]
    assert found[0][2] == jaccard(shingles(train[2]), shingles(test[4]))


def test_empty_and_very_short_texts():
    texts = ["", "   \n", "whoami", "whoami", "ls -la", "", "x=1", script(random.Random(8))]
    index = NearDuplicateIndex(workers=1).fit(texts)
    assert [(i, j) for i, j, _ in index.pairs()] == [(2, 3)]  # empty texts pair with nothing
    assert index.clusters() == [[2, 3]]
    assert NearDuplicateIndex(workers=1).fit([]).pairs() == []
    assert cross_pairs([], ["a"], workers=1) == []


def test_lsh_bands_miss_few_pairs_at_the_threshold():
    for threshold in (0.5, 0.7, 0.85, 0.95):
        bands, rows = lsh_params(threshold, 128)
        assert bands * rows <= 128
        assert (1 - threshold ** rows) ** bands <= 1e-4


def test_clusters_hash_the_texts_they_verify_together(monkeypatch):
    """`clusters` reads and hashes the texts of a chunk of runs in one call, not one call per verified pair (which cost
    ~0.5 ms of numpy overhead each), and chunking (forced small here) changes no group."""
    import pipeline.minhash as minhash
    import pipeline.neardup as similarity

    rng = random.Random(11)
    texts = []
    for _ in range(5):  # families of 6 near-identical texts, and unrelated ones
        text = script(rng, 30)
        texts += [edit_line(text, rng.randrange(30), rng) for _ in range(6)]
    texts += [script(rng) for _ in range(20)]
    rng.shuffle(texts)
    index = NearDuplicateIndex(threshold=0.8, workers=1).fit(texts)
    expected = UnionFind(len(texts))
    for i, j, _ in index.pairs():
        expected.union(i, j)

    calls = []  # texts hashed by each call
    hash_texts = minhash.shingle_arrays

    def counted(texts, *args, **kwargs):
        texts = list(texts)
        calls.append(len(texts))
        return hash_texts(texts, *args, **kwargs)

    monkeypatch.setattr(minhash, "shingle_arrays", counted)
    for chunk in (1024, 4):
        monkeypatch.setattr(similarity, "_PAIRS_AT_ONCE", chunk)
        calls.clear()
        assert index.clusters() == expected.groups(min_size=2)
        if chunk == 1024:  # 30 family members to verify: hashed several a call (a call per band that brings new
            # candidates at most), not one or two per call as when each verified pair hashed its own texts
            assert sum(calls) >= 30 and len(calls) <= sum(calls) / 4, calls
