"""Named bundles of config changes: dataset-size profiles, one fix per training symptom, GPU memory tiers.

`--preset NAME` applies one after the YAML file and before `--set`, so a user can still override any single key.
The `fix-*` presets are the remedies of pipeline/advice.py, which `diagnose` and the report also give, so all three
prescribe the same values; `diagnose` points at these by name when it recognises the symptom.
"""
from __future__ import annotations

from dataclasses import dataclass

from .advice import ADVICE


@dataclass(frozen=True)
class Preset:
    why: str
    changes: dict


PRESETS: dict[str, Preset] = {
    # --- dataset size ("Optimized Configurations")
    "small-dataset": Preset("Fewer than 2k samples: stronger regularisation, more epochs.", {
        "training.learning_rate": 2e-5, "training.weight_decay": 0.2, "training.label_smoothing_factor": 0.15,
        "lora.dropout": 0.2, "training.early_stopping_patience": 2, "training.num_epochs": 3.0}),
    "medium-dataset": Preset("2k-10k samples: the production defaults.", {
        "training.learning_rate": 4e-5, "training.weight_decay": 0.15, "training.label_smoothing_factor": 0.1,
        "lora.dropout": 0.15, "training.early_stopping_patience": 2, "training.num_epochs": 1.0}),
    "large-dataset": Preset("More than 10k samples: less regularisation.", {
        "training.learning_rate": 4e-5, "training.weight_decay": 0.05, "training.label_smoothing_factor": 0.05,
        "lora.dropout": 0.1, "training.early_stopping_patience": 3, "training.num_epochs": 1.0}),
    # --- symptoms ("Quick Reference: Problems and Solutions")
    **{f"fix-{symptom}": Preset(f"{a.symptom[0].upper()}{a.symptom[1:]}: {a.fix}.", dict(a.changes))
       for symptom, a in ADVICE.items()},
    # --- GPU memory tiers (effective batch 32 throughout)
    "vram-12gb": Preset("8-12 GB GPU: StarCoder2-1B, batch 1 x 32.", {
        "model.model_id": "bigcode/starcoder2-1b", "training.per_device_train_batch_size": 1,
        "training.gradient_accumulation_steps": 32, "model.gradient_checkpointing": True,
        "training.optim": "paged_adamw_8bit", "training.learning_rate": 1e-4}),
    "vram-16gb": Preset("16 GB GPU: StarCoder2-3B, batch 2 x 16.", {
        "model.model_id": "bigcode/starcoder2-3b", "training.per_device_train_batch_size": 2,
        "training.gradient_accumulation_steps": 16, "model.gradient_checkpointing": True,
        "training.optim": "paged_adamw_8bit"}),
    "vram-24gb": Preset("24 GB GPU: StarCoder2-3B, batch 4 x 8 (production).", {
        "model.model_id": "bigcode/starcoder2-3b", "training.per_device_train_batch_size": 4,
        "training.gradient_accumulation_steps": 8, "model.gradient_checkpointing": True,
        "training.optim": "paged_adamw_8bit"}),
    "vram-40gb": Preset("40 GB GPU: StarCoder2-7B, batch 8 x 4, no checkpointing.", {
        "model.model_id": "bigcode/starcoder2-7b", "training.per_device_train_batch_size": 8,
        "training.gradient_accumulation_steps": 4, "model.gradient_checkpointing": False,
        "training.optim": "adamw_torch", "training.learning_rate": 2e-5}),
    "vram-80gb": Preset("80 GB GPU: StarCoder2-7B, batch 16 x 2, no checkpointing.", {
        "model.model_id": "bigcode/starcoder2-7b", "training.per_device_train_batch_size": 16,
        "training.gradient_accumulation_steps": 2, "model.gradient_checkpointing": False,
        "training.optim": "adamw_torch", "training.learning_rate": 2e-5}),
}
