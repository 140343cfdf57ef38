"""The training plan (issue 9: cadence that follows the run, `sgpipe train --dry-run`) and the production config's
schedule: warmup as a ratio, evaluations per epoch, no early stopping inside warmup."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ConfigError, load_config
from pipeline.plan import cadence, warnings
from pipeline.stages.train import training_arguments

from .conftest import ROOT, TINY_CONFIG

SCRIPTGUARD = ROOT / "configs" / "scriptguard.yaml"


def test_eval_per_epoch_sets_the_trainers_intervals(tmp_path):
    cfg = load_config(overrides=["model.load_in_4bit=false", "training.eval_per_epoch=4"])
    c = cadence(cfg.training, 1000, 1)  # 250 batches of 4, accumulation 8: 32 optimizer steps an epoch
    assert (c.effective_batch, c.steps_per_epoch, c.total_steps, c.eval_steps, c.save_steps) == (32, 32, 32, 8, 8)
    assert c.warmup_steps == 2  # the default ratio 0.05 of 32, rounded up as transformers does
    args = training_arguments(cfg, tmp_path, "cpu", print, 1000)
    assert (args.eval_steps, args.save_steps) == (8, 8)
    assert cadence(cfg.training, 10, 1).eval_steps == 1  # never 0, however small the data
    steps = load_config(overrides=["model.load_in_4bit=false", "training.eval_steps=7", "training.save_steps=14"])
    assert (cadence(steps.training, 1000, 1).eval_steps, cadence(steps.training, 1000, 1).save_steps) == (7, 14)


def test_eval_per_epoch_needs_step_evaluation():
    with pytest.raises(ConfigError, match="eval_per_epoch"):
        load_config(overrides=["training.eval_per_epoch=2", "training.eval_strategy=epoch"])


@pytest.mark.parametrize("scripts", [2_000, 10_000])
def test_scriptguard_schedule_fits_the_dataset_sizes_in_its_header(scripts):
    cfg = load_config(SCRIPTGUARD)
    train_rows = int(scripts * (1 - cfg.data.split.val_size - cfg.data.split.test_size))
    c = cadence(cfg.training, train_rows, 1)
    assert warnings(cfg, c) == []
    assert c.warmup_steps <= 0.1 * c.total_steps
    assert cfg.training.early_stopping_patience * c.eval_steps > c.warmup_steps
    assert c.eval_steps <= c.steps_per_epoch


def test_scriptguard_keeps_only_what_differs_from_the_defaults():
    import yaml

    from pipeline.config import Config

    defaults = Config().model_dump(mode="json")

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, prefix + key + ".")
            else:
                yield prefix + key, value

    same = [k for k, v in leaves(yaml.safe_load(SCRIPTGUARD.read_text()))
            if k != "data.ingest.inputs" and Config().get(k) == v]
    assert same == [], f"{same} repeat the schema's defaults"
    assert defaults  # the schema itself loads


def test_dry_run_prints_the_plan_without_loading_a_model(tmp_path, tiny_overrides, monkeypatch):
    from pipeline.model import backends, tiny

    def refuse(*args, **kwargs):
        raise AssertionError("--dry-run loaded model weights")

    monkeypatch.setattr(backends, "load_base", refuse)
    monkeypatch.setattr(tiny, "build_tiny_model", refuse)
    args = ["train", "--dry-run", "--config", str(TINY_CONFIG), "--run-dir", str(tmp_path / "run")]
    for item in [*tiny_overrides, "training.eval_per_epoch=2"]:
        args += ["--set", item]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    plan = json.loads((tmp_path / "run" / "train_plan.json").read_text())
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, "training.eval_per_epoch=2"])
    assert plan["train_rows"] == sum(1 for _ in open(tmp_path / "run" / "balance" / "train.jsonl"))
    assert plan["steps_per_epoch"] == -(-plan["train_rows"] // cfg.training.per_device_train_batch_size)
    assert plan["eval_steps"] == round(plan["steps_per_epoch"] / 2)
    assert plan["tokens_counted"].startswith("exact") and plan["tokens_per_epoch"] > plan["train_rows"]
    assert not (tmp_path / "run" / "train").exists()  # nothing trained
    assert '"total_steps"' in out.output
