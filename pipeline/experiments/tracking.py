"""Experiment tracking glue: which tracker, offline when there is no key, and the environment every run records.

The trainer's own integrations (wandb, tensorboard, mlflow callbacks of transformers) log the training arguments and
metrics; this module makes them safe to turn on anywhere: wandb without an API key runs offline and says so instead
of failing, and a tracker that is not installed is named with the command that installs it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys

from pipeline.config import flatten

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
        os.environ["WANDB_TAGS"] = ",".join(run_tags(cfg))
    if "mlflow" in targets:
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", cfg.tracking.project)
        # mlflow tags are key/value pairs: 'phase:sweep' -> phase=sweep, a bare tag -> tag=true
        os.environ["MLFLOW_TAGS"] = json.dumps(dict(t.split(":", 1) if ":" in t else (t, "true")
                                                    for t in run_tags(cfg)))


def vram_tier(cfg) -> str | None:
    """The GPU memory preset (vram-12gb ... vram-80gb) whose every setting the config has, if any."""
    from pipeline.presets import PRESETS

    for name, preset in PRESETS.items():
        if name.startswith("vram-") and all(cfg.get(k) == v for k, v in preset.changes.items()):
            return name
    return None


def run_tags(cfg) -> list[str]:
    """The tracker tags of a run: the configured ones, the phase
    (baseline and sweep are set by `sgpipe sweep`; any other run is an iteration) and the VRAM tier it matches."""
    tags = list(cfg.tracking.tags)
    if not any(t.startswith("phase:") for t in tags):
        tags.append("phase:iteration")
    tier = vram_tier(cfg)
    if tier and f"tier:{tier}" not in tags:
        tags.append(f"tier:{tier}")
    return tags


def environment() -> dict:
    """Where a run ran (python, platform, torch, CUDA and GPU, library versions): recorded with every run."""
    import torch

    env = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "cpu_threads": torch.get_num_threads()}
    for name in ("transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "bitsandbytes"):
        module = sys.modules.get(name)
        env[name] = getattr(module, "__version__", None) if module else None
    return env


def run_metadata_callback(metadata: dict):
    """A TrainerCallback that records, beyond the training arguments:
    the config the train stage reads, the environment, the dataset version (hash) and sample counts, start and end times.
    transformers' own callbacks open the tracker runs; this adds to whichever is open."""
    import time

    from transformers import TrainerCallback

    params = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
              for k, v in flatten(metadata).items()}

    class RunMetadata(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            _log_params({**params, "time.start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

        def on_train_end(self, args, state, control, **kwargs):
            _log_params({"time.end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    return RunMetadata()


def _log_params(params: dict) -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.config.update(params, allow_val_change=True)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})  # mlflow caps values at 500 chars
