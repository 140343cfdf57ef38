"""diagnose on planted runs (hand-written log_history.json and metrics.json): it flags overfitting, collapse, an
exploding gradient, NaN, an off-schedule learning rate and early stopping inside warmup, each with the steps that
show it, and stays quiet on a healthy log. write_config writes a new, valid config and never the run's own."""
import json
import math

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ConfigError, load_config
from pipeline.experiments.diagnose import DiagnoseError, check_memory, diagnose, read_log, render_json, smoothing_floor, suggested_changes, write_config

from .conftest import TINY_CONFIG

STEPS_PER_EPOCH = 10
PLAN = ["training.num_epochs=6", "training.eval_per_epoch=0", "training.eval_steps=10", "training.save_steps=10",
        "training.logging_steps=5",
        "training.warmup_ratio=0.05", "training.lr_scheduler_type=linear", "training.label_smoothing_factor=0.1"]


def _cfg(*more):
    return load_config(TINY_CONFIG, overrides=[*PLAN, *more])


def _expected_lr(cfg, steps: int) -> list[float]:
    """The learning rate of each step as transformers' own scheduler produces it (what a real log holds)."""
    import torch
    from transformers import get_scheduler

    t = cfg.training
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=t.learning_rate)
    sched = get_scheduler(t.lr_scheduler_type, opt, num_warmup_steps=math.ceil(steps * t.warmup_ratio),
                          num_training_steps=steps)
    rates = []
    for _ in range(steps):
        rates.append(sched.get_last_lr()[0])  # the rate the step uses; the trainer logs it after the step
        opt.step()
        sched.step()
    return rates


def _history(cfg, train, val, *, last=60, grad=lambda s: 1.0 / (1 + s / 20), lr=None):
    """A trainer log: a loss line every 5 steps, an evaluation every 10 (and at 0), then the summary and the final
    evaluation of the best checkpoint, like transformers writes it."""
    rates = lr or _expected_lr(cfg, 60)
    h = [{"eval_loss": val(0), "eval_specificity": 0.5, "eval_sensitivity": 0.5, "eval_roc_auc": 0.5, "epoch": 0,
          "step": 0}]
    for step in range(1, last + 1):
        epoch = step / STEPS_PER_EPOCH
        if step == 1 or step % 5 == 0:
            h.append({"loss": train(step), "grad_norm": grad(step), "learning_rate": rates[step - 1], "epoch": epoch,
                      "step": step})
        if step % 10 == 0:
            h.append({"eval_loss": val(step), "eval_specificity": 0.9, "eval_sensitivity": 0.9, "eval_roc_auc": 0.95,
                      "epoch": epoch, "step": step})
    h.append({"train_loss": train(last), "total_flos": 1.0, "epoch": last / STEPS_PER_EPOCH, "step": last})
    best = min(range(0, last + 1, 10), key=val)
    h.append({"eval_loss": val(best), "eval_specificity": 0.9, "eval_sensitivity": 0.9, "eval_roc_auc": 0.95,
              "epoch": last / STEPS_PER_EPOCH, "step": last})
    return h


HEALTHY_METRICS = {"n": 46, "tp": 16, "fp": 3, "tn": 25, "fn": 2, "sensitivity": 16 / 18, "specificity": 25 / 28,
                   "roc_auc": 0.95, "threshold": 0.42}


def _run(tmp_path, history, metrics=HEALTHY_METRICS, cfg=None):
    """A planted run directory; with `cfg`, a train manifest recording its config slices (as the runner does)."""
    (tmp_path / "train").mkdir(parents=True)
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "train" / "log_history.json").write_text(json.dumps(history))
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps({"model": metrics}))
    if cfg is not None:
        slices = {k: cfg.slice(k) for k in ("model", "lora", "training", "run.seed")}
        (tmp_path / "train" / "manifest.json").write_text(json.dumps(
            {"stage": "train", "config": slices, "counts": {"device": "cpu"}}))
    return tmp_path


