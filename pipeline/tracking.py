"""Experiment tracking glue: which tracker, offline when there is no key, and the environment every run records.

The trainer's own integrations (wandb, tensorboard, mlflow callbacks of transformers) log the training arguments and
metrics; this module makes them safe to turn on anywhere: wandb without an API key runs offline and says so instead
of failing, and a tracker that is not installed is named with the command that installs it.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys

INSTALL_HINT = "pip install 'sgpipe[tracking]'"


def setup_tracking(cfg, log=print) -> None:
    targets = [r for r in cfg.tracking.report_to if r != "none"]
    for name in targets:
        module = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}[name]
        if importlib.util.find_spec(module) is None:
            raise RuntimeError(f"tracking.report_to lists {name} but it is not installed: {INSTALL_HINT}, or "
                               f"--set tracking.report_to=[none]")
    if "wandb" in targets:
        mode = cfg.tracking.wandb_mode
        if mode == "auto":
            mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            if mode == "offline":
                log("[train] wandb: no WANDB_API_KEY, logging offline (sync later with `wandb sync`)")
        os.environ["WANDB_MODE"] = mode
        os.environ.setdefault("WANDB_PROJECT", cfg.tracking.project)
        if cfg.tracking.tags:
            os.environ["WANDB_TAGS"] = ",".join(cfg.tracking.tags)
    if "mlflow" in targets:
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", cfg.tracking.project)


def environment() -> dict:
    """What hyperparameter-tracking.md asks every run to record about where it ran."""
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "cpu_threads": torch.get_num_threads()}
    for name in ("transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "bitsandbytes"):
        module = sys.modules.get(name)
        env[name] = getattr(module, "__version__", None) if module else None
    return env
