"""One loader for every consumer: train, evaluate, predict and export build a LoRA classifier's base through
`backends.load_base` from the run's `model` settings (issue 9, defect 1), and the untrained evaluation opens the
training log (defect 5).

The run uses a hub-style base: the tiny StarCoder2 saved to a folder and named by path, so the classifier stores only
the adapter and every consumer must rebuild the base. A recording loader (wrapping the real one) proves what each
consumer asked for; the tiny model itself keeps the scores honest (predict agrees with evaluate).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config
from pipeline.model import backends
from pipeline.run.records import read_records
from pipeline.run.runner import run_pipeline

from .conftest import NO_BASELINE, TINY_CONFIG, TINY_DATA

OVERRIDES = [f"data.ingest.inputs=[{TINY_DATA}]", "data.dedup.workers=1", "model.finetuning_type=lora",
             "lora.r=4", "model.bnb_4bit_compute_dtype=float16",  # not the default: it must travel to every loader
             "training.max_steps=4", "training.eval_per_epoch=0", "training.eval_steps=2", "training.save_steps=2",
             "training.torch_threads=1",
             *NO_BASELINE, "evaluation.bootstrap_samples=0"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(run_dir, cfg, calls): a whole LoRA run, predict and export, every load_base call recorded."""
    from pipeline.model import prompt
    from pipeline.model.tiny import build_tiny_model, train_tokenizer

    root = tmp_path_factory.mktemp("loading")
    texts = [json.loads(line)["text"] for line in TINY_DATA.read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(texts), 512, max_length=512)
    base = root / "base"  # stands in for a hub checkpoint: untrimmed model + tokenizer, loaded by path
    model = build_tiny_model(len(tokenizer), max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)

    calls, real = [], backends.load_base

    def recording(model_cfg, **kwargs):
        calls.append({"model": model_cfg.model_dump(mode="json"), **kwargs})
        return real(model_cfg, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(backends, "load_base", recording)
    try:
        run_dir = root / "run"
        cfg = load_config(TINY_CONFIG, overrides=[*OVERRIDES, f"model.model_id={base}",
                                                  f"report.dir={root / 'reports'}"])
        run_pipeline(cfg, run_dir, log=lambda m: None, until="evaluate")
        scripts = root / "scripts.jsonl"
        test = list(read_records(run_dir / "split" / "test.jsonl"))[:6]
        scripts.write_text("".join(json.dumps({"text": r.text, "lang": r.lang}) + "\n" for r in test))
        predicted = CliRunner().invoke(app, ["predict", str(scripts), "--model", str(run_dir), "--format", "json"])
        assert predicted.exit_code == 0, predicted.output
        exported = CliRunner().invoke(app, ["export", str(root / "export"), "--model", str(run_dir),
                                            "--dtype", "bfloat16"])
        assert exported.exit_code == 0, exported.output
    finally:
        mp.undo()
    return run_dir, cfg, calls, test, json.loads(predicted.stdout)


def test_every_consumer_loads_the_base_with_the_runs_model_settings(recorded):
    import torch

    run_dir, cfg, calls, _, _ = recorded
    trained = cfg.model.model_dump(mode="json")
    assert not (run_dir / "train" / "classifier" / "base").exists()  # the base is rebuilt, not stored
    # train, evaluate, predict, export: in that order, each with the run's settings
    assert [c.get("training", False) for c in calls] == [True, False, False, False]
    for call in calls[:3]:
        assert call["model"] == trained and call["device"] == "cpu"
    export = calls[3]
    assert export["model"] == {**trained, "load_in_4bit": False}  # merging needs an unquantized base...
    assert export["dtype"] == torch.bfloat16  # ...in the dtype the user chose


def test_predict_scores_equal_evaluate_scores(recorded):
    run_dir, _, _, test, predictions = recorded
    by_id = {json.loads(line)["id"]: json.loads(line)["score"]
             for line in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()}
    np.testing.assert_allclose([p["score"] for p in predictions], [by_id[r.id] for r in test], atol=1e-5)


def test_export_writes_weights_in_the_chosen_dtype(recorded):
    from transformers import AutoModelForSequenceClassification

    run_dir, *_ = recorded
    exported = AutoModelForSequenceClassification.from_pretrained(run_dir.parent / "export")
    assert str(exported.config.dtype).endswith("bfloat16")


def test_log_history_begins_with_the_untrained_evaluation(recorded):
    run_dir, *_ = recorded
    history = json.loads((run_dir / "train" / "log_history.json").read_text())
    assert history[0]["step"] == 0 and "eval_loss" in history[0]
    counts = json.loads((run_dir / "train" / "manifest.json").read_text())["counts"]
    assert counts["val_loss_start"] == history[0]["eval_loss"]
    assert sum(1 for h in history if h.get("step") == 0 and "eval_loss" in h) == 1


def test_dry_run_plan_counts_the_evaluations_and_checkpoints_the_run_made(recorded):
    """The plan `train --dry-run` prints is what training does: the untrained evaluation, one every eval_steps, and
    the last step's only when it is not already one of those (counted once, not twice)."""
    from pipeline.plan import training_plan

    run_dir, cfg, *_ = recorded
    plan = training_plan(cfg, list(read_records(run_dir / "balance" / "train.jsonl")),
                         list(read_records(run_dir / "split" / "val.jsonl")))
    history = json.loads((run_dir / "train" / "log_history.json").read_text())
    evaluated = [h["step"] for h in history if "eval_loss" in h]
    assert evaluated == sorted(set(evaluated))  # no step evaluated twice
    assert plan["evaluations"] == len(evaluated) and plan["total_steps"] == max(evaluated)