def healthy_train(s):
    return 0.25 + 0.44 * math.exp(-s / 15)


def healthy_val(s):
    return 0.30 + 0.40 * math.exp(-s / 15)


def _codes(findings, alarms_only=True):
    return {f.code for f in findings if f.alarm or not alarms_only}


def test_healthy_log_raises_no_alarm_and_the_schedule_matches_transformers(tmp_path):
    cfg = _cfg()
    findings = diagnose(_run(tmp_path, _history(cfg, healthy_train, healthy_val)), cfg)
    assert _codes(findings) == set()
    assert {f.severity for f in findings} == {"info"}
    assert "lr_schedule" not in _codes(findings, alarms_only=False)
    assert "healthy" in _codes(findings, alarms_only=False)
    assert suggested_changes(findings) == {}


@pytest.mark.parametrize("kind", ["cosine", "constant_with_warmup", "polynomial", "cosine_with_restarts"])
def test_other_schedules_match_transformers(tmp_path, kind):
    cfg = _cfg(f"training.lr_scheduler_type={kind}")
    findings = diagnose(_run(tmp_path, _history(cfg, healthy_train, healthy_val)), cfg)
    assert "lr_schedule" not in _codes(findings)


def test_planted_overfitting_is_flagged_with_its_steps_and_the_guide_fix(tmp_path):
    cfg = _cfg()
    history = _history(cfg, lambda s: max(smoothing_floor(0.1), 0.69 - 0.012 * s),
                       lambda s: 0.70 - 0.01 * s if s <= 30 else 0.40 + 0.012 * (s - 30))
    findings = diagnose(_run(tmp_path, history), cfg)
    over = next(f for f in findings if f.code == "overfitting")
    assert over.severity == "warning" and over.preset == "fix-overfitting"
    assert over.evidence["steps"][0] == 30 and over.evidence["steps"][-1] == 60  # best step, then the rise
    assert over.evidence["val_loss"][-1] > over.evidence["val_loss"][0]
    assert over.changes["training.weight_decay"] > cfg.training.weight_decay
    assert over.changes["training.label_smoothing_factor"] > cfg.training.label_smoothing_factor
    assert "underfitting" not in _codes(findings)


