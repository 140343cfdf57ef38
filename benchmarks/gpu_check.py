"""The GPU proof: train, evaluate and predict on CUDA with the production code paths, on data/tiny.

    python -m benchmarks.gpu_check                   # on a CUDA machine (no network needed)
    python -m benchmarks.gpu_check --cpu-rehearsal   # the same script on CPU: hf backend, no 4-bit, no wheels

Made for a CUDA machine with no network and no model hub whose Python already has torch, transformers, peft,
accelerate, safetensors, tokenizers, numpy, scikit-learn and pyarrow. What it lacks (trl, datasets, bitsandbytes,
unsloth, unsloth_zoo, imbalanced-learn, typer, pydantic, ...) comes as wheels gathered by `make gpu-wheels` into
gpu-wheels/, installed here with `pip install --no-index --no-deps --target`. The base model is the tiny StarCoder2
(random init, tokenizer trained on data/tiny) saved to a local folder and named by path, so every loader takes the
hub path (`from_pretrained(dir)`), not the built-in shortcut.

Variants, each in its own process and time budget (an import or CUDA failure in one does not stop the others):
  unsloth_qlora  backend unsloth, 4-bit nf4, LoRA r16 on q/k/v/o_proj, c_fc, c_proj
  hf_qlora       backend hf (transformers + bitsandbytes 4-bit), the same LoRA
  full_bf16      full fine-tuning, fp32 weights under bf16 autocast, fewer steps
(--cpu-rehearsal: hf_lora and full_fp32 on CPU.) For each: it ran or the exact error, wall time, training samples/s,
peak memory (CUDA: torch.cuda.max_memory_allocated; CPU: peak RSS), validation metrics, and whether predict's
scores equal evaluate's for the same test scripts (to 1e-3). Results: benchmarks/results/gpu_check.json
(gpu_check_rehearsal.json for the rehearsal).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TINY_DATA = REPO / "data" / "tiny" / "scripts.jsonl"
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
MODULES = {"torch": "torch", "transformers": "transformers", "peft": "peft", "accelerate": "accelerate",
           "safetensors": "safetensors", "tokenizers": "tokenizers", "numpy": "numpy", "sklearn": "scikit-learn",
           "pyarrow": "pyarrow", "trl": "trl", "datasets": "datasets", "bitsandbytes": "bitsandbytes",
           "unsloth": "unsloth", "unsloth_zoo": "unsloth_zoo", "imblearn": "imbalanced-learn", "typer": "typer",
           "pydantic": "pydantic", "yaml": "pyyaml", "rich": "rich", "matplotlib": "matplotlib"}
LORA = ["model.finetuning_type=lora", "lora.r=16", "lora.alpha=32",
        "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,c_fc,c_proj]"]
GPU_VARIANTS = {  # name: (overrides, share of --steps, time budget in seconds)
    "unsloth_qlora": ([*LORA, "model.backend=unsloth", "model.load_in_4bit=true", "training.optim=adamw_torch",
                       "training.bf16=true"], 1.0, 150),
    "hf_qlora": ([*LORA, "model.backend=hf", "model.load_in_4bit=true", "training.optim=paged_adamw_8bit",
                  "training.bf16=true"], 1.0, 150),
    "full_bf16": (["model.finetuning_type=full", "model.backend=hf", "model.load_in_4bit=false",
                   "training.optim=adamw_torch", "training.bf16=true", "training.learning_rate=1e-3"], 0.5, 90),
}
CPU_VARIANTS = {
    "hf_lora": ([*LORA, "model.backend=hf", "model.load_in_4bit=false"], 1.0, 300),
    "full_fp32": (["model.finetuning_type=full", "model.backend=hf", "model.load_in_4bit=false",
                   "training.learning_rate=1e-3"], 0.5, 300),
}


def modules_present() -> dict:
    """Each needed distribution: its version, or None when it cannot be imported from here."""
    out = {}
    for module, dist in MODULES.items():
        if importlib.util.find_spec(module) is None:
            out[dist] = None
            continue
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "present (no metadata)"
    return out


def install_wheels(wheels: Path, site: Path) -> list[dict]:
    """pip install --no-index --no-deps --target SITE every wheel in WHEELS (gathered by `make gpu-wheels`)."""
    files = sorted(wheels.glob("*.whl"))
    if not files:
        return []
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                    "--upgrade", "--target", str(site), *map(str, files)], check=True)
    return [{"wheel": f.name, "mib": round(f.stat().st_size / 2**20, 2)} for f in files]


def save_base(folder: Path) -> dict:
    """The tiny StarCoder2 (untrimmed) and its tokenizer, saved where a hub checkpoint would be: loaded by path."""
    from pipeline.model import prompt
    from pipeline.model.tiny import build_tiny_model, train_tokenizer

    texts = sorted({json.loads(line)["text"] for line in TINY_DATA.read_text(encoding="utf-8").splitlines()})
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(texts), 4096, max_length=512)
    model = build_tiny_model(len(tokenizer), max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"path": str(folder), "parameters": sum(p.numel() for p in model.parameters())}


def peak_memory_mib(cuda: bool) -> float:
    import resource

    import torch

    if cuda:
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def worker(name: str, overrides: list[str], base: Path, work: Path, cuda: bool) -> dict:
    """One variant, in this (fresh) process: all stages to evaluate, then predict on test scripts."""
    from pipeline.config import load_config
    from pipeline.run.runner import run_pipeline

    run_dir = work / name
    cfg = load_config(TINY_CONFIG, overrides=[
        f"data.ingest.inputs=[{TINY_DATA}]", "data.dedup.workers=1", f"model.model_id={base}",
        f"model.device={'cuda' if cuda else 'cpu'}", "model.use_flash_attention_2=false",
        "model.gradient_checkpointing=false", "training.tf32=false", "evaluation.baseline=false",
        "evaluation.ensemble=none", "evaluation.bootstrap_samples=0",
        "training.torch_threads=0" if cuda else "training.torch_threads=2",
        *overrides])
    started = time.time()
    run_pipeline(cfg, run_dir, until="evaluate", log=lambda m: print(f"[{name}] {m}", flush=True))
    wall = time.time() - started
    train = json.loads((run_dir / "train" / "manifest.json").read_text())["counts"]
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    val = [json.loads(line) for line in (run_dir / "evaluate" / "val_predictions.jsonl").read_text().splitlines()]
    evaluated = [json.loads(line) for line in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()]
    agreement = predict_agreement(run_dir, evaluated, cfg.model.device)
    effective = cfg.training.per_device_train_batch_size * cfg.training.gradient_accumulation_steps
    return {
        "ran": True, "wall_seconds": round(wall, 1), "steps": train["steps"], "train_seconds": train["train_seconds"],
        "train_samples_per_second": round(train["steps"] * effective / max(train["train_seconds"], 1e-9), 1),
        "peak_memory_mib": peak_memory_mib(cuda),
        "peak_memory_kind": "CUDA max_memory_allocated" if cuda else "peak RSS of the process",
        "backend": train["backend"], "device": train["device"], "trainable_parameters": train["trainable_parameters"],
        "val": {"n": len(val), "loss_start": train["val_loss_start"], "loss_end": train["val_loss_end"],
                "roc_auc_end": train["val_roc_auc_end"]},
        "test": {k: metrics["model"].get(k) for k in ("n", "roc_auc", "sensitivity", "specificity")},
        "predict_vs_evaluate": agreement,
    }


def predict_agreement(run_dir: Path, evaluated: list[dict], device: str) -> dict:
    """predict (a fresh classifier load, as `sgpipe predict` does) against evaluate's scores, same test scripts."""
    from pipeline.model.classifier import open_classifier
    from pipeline.predict import predict
    from pipeline.inputs.readers import ReaderLimits
    from pipeline.run.records import read_records

    test = {r.id: r for r in read_records(run_dir / "split" / "test.jsonl")}
    chosen = evaluated[:16]
    table = run_dir.parent / f"{run_dir.name}-predict.jsonl"
    table.write_text("".join(json.dumps({"text": test[e["id"]].text, "lang": test[e["id"]].lang}) + "\n"
                             for e in chosen), encoding="utf-8")
    classifier = open_classifier(run_dir, device=device)
    got = [p.score for p in predict([str(table)], classifier, ReaderLimits())]
    diffs = [abs(g - e["score"]) for g, e in zip(got, chosen, strict=True)]
    return {"scripts": len(chosen), "max_abs_diff": round(max(diffs), 7), "equal_to_1e-3": max(diffs) <= 1e-3}


