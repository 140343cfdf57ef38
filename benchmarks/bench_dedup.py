"""Benchmark near-duplicate detection (`pipeline.neardup`) on synthetic scripts with planted pairs.

    python -m benchmarks.bench_dedup [--sizes 10000 20000 50000] [--out benchmarks/results/dedup.json]

For each size (best of --repeat runs, as the CPUs are shared): seconds for fit + pairs (all verified pairs) and for
clusters, scripts/s, peak RSS of this process and its worker processes together (sampled by a thread; the corpus
itself is in it), recall of the planted near-duplicates, precision (every reported pair re-checked with
`shingles`/`jaccard`), and how many planted near-misses (just below the threshold) were reported. Also the plain
datasketch loop (one MinHash per script, update per shingle, MinHashLSH insert + query, one process) on a subsample,
and this index with one worker on the same subsample, for comparison.

    python -m benchmarks.bench_dedup --sizes 50000 --against main

With --against REF, `pipeline/neardup.py` as of git REF also runs on the largest size, alternating with this
checkout's run by run (so both see the same machine load), and the benchmark prints the ratio of their times and
checks that both give the same signatures, pairs and clusters.
"""
from __future__ import annotations

import argparse
import os
import importlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from benchmarks.synthetic import make_corpus
from pipeline.run.records import write_json
from pipeline.neardup import NearDuplicateIndex, jaccard, shingles

_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|[^\sA-Za-z0-9_]")