def _val_predictions(run_dir, malicious_called, benign_called):
    """Plant evaluate/val_predictions.jsonl: 10 malicious and 10 benign scripts with the given predictions."""
    rows = [{"label": "malicious", "prediction": malicious_called}] * 10 + \
           [{"label": "benign", "prediction": benign_called}] * 10
    (run_dir / "evaluate" / "val_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


COLLAPSED_TEST = {"n": 46, "tp": 18, "fp": 28, "tn": 0, "fn": 0, "sensitivity": 1.0, "specificity": 0.0,
                  "roc_auc": 0.52, "threshold": 0.5}


def test_planted_collapse_on_validation_is_an_error_with_changes(tmp_path):
    cfg = _cfg("data.balance.method=none", "training.label_smoothing_factor=0.0")
    run_dir = _val_predictions(_run(tmp_path, _history(cfg, healthy_train, healthy_val), COLLAPSED_TEST),
                               "malicious", "malicious")
    findings = diagnose(run_dir, cfg)
    collapse = next(f for f in findings if f.code == "collapse")
    assert collapse.severity == "error" and findings[0] is collapse  # most severe first
    assert "specificity is 0.00 on validation" in collapse.title and collapse.evidence["val_tn"] == 0
    assert collapse.changes["data.balance.method"] == "hybrid"
    assert collapse.changes["training.label_smoothing_factor"] == pytest.approx(0.1)
    assert "evaluation.threshold_policy" not in collapse.changes  # ROC AUC 0.52: the ranking itself is poor
    on_test = next(f for f in findings if f.code == "collapse_on_test")
    assert on_test.changes == {} and on_test.evidence["all_scores_one_side"] is True


def test_collapse_on_test_only_changes_no_config(tmp_path):
    """Test figures inform; they never feed --write-config (that would tune on the test set)."""
    cfg = _cfg("data.balance.method=none", "training.label_smoothing_factor=0.0")
    run_dir = _val_predictions(_run(tmp_path, _history(cfg, healthy_train, healthy_val), COLLAPSED_TEST),
                               "malicious", "benign")  # validation is fine at the chosen threshold
    findings = diagnose(run_dir, cfg)
    assert "collapse" not in _codes(findings)
    on_test = next(f for f in findings if f.code == "collapse_on_test")
    assert on_test.changes == {} and "specificity is 0.00 on test" in on_test.title
    assert "data.balance.method" not in suggested_changes(findings)
    assert "training.label_smoothing_factor" not in suggested_changes(findings)


def test_planted_exploding_gradient_names_the_step(tmp_path):
    cfg = _cfg()
    history = _history(cfg, healthy_train, healthy_val, grad=lambda s: 250.0 if s == 25 else 0.8)
    findings = diagnose(_run(tmp_path, history), cfg)
    boom = next(f for f in findings if f.code == "grad_exploding")
    assert boom.alarm and boom.evidence["steps"] == [25] and boom.evidence["grad_norm"] == [250.0]
    assert boom.changes["training.learning_rate"] < cfg.training.learning_rate


def test_nan_loss_is_an_error_and_json_stays_valid(tmp_path):
    cfg = _cfg()
    history = _history(cfg, lambda s: float("nan") if s >= 40 else healthy_train(s), healthy_val)
    findings = diagnose(_run(tmp_path, history), cfg)
    nan = next(f for f in findings if f.code == "loss_nan")
    assert nan.severity == "error" and nan.evidence["steps"][0] == 40
    strict = json.loads(render_json(findings, tmp_path), parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert strict["alarm"] is True


def test_learning_rate_off_schedule(tmp_path):
    cfg = _cfg()  # linear decay planned; the log shows a constant rate
    history = _history(cfg, healthy_train, healthy_val, lr=[cfg.training.learning_rate] * 60)
    finding = next(f for f in diagnose(_run(tmp_path, history), cfg) if f.code == "lr_schedule")
    assert finding.alarm and finding.evidence["planned_steps"] == 60 and finding.evidence["warmup_steps"] == 3
    assert finding.evidence["steps"][0] == 1  # warmup starts at 0, not at the peak


def test_early_stopping_inside_warmup(tmp_path):
    cfg = _cfg("training.warmup_ratio=0", "training.warmup_steps=40", "training.early_stopping_patience=1")
    history = _history(cfg, healthy_train, healthy_val, last=20, lr=_expected_lr(cfg, 60))
    finding = next(f for f in diagnose(_run(tmp_path, history), cfg) if f.code == "early_stop_in_warmup")
    assert finding.evidence["steps"] == [20] and finding.evidence["warmup_steps"] == 40
    new = finding.changes["training.early_stopping_patience"]
    assert new * cfg.training.eval_steps > 40  # patience now outlasts the warmup


def test_underfitting_when_both_losses_stay_near_chance(tmp_path):
    cfg = _cfg()
    history = _history(cfg, lambda s: 0.69 - 0.0002 * s, lambda s: 0.70 - 0.0001 * s)
    finding = next(f for f in diagnose(_run(tmp_path, history), cfg) if f.code == "underfitting")
    assert finding.evidence["flat"] is True
    assert finding.changes["training.learning_rate"] > cfg.training.learning_rate
    assert finding.changes["training.num_epochs"] > cfg.training.num_epochs  # it used its whole budget


def test_memory_advice_on_cuda_and_tier_info():
    off_tier = load_config(TINY_CONFIG, overrides=["model.model_id=bigcode/starcoder2-3b", "model.finetuning_type=lora",
                                                   "training.per_device_train_batch_size=16",
                                                   "training.gradient_accumulation_steps=8"])
    (advice,) = check_memory(off_tier, "cuda")
    assert advice.severity == "advice" and not advice.alarm
    assert advice.changes["model.load_in_4bit"] is True and advice.changes["model.gradient_checkpointing"] is True
    assert advice.changes["training.gradient_accumulation_steps"] * 16 <= 64
    tier = load_config(presets=["vram-24gb"])
    assert [(f.code, f.preset) for f in check_memory(tier, "cuda")] == [("memory_tier", "vram-24gb")]
    assert check_memory(tier, "cpu")[0].severity == "info"
    assert check_memory(load_config(TINY_CONFIG), "cpu") == []  # the tiny CPU model has no VRAM to plan


def test_write_config_writes_a_new_valid_config_never_the_base(tmp_path):
    cfg = _cfg()
    history = _history(cfg, lambda s: max(0.2, 0.69 - 0.012 * s),
                       lambda s: 0.70 - 0.01 * s if s <= 30 else 0.40 + 0.012 * (s - 30))
    run = _run(tmp_path / "run", history, cfg=cfg)
    findings = diagnose(run, cfg)
    base = tmp_path / "base.yaml"
    base.write_text(TINY_CONFIG.read_text())
    out, changes = write_config(findings, base, tmp_path / "next.yaml", protect=run)
    new = load_config(out)
    assert changes and all(new.get(k) == pytest.approx(v) for k, v in changes.items())
    assert base.read_text() == TINY_CONFIG.read_text()
    with pytest.raises(DiagnoseError, match="base config itself"):
        write_config(findings, base, base)
    with pytest.raises(DiagnoseError, match="inside the run directory"):
        write_config(findings, base, run / "config.yaml", protect=run)
    bad = [f for f in findings if f.code == "overfitting"]
    bad[0].changes = {"training.packing": True}  # a change load_config refuses is never published
    with pytest.raises(ConfigError):
        write_config(bad, base, tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_cli_diagnose_reads_the_config_from_the_run_and_writes_json(tmp_path):
    cfg = _cfg()
    run = _run(tmp_path / "run", _history(cfg, healthy_train, lambda s: 0.70 - 0.01 * s if s <= 30
                                          else 0.40 + 0.012 * (s - 30)), cfg=cfg)
    result = CliRunner().invoke(app, ["diagnose", "--run-dir", str(run), "--json", "--write-config",
                                      str(tmp_path / "n.yaml")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alarm"] and "overfitting" in {f["code"] for f in report["findings"]}
    assert "lr_schedule" not in {f["code"] for f in report["findings"]}  # the manifest's schedule was used
    assert load_config(tmp_path / "n.yaml").training.weight_decay > cfg.training.weight_decay
    text = CliRunner().invoke(app, ["diagnose", str(run)])  # the old positional spelling still works
    assert "WARNING" in text.stdout and "overfitting" in text.stdout
    missing = CliRunner().invoke(app, ["diagnose", "--run-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "log_history.json is missing" in missing.output.replace("\n", "")


def test_read_log_separates_the_final_evaluation():
    cfg = _cfg()
    log = read_log(_history(cfg, healthy_train, healthy_val))
    assert log.steps_per_epoch == STEPS_PER_EPOCH and log.last_step == 60
    assert [e["step"] for e in log.evals] == list(range(0, 61, 10)) and log.final["step"] == 60


def test_early_stopping_inside_warmup_reads_the_per_epoch_interval_from_the_log(tmp_path):
    """With training.eval_per_epoch, eval_steps in the config is not the cadence: the log's is (every 10 here)."""
    cfg = _cfg("training.warmup_ratio=0", "training.warmup_steps=40", "training.early_stopping_patience=1",
               "training.eval_per_epoch=3", "training.eval_steps=1")
    history = _history(cfg, healthy_train, healthy_val, last=20, lr=_expected_lr(cfg, 60))
    finding = next(f for f in diagnose(_run(tmp_path, history), cfg) if f.code == "early_stop_in_warmup")
    assert finding.evidence["eval_steps"] == 10
    assert finding.changes["training.early_stopping_patience"] == 5  # ceil(40 / 10) + 1, not 41
