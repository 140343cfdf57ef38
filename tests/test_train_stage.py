"""The train stage on data/tiny: config -> SFTConfig mapping, resume after an interrupt, refusal of stale checkpoints."""
import pytest

from pipeline.config import load_config
from pipeline.run.runner import StageError, run_pipeline, run_stage
from pipeline.stages.train import class_weights, training_arguments

from .conftest import FAST_TRAINING, TINY_CONFIG

FAST = [*FAST_TRAINING, "training.save_total_limit=5"]


def test_config_maps_onto_sft_config_with_cpu_fallbacks(tmp_path):
    cfg = load_config(overrides=["model.load_in_4bit=false", "training.warmup_steps=0", "training.warmup_ratio=0.1"])
    notes = []
    args = training_arguments(cfg, tmp_path, "cpu", notes.append, 100)
    t = cfg.training
    assert args.optim == "adamw_torch" and any("paged_adamw_8bit" in n for n in notes)  # 8-bit optimisers need CUDA
    assert not args.bf16 and not args.fp16 and args.use_cpu
    assert args.learning_rate == t.learning_rate and args.weight_decay == t.weight_decay
    assert args.gradient_accumulation_steps == 8 and args.per_device_train_batch_size == 4
    assert args.lr_scheduler_type.value == "cosine" and args.warmup_steps == 0.1
    assert args.eval_strategy.value == "steps" and args.save_steps % args.eval_steps == 0
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss" and not args.greater_is_better
    assert args.label_smoothing_factor == 0 and not args.packing and args.completion_only_loss
    assert args.train_sampling_strategy == "group_by_length" and args.max_length == cfg.model.max_length
    auc = training_arguments(load_config(overrides=["model.load_in_4bit=false",
                                                    "training.metric_for_best_model=eval_roc_auc"]), tmp_path, "cpu", print,
                             100)
    assert auc.greater_is_better


def test_class_weights_balance_the_classes():
    w_benign, w_malicious = class_weights([0, 0, 0, 1], "balanced")
    assert w_benign * 3 == pytest.approx(w_malicious * 1)
    assert class_weights([0, 1], "none") is None


def test_resume_continues_the_step_count_after_an_interrupt(tmp_path, tiny_overrides, monkeypatch):
    from pipeline.model.trainer import VerdictTrainer

    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST])
    run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None)
    with pytest.raises(StageError, match="no checkpoint"):
        run_stage(cfg, tmp_path, "train", options={"resume": True}, log=lambda m: None)

    real_step = VerdictTrainer.training_step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # after checkpoint-4 was written
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(VerdictTrainer, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_stage(cfg, tmp_path, "train", log=lambda m: None)
    assert not (tmp_path / "train").exists()  # nothing half-written was published
    assert (tmp_path / ".work" / "train" / "checkpoints" / "checkpoint-4").is_dir()
    monkeypatch.setattr(VerdictTrainer, "training_step", real_step)

    other = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST, "training.learning_rate=3e-4"])
    with pytest.raises(StageError, match="different config"):
        run_stage(other, tmp_path, "train", options={"resume": True}, log=lambda m: None)

    manifest = run_stage(cfg, tmp_path, "train", options={"resume": True}, log=lambda m: None)
    assert manifest["counts"]["resumed_from"] == "checkpoint-4" and manifest["counts"]["steps"] == 12
    assert not (tmp_path / ".work" / "train" / "checkpoints").exists()  # cleaned once published


