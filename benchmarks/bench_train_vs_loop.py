"""`sgpipe train`'s step path beside a plain PyTorch loop doing the same steps on the same batches.

    python -m benchmarks.bench_train_vs_loop                    # 40 steps each, dev set if present, else data/tiny
    python -m benchmarks.bench_train_vs_loop --steps 80 --profile   # and a torch.profiler table of the trainer's steps

Both sides train the same tiny StarCoder2 (the tiny config: hidden 128, 2 layers, vocab 4096, full fine-tuning,
batch 16, max length 512, group_by_length, AdamW lr 1e-3, linear schedule with 5% warm-up, clipping at 1.0, label
smoothing 0.1, fp32) from the same initial weights, in the same process with the same torch threads:

- trainer: `VerdictTrainer` built with the stage's own `training_arguments` (pipeline/stages/train.py) from
  configs/tiny.yaml, evaluation and checkpoints off (they are measured by the stage, see below), logging as configured.
  Its collator is wrapped to record every batch it hands to a step.
- loop: `for batch in those batches: forward (no labels), gather the verdict logits, two_label_loss, backward,
  clip_grad_norm_, AdamW step, scheduler step, zero_grad` - nothing else.

Step time = time between consecutive step ends (the trainer: its `on_step_end` callback, so data loading and
collation count); the loop's step runs inside a trainer callback right after the trainer's step on the same batch,
outside the trainer's timing, so the two alternate step by step and see the same load on a shared machine. The first
`--warmup` steps are left out; the ratio is of medians. Goal: the trainer within 1.3x of the loop (issue 12).
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from benchmarks.common import (REPO, OtherCpuUse, add_common_arguments, add_step_arguments, check_step_arguments,
                               describe, load_scripts, machine_info, mean_and_spread, print_table, write_result)

GOAL = 1.3


def build(scripts, max_length: int, threads: int):
    """(model, tokenizer, rows): the tiny model and its training rows, built as the train stage builds them."""
    import torch

    from pipeline.model import backends, prompt

    torch.set_num_threads(threads)
    from pipeline.config import LoraSection, load_config

    model_cfg = load_config(REPO / "configs" / "tiny.yaml", overrides=[f"model.max_length={max_length}"]).model
    model, tokenizer, _ = backends.load_model(model_cfg, LoraSection(), device="cpu", seed=0,
                                              tokenizer_texts=sorted(set(scripts.texts)))
    rows = prompt.build_training_rows(scripts.texts, scripts.langs, scripts.labels, tokenizer, max_length)
    return model, tokenizer, rows


class PlainLoop:
    """The plain PyTorch loop, one step at a time, on its own copy of the model."""

    def __init__(self, model, label_ids, steps: int):
        import torch
        from transformers import get_linear_schedule_with_warmup

        self.model, self.label_ids = model.train(), label_ids
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, max(1, round(0.05 * steps)), steps)

    def step(self, batch: dict) -> float:
        import torch

        from pipeline.model.head import two_label_loss, verdict_positions

        start = time.perf_counter()
        positions, y = verdict_positions(batch["labels"], self.label_ids)
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            use_cache=False).logits
        loss = two_label_loss(logits[torch.arange(len(y)), positions], y, 0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def lockstep(model, tokenizer, rows, steps: int, profile: bool) -> tuple[list[float], list[float], list[dict], str]:
    """(trainer step times, loop step times, batches, profiler table): VerdictTrainer with the stage's arguments, and
    after each of its steps one loop step on the batch that step trained on (a callback, outside the trainer's
    timing), so both see the same machine load."""
    import datasets
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback

    from pipeline.config import load_config
    from pipeline.model.trainer import VerdictTrainer
    from pipeline.stages.train import training_arguments

    datasets.disable_progress_bars()
    cfg = load_config(REPO / "configs" / "tiny.yaml", overrides=[f"training.max_steps={steps}", "training.eval_strategy='no'",
                                                      "training.early_stopping=false",
                                                      "training.load_best_model_at_end=false"])
    loop = PlainLoop(copy.deepcopy(model), model.config.sgpipe_label_token_ids, steps)
    trainer_times: list[float] = []
    loop_times: list[float] = []
    batches: list[dict] = []

    class Lockstep(TrainerCallback):
        resumed = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            if not self.resumed:
                self.resumed = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            trainer_times.append(time.perf_counter() - self.resumed)
            loop_times.append(loop.step(batches[state.global_step - 1]))
            self.resumed = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        args = training_arguments(cfg, Path(out), "cpu", lambda message: None, len(rows))
        args.save_strategy, args.disable_tqdm = "no", True
        trainer = VerdictTrainer(model, args, label_smoothing=cfg.training.label_smoothing_factor,
                                 train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                 callbacks=[Lockstep()])
        trainer.remove_callback(PrinterCallback)
        collate = trainer.data_collator

        def recording_collator(features):
            batch = collate(features)
            batches.append({k: v.clone() for k, v in batch.items()})
            return batch

        trainer.data_collator = recording_collator
        table = ""
        if profile:
            from torch.profiler import ProfilerActivity, profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.train()
            table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=25)
        else:
            trainer.train()
        evaluation = eval_seconds(trainer, rows, cfg.training.eval_steps)
    return trainer_times, loop_times, batches[:steps], table, evaluation


def eval_seconds(trainer, rows, eval_steps: int) -> dict:
    """One evaluation of a val split the tiny config's size (15%: every 7th row), rows longest first (VerdictTrainer's
    eval sampler) and in file order (Trainer's), timed alternately, best of 2 each."""
    from datasets import Dataset
    from transformers import Trainer

    val = Dataset.from_list(rows[::7])
    trainer.args.eval_strategy = "steps"
    sorted_s, file_order_s = [], []
    for _ in range(2):
        for sampler, seconds in ((None, sorted_s), (Trainer._get_eval_sampler, file_order_s)):
            if sampler is not None:
                trainer._get_eval_sampler = lambda dataset: sampler(trainer, dataset)
            start = time.perf_counter()
            trainer.evaluate(val)
            seconds.append(time.perf_counter() - start)
            trainer.__dict__.pop("_get_eval_sampler", None)
    return {"val_rows": len(val), "eval_steps": eval_steps, "sorted_s": round(min(sorted_s), 3),
            "file_order_s": round(min(file_order_s), 3)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_arguments(parser, steps=40)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of the trainer's steps")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    check_step_arguments(parser, args)

    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    print(describe(machine, scripts.source))
    started = time.perf_counter()
    model, tokenizer, rows = build(scripts, args.max_length, args.threads)
    build_s = time.perf_counter() - started
    with OtherCpuUse() as others:
        trainer_times, loop_times, batches, table, evaluation = lockstep(model, tokenizer, rows, args.steps, args.profile)
    trainer = mean_and_spread(trainer_times[args.warmup:])
    loop = mean_and_spread(loop_times[args.warmup:])
    paired = sorted(a / b for a, b in zip(trainer_times[args.warmup:], loop_times[args.warmup:]))
    ratio = (paired[(len(paired) - 1) // 2] + paired[len(paired) // 2]) / 2  # median of step-by-step ratios
    share = evaluation["sorted_s"] / (evaluation["eval_steps"] * trainer["median_s"])
    positions = sum(b["input_ids"].numel() for b in batches[args.warmup:]) / max(1, len(batches) - args.warmup)
    if table:
        print(table)
    print(f"model, tokenizer and {len(rows)} rows built in {build_s:.1f} s; mean batch {positions:.0f} positions")
    print_table([{"path": "sgpipe train (VerdictTrainer)", **trainer},
                 {"path": "plain PyTorch loop", **loop}],
                ["path", "median_s", "mean_s", "min_s", "max_s", "n"])
    print(f"\ntrainer / loop: {ratio:.2f}x (median of the step-by-step ratios; ratio of medians "
          f"{trainer['median_s'] / loop['median_s']:.2f}x; goal <= {GOAL}x); "
          f"other processes used {others.cores} CPUs meanwhile")
    print(f"one evaluation of {evaluation['val_rows']} val rows: {evaluation['sorted_s']} s longest first, "
          f"{evaluation['file_order_s']} s in file order; every {evaluation['eval_steps']} steps (configs/tiny.yaml) "
          f"that is {100 * share:.0f}% of the training time (goal < 15%)")
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source, "config": "configs/tiny.yaml"},
               "results": {"trainer": trainer, "loop": loop, "ratio": round(ratio, 3), "goal": GOAL,
                           "build_seconds": round(build_s, 2), "mean_batch_positions": round(positions),
                           "other_cpu_cores": others.cores, "evaluation": evaluation,
                           "eval_share_of_training": round(share, 3)}}
    write_result("train_vs_loop", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