def run_variant(name: str, budget: int, args, env: dict) -> dict:
    out = Path(args.work) / f"{name}.json"
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", name, "--work", str(args.work),
               "--steps", str(args.steps)] + (["--cpu-rehearsal"] if args.cpu_rehearsal else [])
    for item in args.set:
        command += ["--set", item]
    started = time.time()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return {"ran": False, "error": f"timed out after its {budget} s budget", "wall_seconds": budget}
    if out.is_file():
        return json.loads(out.read_text())
    return {"ran": False, "error": f"worker exited {done.returncode} without a result",
            "stderr_tail": done.stderr[-2000:], "wall_seconds": round(time.time() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-rehearsal", action="store_true", help="run on CPU: hf backend, no 4-bit, no wheels")
    parser.add_argument("--steps", type=int, default=32, help="optimizer steps per variant (full FT: half)")
    parser.add_argument("--variants", nargs="*", help="only these variants")
    parser.add_argument("--wheels", default=str(REPO / "gpu-wheels"), help="folder of wheels from make gpu-wheels")
    parser.add_argument("--site", default="/tmp/sgpipe-gpu-site", help="where the wheels are installed")
    parser.add_argument("--work", default="/tmp/sgpipe-gpu-check", help="scratch folder (runs, base model)")
    parser.add_argument("--out", help="result JSON (default benchmarks/results/gpu_check[_rehearsal].json)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config override for every variant (repeatable), e.g. model.max_length=128")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    variants = CPU_VARIANTS if args.cpu_rehearsal else GPU_VARIANTS
    work = Path(args.work)

    if args.worker:  # one variant, in its own process
        overrides, share, _ = variants[args.worker]
        steps = max(2, round(args.steps * share))
        cadence = [f"training.max_steps={steps}", f"training.eval_steps={max(1, steps // 4)}",
                   f"training.save_steps={max(1, steps // 4)}", "training.logging_steps=1"]
        try:
            result = worker(args.worker, [*overrides, *cadence, *args.set], work / "base", work,
                            not args.cpu_rehearsal)
        except BaseException as e:  # noqa: BLE001 - the exact error is the result
            result = {"ran": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
        (work / f"{args.worker}.json").write_text(json.dumps(result, indent=2, default=str))
        return 0

    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.time()
    report = {"mode": "cpu-rehearsal" if args.cpu_rehearsal else "gpu", "before_wheels": modules_present()}
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
    if not args.cpu_rehearsal:
        site = Path(args.site)
        report["wheels"] = install_wheels(Path(args.wheels), site)
        env["PYTHONPATH"] = f"{site}{os.pathsep}{REPO}"
        sys.path.insert(0, str(site))
        import torch

        report["cuda"] = {"available": torch.cuda.is_available(), "torch": torch.__version__,
                          "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    report["base_model"] = save_base(work / "base")
    report["variants"] = {}
    for name, (_, _, budget) in variants.items():
        if args.variants and name not in args.variants:
            continue
        print(f"--- {name} (budget {budget} s)", flush=True)
        report["variants"][name] = result = run_variant(name, budget, args, env)
        shown = {k: result.get(k) for k in ("ran", "error", "wall_seconds", "train_samples_per_second",
                                            "peak_memory_mib", "predict_vs_evaluate")}
        print(json.dumps(shown, default=str), flush=True)
    report["total_seconds"] = round(time.time() - started, 1)
    out = Path(args.out) if args.out else RESULTS / ("gpu_check_rehearsal.json" if args.cpu_rehearsal else
                                                     "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out} ({report['total_seconds']} s)")
    ok = all(v.get("ran") and v["predict_vs_evaluate"]["equal_to_1e-3"] for v in report["variants"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
