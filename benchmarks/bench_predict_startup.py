"""`sgpipe predict` as a user runs it: wall time for one file (startup dominates) and files/s over many.

    python -m benchmarks.bench_predict_startup                 # 1 file, then 50 files, 1 round each
    python -m benchmarks.bench_predict_startup --files 2000 --rounds 3

A tiny classifier (the tiny config's model: hidden 128, 2 layers, vocab 4096; untrained, since only speed is measured)
is saved with `Classifier.save` into a temporary run directory, and `python -m pipeline.cli predict` runs on it in a
fresh process, as a user would, output as JSON lines. Also reported: which heavy modules the one-file run imported
(`-X importtime`), since startup is mostly imports (torch alone is ~3.4 s on a quiet 2-core machine). Goal: one file
under 5 s wall (issue 12). Figures are best of `--rounds`, with the machine's load beside them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, add_common_arguments, describe, load_scripts, machine_info, write_result

GOAL_S = 5.0
HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "sklearn")


def make_run(run_dir: Path, scripts, max_length: int = 512) -> None:
    """runs/<name>/train/classifier with the tiny model, as `sgpipe train` writes it (no threshold: 0.5 is used)."""
    from pipeline.model import backends
    from pipeline.model.classifier import Classifier

    from pipeline.config import LoraSection, load_config

    model_cfg = load_config(REPO / "configs" / "tiny.yaml", overrides=[f"model.max_length={max_length}"]).model
    model, tokenizer, _ = backends.load_model(model_cfg, LoraSection(), device="cpu", seed=0,
                                              tokenizer_texts=sorted(set(scripts.texts)))
    Classifier.save(model, tokenizer, run_dir / "train" / "classifier", base_model=None, max_length=512,
                    head_ratio=0.75)


def predict_seconds(run_dir: Path, paths: list[str], importtime: bool = False) -> tuple[float, str]:
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "pipeline.cli", "predict", *paths,
               "--model", str(run_dir), "--format", "jsonl"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"predict failed ({done.returncode}): {done.stderr[-2000:]}")
    if len(done.stdout.splitlines()) != len(paths):
        raise RuntimeError(f"predict wrote {len(done.stdout.splitlines())} rows for {len(paths)} files")
    return seconds, done.stderr


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    add_common_arguments(parser, threads=1)
    args = parser.parse_args(argv)
    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    print(describe(machine, scripts.source))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_run(tmp / "run", scripts)
        files = []
        for i in range(args.files):
            files.append(tmp / "in" / f"{i}.ps1")
            files[-1].parent.mkdir(exist_ok=True)
            files[-1].write_text(scripts.texts[i % len(scripts)], encoding="utf-8")
        _, imports = predict_seconds(tmp / "run", [str(files[0])], importtime=True)
        imported = sorted({line.split("|")[-1].strip().split(".")[0] for line in imports.splitlines()
                           if line.startswith("import time:")} & set(HEAVY))
        one = min(predict_seconds(tmp / "run", [str(files[0])])[0] for _ in range(args.rounds))
        many = min(predict_seconds(tmp / "run", [str(f) for f in files])[0] for _ in range(args.rounds))
    # the one-file run is the startup, the rest is scoring; None when load noise made the many-file run faster
    files_per_s = (args.files - 1) / (many - one) if many > one else None
    load = round(os.getloadavg()[0], 2)
    print(f"one file: {one:.2f} s wall (goal < {GOAL_S} s); heavy modules imported: {', '.join(imported) or 'none'}")
    rate = "n/a (noise)" if files_per_s is None else f"{files_per_s:.0f}"
    print(f"{args.files} files: {many:.2f} s wall, {rate} files/s after startup; load average {load} at end")
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source},
               "results": {"one_file_s": round(one, 3), "many_files_s": round(many, 3),
                           "files_per_s_after_startup": files_per_s and round(files_per_s, 1), "heavy_imports": imported,
                           "goal_s": GOAL_S, "load_avg_1min_end": load}}
    write_result("predict_startup", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