def test_run_metadata_reaches_an_open_wandb_run(monkeypatch):
    import sys
    import types

    from pipeline.experiments.tracking import run_metadata_callback

    logged = {}
    fake = types.SimpleNamespace(run=object(), config=types.SimpleNamespace(
        update=lambda params, allow_val_change: logged.update(params)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cb = run_metadata_callback({"sgpipe": {"training": {"learning_rate": 1e-3}}, "dataset": {"train_sha256": "ab"}})
    cb.on_train_begin(None, None, None)
    assert logged["sgpipe.training.learning_rate"] == 1e-3 and logged["dataset.train_sha256"] == "ab"
    assert "time.start" in logged


def test_wandb_without_a_key_runs_offline(monkeypatch):
    import importlib.util

    from pipeline.experiments.tracking import setup_tracking

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # pretend wandb is installed
    notes = []
    setup_tracking(load_config(overrides=["tracking.report_to=[wandb]"]), notes.append)
    import os
    assert os.environ["WANDB_MODE"] == "offline" and any("offline" in n for n in notes)


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(tmp_path, tiny_overrides):
    """The hf backend under torchrun (what `accelerate launch` starts on GPUs): 2 ranks, gloo, one publication."""
    import json
    import subprocess
    import sys

    cfg = load_config(TINY_CONFIG, overrides=tiny_overrides)
    run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None)
    sets = sum((["--set", o] for o in [*tiny_overrides, "training.max_steps=4", "training.eval_per_epoch=0",
                                       "training.eval_steps=2", "training.save_steps=2", "training.torch_threads=1"]), [])
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pipeline.cli",
                           "train", "--config", str(TINY_CONFIG), "--run-dir", str(tmp_path), *sets],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads((tmp_path / "train" / "manifest.json").read_text())["counts"]
    batch = cfg.training.per_device_train_batch_size
    # two ranks each take a batch per step, so an epoch has half the steps it has in one process
    steps_per_epoch = -(-counts["train_rows"] // (2 * batch))
    assert counts["steps"] == 4 and counts["epochs"] == pytest.approx(4 / steps_per_epoch, abs=0.001)
    assert len(list((tmp_path / ".tmp").glob("*"))) == 0


def _weights_digest(classifier_dir) -> str:
    import hashlib

    from safetensors.torch import load_file

    state = load_file(str(classifier_dir / "model.safetensors"))
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode() + state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path, tiny_overrides):
    """A SIGKILL after checkpoint-4, then --resume: the same final weights (digest) and the whole run's mean loss."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    overrides = [*tiny_overrides, *FAST, "training.early_stopping=false"]
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    cfg = load_config(TINY_CONFIG, overrides=overrides)
    run_pipeline(cfg, straight_dir, until="balance", log=lambda m: None)
    straight = run_stage(cfg, straight_dir, "train", log=lambda m: None)
    run_pipeline(cfg, killed_dir, until="balance", log=lambda m: None)
    # a child process that SIGKILLs itself right after checkpoint-8 is written (mid-epoch, past an epoch boundary)
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from transformers import TrainerCallback
        from pipeline.config import load_config
        from pipeline.model import trainer
        from pipeline.run.runner import run_stage

        class Kill(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                if state.global_step == 8:
                    os.kill(os.getpid(), signal.SIGKILL)

        init = trainer.VerdictTrainer.__init__
        def with_kill(self, *a, **k):
            init(self, *a, **k)
            self.add_callback(Kill())
        trainer.VerdictTrainer.__init__ = with_kill
        run_stage(load_config({str(TINY_CONFIG)!r}, overrides={overrides!r}), Path({str(killed_dir)!r}), "train",
                  log=lambda m: None)
    """)
    env = {**os.environ, "PYTHONPATH": str(TINY_CONFIG.parents[1])}
    done = subprocess.run([sys.executable, "-c", child], env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert not (killed_dir / "train").exists()
    resumed = run_stage(cfg, killed_dir, "train", options={"resume": True}, log=lambda m: None)
    assert resumed["counts"]["resumed_from"] == "checkpoint-8"
    assert _weights_digest(killed_dir / "train" / "classifier") == _weights_digest(straight_dir / "train" / "classifier")
    assert resumed["counts"]["train_loss"] == pytest.approx(straight["counts"]["train_loss"], abs=1e-6)
    assert resumed["counts"]["val_loss_end"] == pytest.approx(straight["counts"]["val_loss_end"], abs=1e-6)


def test_training_seed_changes_the_model_and_never_the_data(tmp_path, tiny_overrides):
    """training.seed reseeds what training draws (init, data order) and nothing upstream: the split and the balanced
    rows stay run.seed's, so several training seeds on one split measure training noise alone. Unset, it is run.seed."""
    from pipeline.run.records import read_json

    fast = [*tiny_overrides, *FAST, "training.max_steps=4", "training.early_stopping=false"]

    def train(*extra):
        logs = []
        run_pipeline(load_config(TINY_CONFIG, overrides=[*fast, *extra]), tmp_path, until="train", log=logs.append)
        ran = {line.split("]")[0].strip("[") for line in logs if "] running" in line}  # "[split] running: ..."
        return _weights_digest(tmp_path / "train" / "classifier"), ran, read_json(tmp_path / "balance" / "manifest.json")

    default, _, balanced = train()
    other, ran, balanced_again = train("training.seed=7")
    assert other != default
    assert ran == {"train"} and balanced_again["output_digest"] == balanced["output_digest"]
    same, _, _ = train(f"training.seed={load_config(TINY_CONFIG).run.seed}")
    assert same == default
    with pytest.raises(Exception, match="training.seed"):
        load_config(TINY_CONFIG, overrides=["training.seed=-1"])
