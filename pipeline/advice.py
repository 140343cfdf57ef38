"""What to change for each training symptom: one table that presets (`--preset fix-*`), `sgpipe diagnose` and the
report's collapse alarm all read, so they never prescribe different values for the same symptom.

The values are the usual fine-tuning remedies for a code LLM classifier (regularise harder when validation loss
turns up while training loss keeps falling, and so on); each entry says how the symptom shows, the fix in words,
and the config values that carry it out. `diagnose` starts from these values and goes one rung further when a run
already had them (see `ladder`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import DedupConfig

DEDUP_THRESHOLD = DedupConfig.model_fields["threshold"].default  # the schema's default, the one source of 0.85


@dataclass(frozen=True)
class Advice:
    symptom: str  # how it shows in a run
    fix: str  # the remedy in words (shown by diagnose, the report and `--preset` help)
    changes: dict  # dotted config key -> the value the remedy sets


ADVICE: dict[str, Advice] = {
    "overfitting": Advice(
        "training loss keeps falling while validation loss rises (train accuracy far above validation)",
        "regularise harder: weight decay 0.2, LoRA dropout 0.2, label smoothing 0.15, early stopping with patience 2",
        {"training.weight_decay": 0.2, "lora.dropout": 0.2, "training.label_smoothing_factor": 0.15,
         "training.early_stopping_patience": 2}),
    "underfitting": Advice(
        "training and validation loss both stay high",
        "more capacity and faster learning: learning rate 1e-4, LoRA r 32 (alpha 64), weight decay 0.05, label "
        "smoothing at most 0.05, LoRA dropout at most 0.1, 3 epochs",
        {"training.learning_rate": 1e-4, "lora.r": 32, "lora.alpha": 64, "training.weight_decay": 0.05,
         "training.label_smoothing_factor": 0.05, "lora.dropout": 0.1, "training.num_epochs": 3.0}),
    "collapse": Advice(
        "every script is called one class ('Specificity: 0.00' or 'Sensitivity: 0.00')",
        f"label smoothing 0.1-0.15; augmentation of both classes after the split (sgpipe always augments after it); "
        f"hybrid balancing; near-duplicate removal at {DEDUP_THRESHOLD}; and check the threshold policy (a fixed 0.5 "
        "on uncalibrated scores, or a target the validation set cannot meet, puts every score on one side): if ROC "
        "AUC is high the ranking is fine and only the threshold is wrong",
        {"training.label_smoothing_factor": 0.1, "data.balance.method": "hybrid", "data.dedup.enabled": True,
         "data.dedup.threshold": DEDUP_THRESHOLD}),
    "oom": Advice(
        "CUDA out of memory",
        "halve the batch, double gradient accumulation (same effective batch), checkpoint activations",
        {"training.per_device_train_batch_size": 2, "training.gradient_accumulation_steps": 16,
         "model.gradient_checkpointing": True}),
    "slow": Advice(
        "training takes too long per step",
        "bigger batches, fewer evaluations, length-grouped batches and fast kernels",
        {"training.group_by_length": True, "model.use_flash_attention_2": True, "training.tf32": True,
         "training.per_device_train_batch_size": 8, "training.gradient_accumulation_steps": 4,
         "training.eval_per_epoch": 1}),
}


def ladder(symptom: str, key: str, *further: float) -> list[float]:
    """The advised value of `key` for `symptom`, then the further rungs diagnose may climb to."""
    return [ADVICE[symptom].changes[key], *further]
