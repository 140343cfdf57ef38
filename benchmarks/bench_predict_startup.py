"""`sgpipe predict` as a user runs it, on both scoring paths side by side: wall time for one file (startup dominates)
and files/s over many.

    python -m benchmarks.bench_predict_startup                 # 1 file, then 50 files, 1 round each, both paths
    python -m benchmarks.bench_predict_startup --files 2000 --rounds 3

A tiny classifier (the tiny config's model: hidden 128, 2 layers, vocab 4096; untrained, since only speed is measured)
is saved with `Classifier.save` into a temporary run directory with its ONNX export beside it (what `sgpipe train`
writes), and a copy of the run without the ONNX pair takes the PyTorch path. `python -m pipeline.cli predict` runs on
each in a fresh process, as a user would, output as JSON lines. Also reported: which heavy modules each one-file run
imported (`-X importtime`), since startup is mostly imports (torch alone is ~3.4 s on a quiet 2-core machine). Goal:
one file under 5 s wall (issue 12). Figures are best of `--rounds`, with the machine's load beside them.
"""
from __future__ import annotations

import argparse
import os
import shutil
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


def measure(run_dir: Path, files: list[Path], rounds: int) -> dict:
    """One path's figures: one-file wall (startup), many-file wall, files/s after startup, heavy imports."""
    _, imports = predict_seconds(run_dir, [str(files[0])], importtime=True)
    imported = sorted({line.split("|")[-1].strip().split(".")[0] for line in imports.splitlines()
                       if line.startswith("import time:")} & set(HEAVY))
    one = min(predict_seconds(run_dir, [str(files[0])])[0] for _ in range(rounds))
    many = min(predict_seconds(run_dir, [str(f) for f in files])[0] for _ in range(rounds))
    # the one-file run is the startup, the rest is scoring; None when load noise made the many-file run faster
    files_per_s = (len(files) - 1) / (many - one) if many > one else None
    return {"one_file_s": round(one, 3), "many_files_s": round(many, 3),
            "files_per_s_after_startup": files_per_s and round(files_per_s, 1), "heavy_imports": imported,
            "load_avg_1min_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> dict:
    from pipeline.model.onnx_export import export_onnx
    from pipeline.model.onnx_runtime import ONNX_FILE, RUN_CLASSIFIER_DIR, SIDECAR_FILE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    add_common_arguments(parser, threads=1)
    args = parser.parse_args(argv)
    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    print(describe(machine, scripts.source))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_run(tmp / "onnx", scripts)
        export_onnx(tmp / "onnx" / RUN_CLASSIFIER_DIR)
        shutil.copytree(tmp / "onnx", tmp / "pytorch")
        for name in (ONNX_FILE, SIDECAR_FILE):
            (tmp / "pytorch" / RUN_CLASSIFIER_DIR / name).unlink()
        files = []
        for i in range(args.files):
            files.append(tmp / "in" / f"{i}.ps1")
            files[-1].parent.mkdir(exist_ok=True)
            files[-1].write_text(scripts.texts[i % len(scripts)], encoding="utf-8")
        for path in ("onnx", "pytorch"):
            results[path] = measure(tmp / path, files, args.rounds)
    print(f"{'path':8} {'one file (goal < ' + str(GOAL_S) + ' s)':>24} {str(args.files) + ' files':>10} "
          f"{'files/s after startup':>22}  load  heavy imports")
    for path, r in results.items():
        rate = "n/a (noise)" if r["files_per_s_after_startup"] is None else f"{r['files_per_s_after_startup']:.0f}"
        print(f"{path:8} {r['one_file_s']:>22.2f} s {r['many_files_s']:>8.2f} s {rate:>22}  {r['load_avg_1min_end']:>4}"
              f"  {', '.join(r['heavy_imports']) or 'none'}")
    speedup = results["pytorch"]["one_file_s"] / results["onnx"]["one_file_s"]
    print(f"one-file startup: ONNX path {speedup:.1f}x faster than the PyTorch path (same run, same machine)")
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source},
               "results": {**results, "one_file_speedup": round(speedup, 2), "goal_s": GOAL_S}}
    write_result("predict_startup", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
