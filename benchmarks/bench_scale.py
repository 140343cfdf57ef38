"""Scale: wall time and peak memory of ingest, dedup and split on N synthetic scripts, and predict over many files.

Each stage runs as its own `sgpipe <stage>` process (as a user would run it), and its peak RSS is read from the
kernel's accounting of that child (`os.wait4`), so no measurement overhead runs inside it. The corpus is synthetic
(benchmarks/synthetic.py: code-like scripts in six languages, ~2 KB each, 5% planted near-duplicates), labelled at
random with a fixed seed. Run from the repository root:

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

from benchmarks.common import REPO, machine_info, print_table, write_result
from benchmarks.synthetic import make_corpus

STAGES = ("ingest", "dedup", "split")
EXT = {"powershell": "ps1", "javascript": "js", "python": "py", "bash": "sh", "batch": "bat", "vbscript": "vbs"}


def timed_child(args: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


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
        seconds, peak = timed_child([*sgpipe, stage, *common])
        rows.append({"scripts": n, "corpus_mb": round(mb, 1), "stage": stage, "seconds": round(seconds, 1),
                     "scripts_per_s": round(n / seconds), "peak_rss_mib": round(peak)})
        print_table(rows[-1:])
    data.unlink()
    return rows


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
        seconds, peak = timed_child([sys.executable, "-m", "pipeline.cli", "predict", str(folder), "--model", str(run),
                                     "--format", "jsonl"], stdout=out)
    lines = sum(1 for _ in open(work / "predictions.jsonl"))
    return {"files": n_files, "predicted": lines, "seconds": round(seconds, 1),
            "files_per_s": round(n_files / seconds, 1), "peak_rss_mib": round(peak)}


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
    if rows:
        print("\nstages (each its own process; peak RSS from the kernel's child accounting)")
        print_table(rows)
    if predict_rows:
        print("\npredict over a folder of small files (first a 4-step tiny model is trained)")
        print_table(predict_rows)
    path = write_result("scale", args.out, {"machine": machine_info(torch_threads=0), "stages": rows,
                                            "predict": predict_rows,
                                            "data": "synthetic (benchmarks/synthetic.py), random labels"})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
