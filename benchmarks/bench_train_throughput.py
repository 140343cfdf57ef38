"""Training throughput and peak memory of the tiny config with VerdictTrainer, on real scripts.

    python -m benchmarks.bench_train_throughput                  # quick: 30 steps per sampling order
    python -m benchmarks.bench_train_throughput --steps 300      # bigger: about 3 epochs of the dev set

The CPU default of configs/tiny.yaml: a random StarCoder2 (hidden 128, intermediate 512, 2 layers, 4 heads, 2 KV
heads, vocab 4096: 0.9M parameters) built by `backends.load_model` from configs/tiny.yaml's model section with its tokenizer trained
on the scripts, rows from `prompt.build_training_row` at max length 512, batch 16, full fine-tuning, AdamW lr 1e-3
(linear schedule, 5% warm-up), label smoothing 0.1, fp32, CPU. Each sampling order (grouped = group_by_length, the
config's default; random) trains in its own fresh process for `--steps` steps. Step time = time between consecutive
step ends (data loading and collation included); the first `--warmup` steps are left out. Tokens/s counts real
(non-pad) tokens of the batches those steps trained on; positions/s counts padding too.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import (OtherCpuUse, add_common_arguments, add_step_arguments, check_step_arguments, describe,
                               in_fresh_process, load_scripts, machine_info, mean_and_spread, peak_rss_mib, print_table,
                               reset_peak_rss, write_result)

SAMPLING = {"grouped": "group_by_length", "random": "random"}


def train_variant(sampling: str, texts: list[str], langs: list[str], labels: list[str], steps: int, warmup: int,
                  batch: int, max_length: int, threads: int) -> dict:
    """Train in this (fresh) process; step times, batch token counts, memory."""
    import datasets
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig

    from pipeline.config import LoraSection, load_config
    from pipeline.model import backends, prompt
    from pipeline.model.trainer import VerdictTrainer

    torch.set_num_threads(threads)
    datasets.disable_progress_bars()  # TRL's dataset preparation bars: noise in a benchmark table
    model_cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml", overrides=[f"model.max_length={max_length}"]).model
    model, tokenizer, info = backends.load_model(model_cfg, LoraSection(), device="cpu", tokenizer_texts=texts, seed=0)
    rows = [prompt.build_training_row(t, lang, y, tokenizer, max_length) for t, lang, y in zip(texts, langs, labels)]
    step_ends: list[float] = []
    batches: list[tuple[int, int]] = []  # (real tokens, positions) of each collated batch, in order

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            step_ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            step_ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-3,
            lr_scheduler_type="linear", warmup_steps=0.05, weight_decay=0.01, max_grad_norm=1.0,
            optim="adamw_torch", train_sampling_strategy=SAMPLING[sampling], max_length=max_length, packing=False,
            completion_only_loss=True, label_smoothing_factor=0.0, use_cpu=True, bf16=False,
            gradient_checkpointing=False, eval_strategy="no", save_strategy="no", report_to="none",
            logging_steps=steps, disable_tqdm=True, dataloader_num_workers=0, seed=0, data_seed=0)
        trainer = VerdictTrainer(model, config, label_smoothing=0.1, train_dataset=Dataset.from_list(rows),
                                 processing_class=tokenizer, callbacks=[StepClock()])
        trainer.remove_callback(PrinterCallback)  # the per-log dict prints; the figures come from StepClock
        collate = trainer.data_collator

        def counting_collator(features):
            out = collate(features)
            batches.append((int(out["attention_mask"].sum()), out["input_ids"].numel()))
            return out

        trainer.data_collator = counting_collator  # read when train() builds the dataloader
        baseline = reset_peak_rss()
        with OtherCpuUse() as others:
            trainer.train()
        peak = peak_rss_mib()
    times = [b - a for a, b in zip(step_ends, step_ends[1:])][warmup:]
    measured = batches[warmup:steps]  # the dataloader may fetch one batch ahead: keep the batches that were trained
    seconds = sum(times)
    return {
        "sampling": sampling, "params": info["total_params"], "trainable_params": info["trainable_params"],
        "rows": len(rows), "step": mean_and_spread(times),
        "samples_per_s": round(batch * len(times) / seconds, 1),
        "tokens_per_s": round(sum(real for real, _ in measured) / seconds),
        "positions_per_s": round(sum(pos for _, pos in measured) / seconds),
        "padding_waste": round(1 - sum(r for r, _ in measured) / sum(p for _, p in measured), 4),
        "rss_before_train_mib": round(baseline), "peak_rss_mib": round(peak),
        "peak_above_before_train_mib": round(peak - baseline, 1),
        "train_loss": trainer.state.log_history[-1].get("train_loss"), "other_cpu_cores": others.cores,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_arguments(parser, steps=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--sampling", nargs="+", choices=sorted(SAMPLING), default=["grouped", "random"])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_step_arguments(parser, args)

    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    print(describe(machine, scripts.source))
    print(f"tiny StarCoder2 (hidden 128, 2 layers, vocab 4096), full fine-tuning, fp32, batch {args.batch}, "
          f"max length {args.max_length}, {args.steps} steps ({args.warmup} warm-up left out)")
    print("memory: a fresh spawned process per variant; peak RSS (ru_maxrss) during train(), and its rise above the "
          "RSS once model, tokenizer, dataset and trainer were built (the peak is reset there: /proc/self/clear_refs)",
          flush=True)
    results = {}
    for sampling in args.sampling:
        results[sampling] = in_fresh_process(train_variant, sampling, scripts.texts, scripts.langs, scripts.labels,
                                             args.steps, args.warmup, args.batch, args.max_length, args.threads)
        print(f"  {sampling}: {results[sampling]['samples_per_s']} samples/s", flush=True)
    print()
    print_table([{"sampling": r["sampling"], "params": r["params"], "samples/s": r["samples_per_s"],
                  "s/step": r["step"]["mean_s"], "s/step min": r["step"]["min_s"], "tokens/s": r["tokens_per_s"],
                  "positions/s": r["positions_per_s"], "pad waste %": round(100 * r["padding_waste"], 1),
                  "peak RSS MiB": r["peak_rss_mib"], "rise in train MiB": r["peak_above_before_train_mib"],
                  "others' CPUs": r["other_cpu_cores"]} for r in results.values()])
    print(f"others' CPUs: how many of the {machine['cpu_count']} CPUs other processes used during train()")
    if {"grouped", "random"} <= results.keys():
        speedup = results["grouped"]["samples_per_s"] / results["random"]["samples_per_s"]
        print(f"\ngroup_by_length: {speedup:.2f}x the samples/s of random batches")
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source,
                                              "model": "tiny-starcoder2 hidden 128, intermediate 512, 2 layers, "
                                                       "4 heads, 2 kv heads, vocab 4096",
                                              "lr": 1e-3, "dtype": "float32", "finetuning": "full"},
               "results": results}
    write_result("train_throughput", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