class PeakRSS:
    """Largest summed RSS of this process and its children, polled every 10 ms while in the `with` block."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.01)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def datasketch_loop(texts: list[str], threshold: float, ngram: int, num_perm: int, seed: int) -> float:
    """Scripts/s of the plain datasketch approach: one MinHash per script, one update per shingle, LSH insert+query."""
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    for k, text in enumerate(texts):
        tokens = _TOKEN.findall(text)
        grams = {" ".join(tokens[i:i + ngram]) for i in range(max(1, len(tokens) - ngram + 1))}
        m = MinHash(num_perm=num_perm, seed=seed)
        for g in grams:
            m.update(g.encode("utf-8"))
        lsh.insert(k, m)
        hashes.append(m)
    for m in hashes:
        lsh.query(m)
    return len(texts) / (time.perf_counter() - start)


def load_reference(ref: str):
    """`pipeline/neardup.py` as of git `ref`, imported as module `similarity_ref` (from a temporary folder that is
    put on sys.path, which spawned worker processes inherit)."""
    for path in ("pipeline/neardup.py", "pipeline/similarity.py"):  # its name before the package layout change
        shown = subprocess.run(["git", "show", f"{ref}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    shown.check_returncode()
    source = shown.stdout
    folder = tempfile.mkdtemp(prefix="bench-dedup-ref-")
    with open(os.path.join(folder, "similarity_ref.py"), "w", encoding="utf-8") as f:
        f.write(source)
    sys.path.insert(0, folder)
    return importlib.import_module("similarity_ref")


def against(n: int, args: argparse.Namespace) -> dict:
    """Seconds of fit + pairs and of clusters, this checkout vs `args.against`, alternating, best of --repeat each."""
    reference = load_reference(args.against)
    texts = make_corpus(n, seed=args.seed).texts
    best = {"this": [1e9, 1e9], args.against: [1e9, 1e9]}
    results = {}
    for _ in range(args.repeat):
        for name, module in (("this", NearDuplicateIndex.__module__), (args.against, reference.__name__)):
            index_class = sys.modules[module].NearDuplicateIndex
            t0 = time.perf_counter()
            index = index_class(threshold=args.threshold, workers=args.workers).fit(texts)
            pairs = index.pairs()
            t1 = time.perf_counter()
            clusters = index.clusters()
            t2 = time.perf_counter()
            best[name] = [min(best[name][0], t1 - t0), min(best[name][1], t2 - t1)]
            results[name] = (index.signatures_.tobytes(), pairs, clusters)
    if results["this"] != results[args.against]:
        raise SystemExit(f"this checkout and {args.against} disagree on signatures, pairs or clusters")
    ref_s, this_s = best[args.against], best["this"]
    return {"scripts": n, "ref": args.against, "load_avg_1min_after": round(os.getloadavg()[0], 2),
            "this_fit_pairs_s": round(this_s[0], 2), "this_clusters_s": round(this_s[1], 2),
            "ref_fit_pairs_s": round(ref_s[0], 2), "ref_clusters_s": round(ref_s[1], 2),
            "speedup_fit_pairs": round(ref_s[0] / this_s[0], 2), "speedup_clusters": round(ref_s[1] / this_s[1], 2),
            "identical_results": True}


def run_size(n: int, args: argparse.Namespace) -> dict:
    t = time.perf_counter()
    corpus = make_corpus(n, seed=args.seed)
    generate_s = time.perf_counter() - t
    megabytes = sum(len(x.encode("utf-8")) for x in corpus.texts) / 1e6
    load = os.getloadavg()[0]
    rss_before = psutil.Process().memory_info().rss

    runs = []  # (fit, pairs, clusters) seconds of each repeat: the machine is shared, so keep the best
    with PeakRSS() as mem:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            index = NearDuplicateIndex(threshold=args.threshold, workers=args.workers).fit(corpus.texts)
            t1 = time.perf_counter()
            pairs = index.pairs()
            t2 = time.perf_counter()
            clusters = index.clusters()
            runs.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    fit_s, pairs_s, clusters_s = min(runs, key=lambda r: r[0] + r[1])

    found = {(i, j) for i, j, _ in pairs}
    positives = {(i, j) for i, j, _ in corpus.positives}
    edges = {(i, j) for i, j, _ in corpus.edges}
    negatives = {(i, j) for i, j, _ in corpus.negatives}
    truly_near = sum(jaccard(shingles(corpus.texts[i]), shingles(corpus.texts[j])) >= args.threshold
                     for i, j, _ in pairs)
    return {
        "scripts": n, "megabytes": round(megabytes, 1), "generate_s": round(generate_s, 2),
        "load_avg_1min_before": round(load, 2),
        "fit_s": round(fit_s, 2), "pairs_s": round(pairs_s, 2), "clusters_s": round(clusters_s, 2),
        "seconds": round(fit_s + pairs_s, 2), "scripts_per_s": round(n / (fit_s + pairs_s)),
        "seconds_all_repeats": [round(f + p, 2) for f, p, _ in runs],
        "rss_before_mb": round(rss_before / 2**20), "peak_rss_mb": round(mem.peak / 2**20),
        "planted": {kind: {"pairs": len(planted), "jaccard_range": [round(min(s for *_, s in planted), 4),
                                                                       round(max(s for *_, s in planted), 4)]}
                    for kind, planted in (("positives", corpus.positives), ("edges", corpus.edges),
                                          ("near_misses", corpus.negatives))},
        "reported_pairs": len(pairs), "clusters": len(clusters),
        "recall": round(len(found & (positives | edges)) / len(positives | edges), 4),
        "recall_edges": round(len(found & edges) / len(edges), 4),
        "precision": round(truly_near / len(pairs), 4) if pairs else 1.0,
        "near_misses_reported": len(found & negatives), "unplanted_pairs_reported": len(found - positives - edges),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 50000])
    parser.add_argument("--out", default="benchmarks/results/dedup.json")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest is reported (shared CPUs)")
    parser.add_argument("--baseline-scripts", type=int, default=5000,
                        help="size of the subsample the plain datasketch loop runs on (it is slow)")
    parser.add_argument("--against", default=None, metavar="REF",
                        help="also time pipeline/neardup.py of this git ref (e.g. main) on the largest size")
    args = parser.parse_args()

    params = NearDuplicateIndex(threshold=args.threshold, workers=args.workers)
    sub = make_corpus(args.baseline_scripts, seed=args.seed).texts
    base_rate = datasketch_loop(sub, args.threshold, params.ngram, params.num_perm, params.seed)
    one_rate = 0.0
    for _ in range(args.repeat):
        t = time.perf_counter()
        NearDuplicateIndex(threshold=args.threshold, workers=1).fit(sub).pairs()
        one_rate = max(one_rate, len(sub) / (time.perf_counter() - t))
    print(f"on the same {len(sub)} scripts: plain datasketch loop {base_rate:.0f} scripts/s, "
          f"NearDuplicateIndex with 1 worker {one_rate:.0f} scripts/s", flush=True)

    results = []
    for n in args.sizes:
        results.append(run_size(n, args))
        print({k: results[-1][k] for k in ("scripts", "seconds", "recall", "precision")}, flush=True)

    print(f"\nthreshold {args.threshold}, {params.ngram}-gram shingles, {params.num_perm} perms, LSH {params.bands} "
          f"bands x {params.rows} rows, {args.workers} workers, {os.cpu_count()} CPUs; best of {args.repeat} runs.\n"
          f"recall: planted pairs found (edges: those with Jaccard just above the threshold); misses rep.: planted "
          f"pairs just below it that were reported; x datasketch: scripts/s over the plain loop's (one process); "
          f"load: 1-min load average before the runs")
    head = (f"{'scripts':>8} {'MB':>6} {'fit+pairs s':>11} {'scripts/s':>9} {'clusters s':>10} {'peak MB':>8} "
            f"{'recall':>7} {'edges':>6} {'precision':>9} {'misses rep.':>11} {'x datasketch':>12} {'load':>5}")
    print(head)
    for r in results:
        print(f"{r['scripts']:>8} {r['megabytes']:>6} {r['seconds']:>11} {r['scripts_per_s']:>9} {r['clusters_s']:>10} "
              f"{r['peak_rss_mb']:>8} {r['recall']:>7} {r['recall_edges']:>6} {r['precision']:>9} "
              f"{r['near_misses_reported']:>11} "
              f"{r['scripts_per_s'] / base_rate:>12.1f} {r['load_avg_1min_before']:>5}")

    comparison = None
    if args.against:
        comparison = against(max(args.sizes), args)
        print(f"\n{comparison['scripts']} scripts, this checkout vs {args.against} (alternating runs, best of "
              f"{args.repeat}, same results): fit+pairs {comparison['this_fit_pairs_s']} s vs "
              f"{comparison['ref_fit_pairs_s']} s ({comparison['speedup_fit_pairs']}x), clusters "
              f"{comparison['this_clusters_s']} s vs {comparison['ref_clusters_s']} s "
              f"({comparison['speedup_clusters']}x); load {comparison['load_avg_1min_after']}")

    write_json(args.out, {
        "params": {"threshold": args.threshold, "ngram": params.ngram, "num_perm": params.num_perm,
                   "bands": params.bands, "rows": params.rows, "workers": args.workers, "seed": args.seed,
                   "cpus": os.cpu_count()},
        "subsample": {"scripts": len(sub), "datasketch_loop_scripts_per_s": round(base_rate),
                      "index_1_worker_scripts_per_s": round(one_rate)},
        "results": results,
        "against": comparison,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
