"""The training plan: what `sgpipe train` will do, from the config and the data alone, before any model loads.

`cadence` is also what the train stage uses for its evaluation, checkpoint and warmup steps, so the plan printed by
`sgpipe train --dry-run` is the schedule that runs. Step counts follow transformers' Trainer: an epoch is
ceil(batches / accumulation) optimizer steps, at least 1; max_steps, when set, replaces epochs.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from .config import TINY_MODEL_ID, Config, TrainingConfig
from pipeline.run.records import Record

CHARS_PER_TOKEN = 3.5  # rough figure for code under a BPE tokenizer, used only when no tokenizer is at hand


@dataclass(frozen=True)
class Cadence:
    effective_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int
    save_steps: int


def world_size() -> int:
    """Processes sharing the data (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def cadence(t: TrainingConfig, train_rows: int, world: int) -> Cadence:
    """Optimizer steps, warmup and evaluation/checkpoint intervals for `train_rows` rows on `world` processes.

    eval_per_epoch > 0 turns into an interval of steps (at least 1) and checkpoints follow evaluations, so a small
    dataset is still evaluated a few times per epoch and a large one is not evaluated every few minutes.
    """
    batches = math.ceil(train_rows / (t.per_device_train_batch_size * world))
    per_epoch = max(math.ceil(batches / t.gradient_accumulation_steps), 1)
    total = t.max_steps if t.max_steps > 0 else math.ceil(t.num_epochs * per_epoch)
    warmup = t.warmup_steps if t.warmup_steps else math.ceil(total * t.warmup_ratio)
    if t.eval_per_epoch:
        eval_steps = save_steps = max(1, round(per_epoch / t.eval_per_epoch))
    else:
        eval_steps, save_steps = t.eval_steps, t.save_steps
    return Cadence(t.per_device_train_batch_size * t.gradient_accumulation_steps * world, per_epoch, total, warmup,
                   eval_steps, save_steps)


def _tokens(cfg: Config, records: Sequence[Record]) -> dict:
    """Tokens per epoch after truncation: counted with the tokenizer when it is local, else estimated (said so)."""
    from .model import prompt

    m = cfg.model
    tokenizer = None
    if m.model_id == TINY_MODEL_ID:  # trained in seconds on the same texts the train stage uses
        from .model.tiny import train_tokenizer

        tokenizer = train_tokenizer(prompt.tokenizer_corpus(sorted({r.text for r in records})),
                                    m.tiny.vocab_size, max_length=m.max_length)
    elif Path(m.model_id, "tokenizer.json").is_file() or Path(m.model_id, "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(m.model_id, trust_remote_code=m.trust_remote_code)
    if tokenizer is None:
        estimate = sum(min(m.max_length, math.ceil(len(r.text) / CHARS_PER_TOKEN) + 16) for r in records)
        return {"tokens_per_epoch": estimate, "tokens_counted": f"estimate ({CHARS_PER_TOKEN} characters a token, "
                f"cut at max_length {m.max_length}): {m.model_id}'s tokenizer is not local"}
    counted = sum(len(prompt.encode(r.text, r.lang, tokenizer, m.max_length, m.truncation_head_ratio)) + 1
                  for r in records)  # + the verdict token
    return {"tokens_per_epoch": counted, "tokens_counted": "exact, with the model's tokenizer"}


def warnings(cfg: Config, c: Cadence) -> list[str]:
    """The usual schedule checks (warmup 5-10% of the steps, a few evaluations per epoch), phrased with the fix."""
    t, out = cfg.training, []
    if c.warmup_steps > 0.1 * c.total_steps:
        out.append(f"warmup is {c.warmup_steps} of {c.total_steps} steps (over 10%): use training.warmup_ratio=0.05 "
                   "(and training.warmup_steps=0)")
    window = t.early_stopping_patience * c.eval_steps
    if t.early_stopping and t.eval_strategy == "steps" and window <= c.warmup_steps:
        out.append(f"early stopping can fire after {window} steps, inside the {c.warmup_steps}-step warmup: raise "
                   "training.early_stopping_patience or evaluate less often")
    if t.eval_strategy == "steps" and c.eval_steps > c.steps_per_epoch:
        out.append(f"evaluation every {c.eval_steps} steps is coarser than an epoch ({c.steps_per_epoch} steps): "
                   "set training.eval_per_epoch (e.g. 4)")
    if c.total_steps < 100:
        out.append(f"only {c.total_steps} optimizer steps: more epochs, or a smaller effective batch "
                   f"({c.effective_batch}), give the schedule room")
    return out


def training_plan(cfg: Config, train: Sequence[Record], val: Sequence[Record]) -> dict:
    """Everything `--dry-run` reports. Reads no model weights."""
    from pipeline.experiments.tracking import vram_tier

    t = cfg.training
    c = cadence(t, len(train), world_size())
    evaluating = t.eval_strategy != "no"
    interval = c.eval_steps if t.eval_strategy == "steps" else c.steps_per_epoch
    # The most a run makes (early stopping may end it sooner): the untrained model's evaluation, one every `interval`
    # steps, and the last step's when it is not one of those (transformers evaluates and saves at the last step).
    evaluations = 1 + c.total_steps // interval + (c.total_steps % interval > 0) if evaluating else 0
    return {
        "train_rows": len(train), "val_rows": len(val), "world_size": world_size(), **asdict(c),
        "epochs": round(c.total_steps / c.steps_per_epoch, 3),
        "evaluations": evaluations,
        "checkpoints": math.ceil(c.total_steps / c.save_steps) if t.eval_strategy != "epoch" else evaluations - 1,
        **_tokens(cfg, train),
        "model": cfg.model.model_id, "finetuning_type": cfg.model.finetuning_type,
        "vram_tier": (vram_tier(cfg) or "none of the vram-* presets' tiers") if cfg.model.model_id != TINY_MODEL_ID
        else "n/a (the built-in tiny model runs on CPU)",
        "warnings": warnings(cfg, c),
    }
