"""Scale: wall time and peak memory of ingest, dedup and split on N synthetic scripts, and predict over many files.

Each stage runs as its own `sgpipe <stage>` process (as a user would run it), and its peak RSS and CPU time are read
from the kernel's accounting of that child (`os.wait4`, worker processes included), so no measurement overhead runs
inside it. Beside each stage: the load average when it started and the CPUs other processes used while it ran. The
corpus is synthetic (benchmarks/synthetic.py: code-like scripts in six languages, ~2 KB each, 5% planted
near-duplicates), labelled at random with a fixed seed. For each size the split/dedup ratio (wall and CPU time, from
the same run) is printed beside its goal: a split costs at most a third of a dedup. Run from the repository root:

    python -m benchmarks.bench_scale --sizes 100000 --predict-files      # the split/dedup ratio at 100k (~3 min)
    python -m benchmarks.bench_scale --sizes 100000 1000000          # the issue's 1M-script figure (~20 min)
    python -m benchmarks.bench_scale --sizes 20000 --predict-files 20000   # quick
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, busy_cpu_seconds, machine_info, print_table, write_result
from benchmarks.synthetic import make_corpus

STAGES = ("ingest", "dedup", "split")
SPLIT_OVER_DEDUP_GOAL = 1 / 3  # issue 12: a split costs at most a third of a dedup
EXT = {"powershell": "ps1", "javascript": "js", "python": "py", "bash": "sh", "batch": "bat", "vbscript": "vbs"}


def timed_child(args: list[str], stdout=subprocess.DEVNULL) -> dict:
    """Wall seconds, CPU seconds (its workers included), peak RSS MiB of one child process, with the load average
    at its start and the CPUs other processes used meanwhile (None where /proc/stat is not readable)."""
    load, busy = os.getloadavg()[0], busy_cpu_seconds()
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    others = None if busy is None else round(max(0.0, busy_cpu_seconds() - busy - cpu) / seconds, 2)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": usage.ru_maxrss / 1024,
            "load_at_start": round(load, 1), "others_cpus": others}


def write_corpus(n: int, path: Path, seed: int) -> float:
    """Write n labelled synthetic scripts as JSONL; returns the size in MB."""
    corpus = make_corpus(n, seed=seed)
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for text, lang in zip(corpus.texts, corpus.langs):
            f.write(json.dumps({"text": text, "label": rng.choice(("malicious", "benign")), "lang": lang}) + "\n")
    return path.stat().st_size / 1e6


def in_child(fn, *args):
    """Run fn in a spawned process: the corpus it builds must not inflate this process, whose RSS every forked
    stage process would otherwise start from (a fork counts the parent's pages in the child's peak RSS)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def stage_figures(n: int, work: Path, seed: int) -> list[dict]:
    data = work / f"corpus-{n}.jsonl"
    mb = in_child(write_corpus, n, data, seed)
    sgpipe = [sys.executable, "-m", "pipeline.cli"]
    common = ["--config", "configs/tiny.yaml", "--input", str(data), "--run-dir", str(work / f"run-{n}")]
    rows = []
    for stage in STAGES:
        child = timed_child([*sgpipe, stage, *common])
        rows.append({"scripts": n, "corpus_mb": round(mb, 1), "stage": stage, "seconds": round(child["seconds"], 1),
                     "cpu_seconds": round(child["cpu_seconds"], 1), "scripts_per_s": round(n / child["seconds"]),
                     "peak_rss_mib": round(child["peak_rss_mib"]), "load_at_start": child["load_at_start"],
                     "others_cpus": child["others_cpus"]})
        print_table(rows[-1:])
    data.unlink()
    shutil.rmtree(work / f"run-{n}", ignore_errors=True)  # 1M scripts leave ~7 GB of stage outputs
    return rows


def split_over_dedup(rows: list[dict]) -> list[dict]:
    """Per size, split's time over dedup's (wall and CPU, same run) beside the goal."""
    out = []
    for n in dict.fromkeys(r["scripts"] for r in rows):
        stage = {r["stage"]: r for r in rows if r["scripts"] == n}
        split, dedup = stage["split"], stage["dedup"]
        ratio = split["seconds"] / dedup["seconds"]
        cpu_ratio = split["cpu_seconds"] / dedup["cpu_seconds"]
        out.append({"scripts": n, "split_s": split["seconds"], "dedup_s": dedup["seconds"],
                    "split_over_dedup": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3),
                    "goal": f"<= {SPLIT_OVER_DEDUP_GOAL:.3f}", "met": ratio <= SPLIT_OVER_DEDUP_GOAL,
                    "load_at_start": f"{dedup['load_at_start']} / {split['load_at_start']}",
                    "others_cpus": f"{dedup['others_cpus']} / {split['others_cpus']}"})
    return out


def write_files(folder: Path, n_files: int, seed: int) -> None:
    folder.mkdir()
    corpus = make_corpus(min(n_files, 20_000), seed=seed)
    for i in range(n_files):
        k = i % len(corpus.texts)
        (folder / f"{i:07d}.{EXT[corpus.langs[k]]}").write_text(corpus.texts[k][:600])


def predict_figures(n_files: int, work: Path, seed: int) -> dict:
    """Train a minimal tiny model, then `sgpipe predict` over a folder of n_files small scripts."""
    run = work / "model"
    sets = ["--set", "training.max_steps=4", "--set", "training.eval_steps=2", "--set", "training.save_steps=2",
            "--set", "evaluation.bootstrap_samples=0"]
    timed_child([sys.executable, "-m", "pipeline.cli", "all", "--until", "evaluate", "--config", "configs/tiny.yaml",
                 "--run-dir", str(run), *sets])
    folder = work / "scan"
    in_child(write_files, folder, n_files, seed)
    with open(work / "predictions.jsonl", "w") as out:
        child = timed_child([sys.executable, "-m", "pipeline.cli", "predict", str(folder), "--model", str(run),
                             "--format", "jsonl"], stdout=out)
    lines = sum(1 for _ in open(work / "predictions.jsonl"))
    return {"files": n_files, "predicted": lines, "seconds": round(child["seconds"], 1),
            "files_per_s": round(n_files / child["seconds"], 1), "peak_rss_mib": round(child["peak_rss_mib"]),
            "load_at_start": child["load_at_start"], "others_cpus": child["others_cpus"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000])
    parser.add_argument("--predict-files", type=int, nargs="*", default=[5_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="Scratch folder (default: a temporary one, removed after).")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="sgpipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = [row for n in args.sizes for row in stage_figures(n, work, args.seed)]
        predict_rows = []
        for n_files in args.predict_files:
            sub = work / f"predict-{n_files}"
            sub.mkdir()
            predict_rows.append(predict_figures(n_files, sub, args.seed))
            print_table(predict_rows[-1:])
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    ratios = split_over_dedup(rows)
    if rows:
        print("\nstages (each its own process; CPU time and peak RSS from the kernel's child accounting; others_cpus: "
              "CPUs other processes used meanwhile)")
        print_table(rows)
        print(f"\nsplit / dedup time, same run (goal <= {SPLIT_OVER_DEDUP_GOAL:.3f}; load and others: dedup / split)")
        print_table(ratios)
    if predict_rows:
        print("\npredict over a folder of small files (first a 4-step tiny model is trained)")
        print_table(predict_rows)
    write_result("scale", args.out, {"machine": machine_info(torch_threads=0), "stages": rows,
                                     "split_over_dedup": ratios, "predict": predict_rows,
                                     "data": "synthetic (benchmarks/synthetic.py), random labels"})


if __name__ == "__main__":
    main()
