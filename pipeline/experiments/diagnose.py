"""Diagnose a run: read its training log, metrics and config, name what went wrong, and give the fixes.

Each check reads numbers the run already saved (train/log_history.json, evaluate/metrics.json, the config slices in
the stage manifests) and returns Findings with their evidence (the steps and values that triggered them) and the
config changes pipeline/advice.py prescribes for that symptom (the fix-* presets), computed from the run's
own values (a weight decay already at 0.2 goes to 0.3, not back to 0.2). Severity: error and warning are alarms;
advice and info are not, so a healthy run reports infos only.

Losses are judged against what a two-label classifier can reach: ln 2 = 0.693 is chance, and the smoothed training
loss cannot fall below the entropy of its smoothed targets (0.199 at label_smoothing_factor 0.1). The validation
loss is unsmoothed (pipeline/model/trainer.py), so it compares across smoothing settings.
"""
from __future__ import annotations

import copy
import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.advice import ADVICE, ladder
from pipeline.config import TINY_MODEL_ID, Config, load_config, set_dotted
from pipeline.run.records import read_json
from pipeline.run.rundir import RunDir

SEVERITIES = ("error", "warning", "advice", "info")  # most severe first; findings are sorted this way
ALARMS = ("error", "warning")
LN2 = math.log(2)
GRAD_EXPLODING = 100.0
GRAD_VANISHING = 1e-3
LR_TOLERANCE = 0.02  # of the peak learning rate: logged values are rounded floats of the scheduler's lambda


@dataclass
class Finding:
    code: str
    severity: str  # error | warning | advice | info
    title: str
    evidence: dict = field(default_factory=dict)  # steps and the values seen there, plus the figures compared
    changes: dict[str, Any] = field(default_factory=dict)  # dotted config key -> suggested value
    preset: str | None = None  # the preset (pipeline/presets.py) for this symptom
    why: str = ""

    @property
    def alarm(self) -> bool:
        return self.severity in ALARMS


class DiagnoseError(ValueError):
    """The run cannot be diagnosed (no training log); the message names the file and the command that makes it."""


# ------------------------------------------------------------------------------------------------ the log
@dataclass
class Log:
    train: list[tuple[int, float]]  # (step, training loss)
    grad: list[tuple[int, float]]  # (step, gradient norm before clipping)
    lr: list[tuple[int, float]]  # (step, learning rate used for that step)
    evals: list[dict]  # validation evaluations during training (the one at step 0 included)
    final: dict | None  # the evaluation of the checkpoint kept, after training
    last_step: int
    steps_per_epoch: float | None

    def eval_losses(self) -> list[tuple[int, float]]:
        return [(e.get("step", 0), e["eval_loss"]) for e in self.evals if "eval_loss" in e]


def read_log(history: list[dict]) -> Log:
    """Split the trainer's log history into series. The summary entry (train_loss, the mean over the run) ends
    training; evaluations after it are of the kept (best) checkpoint."""
    end = next((i for i, h in enumerate(history) if "train_loss" in h or "train_runtime" in h), len(history))
    during, after = history[:end], history[end:]
    steps = [h["step"] for h in history if isinstance(h.get("step"), int)]
    per_epoch = [h["step"] / h["epoch"] for h in during if h.get("epoch") and h.get("step")]
    spe = per_epoch[-1] if per_epoch else None
    if spe is not None and abs(spe - round(spe)) < 0.02 * spe:
        spe = float(round(spe))  # epoch is logged as a float fraction: 0.0833 -> 12 steps per epoch
    finals = [h for h in after if "eval_loss" in h]
    return Log(train=[(h["step"], h["loss"]) for h in during if "loss" in h],
               grad=[(h["step"], h["grad_norm"]) for h in during if "grad_norm" in h],
               lr=[(h["step"], h["learning_rate"]) for h in during if "learning_rate" in h],
               evals=[h for h in during if "eval_loss" in h], final=finals[-1] if finals else None,
               last_step=max(steps, default=0), steps_per_epoch=spe)


def smoothing_floor(eps: float) -> float:
    """The lowest training loss possible with targets (1 - eps/2, eps/2): their entropy."""
    p = eps / 2
    return 0.0 if p <= 0 else -((1 - p) * math.log(1 - p) + p * math.log(p))


def planned_steps(log: Log, cfg: Config) -> int | None:
    t = cfg.training
    if t.max_steps > 0:
        return t.max_steps
    return math.ceil(t.num_epochs * log.steps_per_epoch - 1e-9) if log.steps_per_epoch else None


def warmup_steps(cfg: Config, total: int | None) -> int | None:
    """As transformers computes it: warmup_steps, else ceil(total x warmup_ratio)."""
    t = cfg.training
    if t.warmup_steps:
        return t.warmup_steps
    return math.ceil(total * t.warmup_ratio) if total is not None else None


def schedule_factor(kind: str, step: int, warmup: int, total: int, peak: float) -> float | None:
    """The scheduler's multiplier of the peak learning rate at `step` (transformers' formulas), or None when it
    depends on arguments sgpipe does not set (cosine_with_min_lr)."""
    if kind == "constant":
        return 1.0  # transformers' plain constant schedule has no warmup
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant_with_warmup":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if kind == "cosine_with_restarts":  # one cycle: a cosine that ends at 0
        return 0.0 if progress >= 1 else max(0.0, 0.5 * (1.0 + math.cos(math.pi * (progress % 1.0))))
    if kind == "polynomial":  # power 1, lr_end 1e-7
        end = 1e-7
        return end / peak if step > total else ((peak - end) * (1 - progress) + end) / peak
    return None


def _tail(series: list[tuple[int, float]], fraction: float = 1 / 3) -> list[float]:
    n = max(1, math.ceil(len(series) * fraction))
    return [v for _, v in series[-n:]]


def _head(series: list[tuple[int, float]], fraction: float = 1 / 3) -> list[float]:
    n = max(1, math.ceil(len(series) * fraction))
    return [v for _, v in series[:n]]


def _r(value: float) -> float | str:
    """Evidence values: 4 significant digits; NaN and infinity as text (JSON has no NaN)."""
    return float(f"{value:.4g}") if math.isfinite(value) else str(value)


def _up(current: float, ladder: list[float]) -> float:
    """The first rung above `current`, or `current` when it is already at the top."""
    return next((v for v in ladder if v > current + 1e-12), current)


def _only_changed(cfg: Config, proposal: dict) -> dict:
    return {k: v for k, v in proposal.items() if cfg.get(k) != v}


def _lora(cfg: Config) -> bool:
    return cfg.model.finetuning_type == "lora"


# ------------------------------------------------------------------------------------------------ the fixes
def overfitting_changes(cfg: Config) -> dict:
    """ADVICE['overfitting'] (one rung up when the run already had it), and alpha = r for gentler LoRA updates."""
    t, advised = cfg.training, ADVICE["overfitting"].changes
    p: dict[str, Any] = {"training.weight_decay": _up(t.weight_decay, ladder("overfitting", "training.weight_decay",
                                                                             0.3)),
                         "training.label_smoothing_factor": _up(t.label_smoothing_factor, ladder(
                             "overfitting", "training.label_smoothing_factor", 0.2)),
                         "training.early_stopping": True, "training.load_best_model_at_end": True,
                         "training.early_stopping_patience": min(t.early_stopping_patience,
                                                                 advised["training.early_stopping_patience"])}
    if _lora(cfg):
        p["lora.dropout"] = _up(cfg.lora.dropout, ladder("overfitting", "lora.dropout", 0.3))
        p["lora.alpha"] = min(cfg.lora.alpha, cfg.lora.r)
    return _only_changed(cfg, p)


def _more_learning_rate(cfg: Config) -> float:
    # at least the advised rate, 2.5x the run's; capped (from-scratch models such as the tiny one use 1e-3 to 5e-3)
    cap = 5e-3 if cfg.model.model_id == TINY_MODEL_ID else 1e-2
    advised = ADVICE["underfitting"].changes["training.learning_rate"]
    return float(f"{min(cap, max(advised, cfg.training.learning_rate * 2.5)):.3g}")


def underfitting_changes(cfg: Config, used_whole_budget: bool) -> dict:
    """ADVICE['underfitting']: learning rate up, LoRA r up (alpha 2r), less weight decay, smoothing and dropout.
    More epochs only when the run used its whole budget (else it stopped early)."""
    t, advised = cfg.training, ADVICE["underfitting"].changes
    p: dict[str, Any] = {"training.learning_rate": _more_learning_rate(cfg),
                         "training.weight_decay": min(t.weight_decay, advised["training.weight_decay"]),
                         "training.label_smoothing_factor": min(t.label_smoothing_factor,
                                                                advised["training.label_smoothing_factor"])}
    if _lora(cfg):
        r = int(_up(cfg.lora.r, ladder("underfitting", "lora.r", 64)))
        p.update({"lora.r": r, "lora.alpha": 2 * r, "lora.dropout": min(cfg.lora.dropout, advised["lora.dropout"])})
    if used_whole_budget:
        if t.max_steps > 0:
            p["training.max_steps"] = t.max_steps * 2
        else:
            epochs = advised["training.num_epochs"]
            p["training.num_epochs"] = min(100.0, epochs if t.num_epochs < epochs else t.num_epochs * 2)
    return _only_changed(cfg, p)


def collapse_changes(cfg: Config, roc_auc: float | None) -> dict:
    """ADVICE['collapse'] (never less smoothing or a looser dedup than the run had); and a threshold chosen on val
    by Youden's J when the ranking is good (high ROC AUC) and only the threshold put every score on one side."""
    advised = ADVICE["collapse"].changes
    p: dict[str, Any] = {**advised, "training.label_smoothing_factor": max(
        cfg.training.label_smoothing_factor, advised["training.label_smoothing_factor"]),
        "data.dedup.threshold": min(cfg.data.dedup.threshold, advised["data.dedup.threshold"])}
    if roc_auc is not None and roc_auc >= 0.75:
        p["evaluation.threshold_policy"] = "youden"
    return _only_changed(cfg, p)


def stability_changes(cfg: Config) -> dict:
    """A loss that explodes wants a lower learning rate; clip at 1.0 and warm up when there is no warmup."""
    t = cfg.training
    p: dict[str, Any] = {"training.learning_rate": float(f"{t.learning_rate / 2:.3g}"),
                         "training.max_grad_norm": min(t.max_grad_norm, 1.0)}
    if not t.warmup_steps and not t.warmup_ratio:
        p["training.warmup_ratio"] = 0.05
    return _only_changed(cfg, p)


# ------------------------------------------------------------------------------------------------ the checks
def check_numbers(log: Log, cfg: Config) -> list[Finding]:
    """NaN or infinite losses and gradients; a training loss that climbs far above where it started."""
    bad = [(s, v) for s, v in log.train + log.grad + log.eval_losses() if not math.isfinite(v)]
    out = []
    if bad:
        out.append(Finding(
            "loss_nan", "error", f"non-finite loss or gradient norm from step {bad[0][0]}",
            {"steps": [s for s, _ in bad[:10]], "values": [_r(v) for _, v in bad[:10]]},
            stability_changes(cfg), None,
            "NaN or infinity in the loss or gradients: the weights are no longer numbers. Usual causes: a learning "
            "rate too high, fp16 overflow (use bf16 on Ampere+ GPUs), no warmup."))
    finite = [(s, v) for s, v in log.train if math.isfinite(v)]
    if len(finite) >= 2:
        first = finite[0][1]
        limit = max(2 * first, first + 1.0)
        high = [(s, v) for s, v in finite[1:] if v > limit]
        if high:
            out.append(Finding(
                "loss_explosion", "error", f"training loss exploded: {high[0][1]:.3g} at step {high[0][0]} after "
                f"starting at {first:.3g}",
                {"steps": [finite[0][0]] + [s for s, _ in high[:10]],
                 "train_loss": [_r(first)] + [_r(v) for _, v in high[:10]], "limit": _r(limit)},
                stability_changes(cfg), None,
                "A two-label loss starts near ln 2 = 0.693; climbing far above its start means the updates overshoot. "
                "Lower the learning rate."))
    return out


def check_gradients(log: Log, cfg: Config) -> list[Finding]:
    grads = [(s, v) for s, v in log.grad if math.isfinite(v)]
    out = []
    big = [(s, v) for s, v in grads if v > GRAD_EXPLODING]
    if big:
        out.append(Finding(
            "grad_exploding", "warning", f"gradient norm above {GRAD_EXPLODING:g} at {len(big)} logged step(s), "
            f"up to {max(v for _, v in big):.4g}",
            {"steps": [s for s, _ in big[:10]], "grad_norm": [_r(v) for _, v in big[:10]],
             "max_grad_norm": cfg.training.max_grad_norm},
            stability_changes(cfg), None,
            "The logged norm is measured before clipping: clipping caps each update, but norms this large mean the "
            "loss surface is steep where the learning rate takes the model. Lower the learning rate, warm up."))
    if grads:
        recent = _tail(grads)
        if statistics.median(recent) < GRAD_VANISHING:
            floor = smoothing_floor(cfg.training.label_smoothing_factor)
            train_recent = statistics.median(_tail(log.train)) if log.train else float("nan")
            stalled = math.isfinite(train_recent) and train_recent - floor > 0.05
            steps = [s for s, _ in grads][-len(recent):]
            evidence = {"steps": steps[-10:], "grad_norm": [_r(v) for v in recent[-10:]],
                        "train_loss_recent": _r(train_recent), "train_loss_floor": _r(floor)}
            if stalled:
                out.append(Finding(
                    "grad_vanishing", "warning", f"gradient norm below {GRAD_VANISHING:g} while the training loss "
                    f"({train_recent:.3f}) is still above its floor ({floor:.3f})", evidence,
                    _only_changed(cfg, {"training.learning_rate": _more_learning_rate(cfg)}), None,
                    "No gradient reaches the weights although the loss is not at its minimum: the model stopped "
                    "learning. Check that parameters are trainable (LoRA targets) and raise the learning rate."))
            else:
                out.append(Finding(
                    "grad_small", "info", "gradient norm near zero at the end: the training loss reached its floor",
                    evidence, why="Small gradients at a loss floor mean convergence on the training set, not a "
                    "vanishing gradient."))
    return out


def check_schedule(log: Log, cfg: Config) -> list[Finding]:
    """The logged learning rate against the scheduler's curve for this config's warmup, type and length."""
    t = cfg.training
    total = planned_steps(log, cfg)
    if not log.lr or total is None:
        return []
    warmup = warmup_steps(cfg, total)
    if schedule_factor(t.lr_scheduler_type, 0, warmup, total, t.learning_rate) is None:
        return [Finding("lr_schedule_unchecked", "info", f"learning-rate schedule {t.lr_scheduler_type} not checked",
                        why="Its curve depends on scheduler arguments sgpipe does not set.")]
    tol = LR_TOLERANCE * t.learning_rate + 1e-12
    wrong = []
    for step, lr in log.lr:
        # transformers logs the rate that the step used, i.e. the curve at step - 1; accept either reading
        expected = [schedule_factor(t.lr_scheduler_type, k, warmup, total, t.learning_rate) * t.learning_rate
                    for k in (step - 1, step)]
        if not math.isfinite(lr) or all(abs(lr - e) > tol for e in expected):
            wrong.append((step, lr, expected[0]))
    if not wrong:
        return []
    return [Finding(
        "lr_schedule", "warning", f"learning rate off its {t.lr_scheduler_type} schedule at {len(wrong)} of "
        f"{len(log.lr)} logged steps",
        {"steps": [s for s, _, _ in wrong[:10]], "logged": [_r(v) for _, v, _ in wrong[:10]],
         "expected": [_r(e) for _, _, e in wrong[:10]], "peak": t.learning_rate, "warmup_steps": warmup,
         "planned_steps": total},
        why="The optimizer did not see the configured schedule: the run was resumed with another config, another "
            "optimizer or scheduler overrode it (Adafactor's relative step, a DeepSpeed config), or the log is not "
            "this config's. Rerun with the intended config before reading anything else into the curves.")]


def check_early_stop(log: Log, cfg: Config) -> list[Finding]:
    t = cfg.training
    total = planned_steps(log, cfg)
    warmup = warmup_steps(cfg, total)
    if not (t.early_stopping and total and warmup and log.last_step < total and log.last_step <= warmup):
        return []
    # with eval_per_epoch the interval depends on the data: read it from the log (evaluations after step 0)
    steps = sorted({int(e["step"]) for e in log.evals if e.get("step")})
    interval = steps[0] if t.eval_per_epoch and steps else t.eval_steps
    need = math.ceil(warmup / interval) + 1
    p: dict[str, Any] = {"training.early_stopping_patience": max(t.early_stopping_patience, need)}
    if warmup > 0.1 * total:  # warmup is usually 5-10% of the steps
        p.update({"training.warmup_steps": 0, "training.warmup_ratio": 0.05})
    return [Finding(
        "early_stop_in_warmup", "warning", f"early stopping fired at step {log.last_step}, before warmup ended "
        f"(step {warmup} of {total})",
        {"steps": [log.last_step], "warmup_steps": warmup, "planned_steps": total,
         "patience": t.early_stopping_patience, "eval_steps": interval},
        _only_changed(cfg, p), None,
        "The learning rate never reached its peak: the model was judged while it was still warming up. Usual "
        "values: patience x eval_steps of 100-200 steps, warmup about 5-10% of the steps.")]


def _train_between(log: Log, lo: int, hi: int) -> float | None:
    values = [v for s, v in log.train if lo < s <= hi and math.isfinite(v)]
    return statistics.median(values) if values else None


def check_fit(log: Log, cfg: Config) -> list[Finding]:
    """Overfitting (validation loss rising while training loss falls, or a large gap) and underfitting (both
    losses high, near chance)."""
    evals = [(s, v) for s, v in log.eval_losses() if math.isfinite(v)]
    train = [(s, v) for s, v in log.train if math.isfinite(v)]
    if not evals or not train:
        return []
    out = []
    floor = smoothing_floor(cfg.training.label_smoothing_factor)
    train_recent = statistics.median(_tail(train))
    val_last = evals[-1][1]
    best_step, best = min(evals, key=lambda e: e[1])

    evidence: dict[str, Any] = {}
    if len(evals) >= 3:
        (s0, v0), (s1, v1), (s2, v2) = evals[-3:]
        before = _train_between(log, evals[-4][0] if len(evals) >= 4 else -1, s0)
        after = _train_between(log, s1, s2)
        if v0 < v1 < v2 and v2 >= 1.05 * best and best_step < s2 and before is not None and after is not None \
                and after <= before * 1.02:
            evidence.update({"steps": [best_step, s0, s1, s2], "val_loss": [_r(best), _r(v0), _r(v1), _r(v2)],
                             "train_loss_before_rise": _r(before), "train_loss_end": _r(after)})
    gap = val_last - train_recent
    if gap >= 0.3 and val_last >= 2 * train_recent:
        evidence.update({"gap_step": evals[-1][0], "val_loss_last": _r(val_last),
                         "train_loss_recent": _r(train_recent), "gap": _r(gap)})
    if evidence:
        if "steps" not in evidence:
            title = f"overfitting: validation loss {val_last:.3f} is far above the training loss {train_recent:.3f}"
        elif best_step == evals[0][0]:
            title = (f"overfitting: validation loss never went below the untrained model's {best:.3f} and rose to "
                     f"{val_last:.3f} while the training loss fell")
        else:
            title = (f"overfitting: validation loss rose from {best:.3f} (step {best_step}) to {val_last:.3f} while "
                     "the training loss fell")
        kept = " The run kept the best checkpoint, so its test figures come from before the rise." \
            if cfg.training.load_best_model_at_end else ""
        out.append(Finding("overfitting", "warning", title, evidence, overfitting_changes(cfg), "fix-overfitting",
                           "The model fits the training scripts better than it generalises to validation ones "
                           "(e.g. 98% accuracy on train, 85% on test)." + kept))

    train_high = train_recent >= floor + 0.8 * (LN2 - floor)
    if train_high and val_last >= 0.9 * LN2:
        first = statistics.median(_head(train))
        flat = abs(first - train_recent) < 0.1 * first
        total = planned_steps(log, cfg)
        whole = total is None or log.last_step >= total
        out.append(Finding(
            "underfitting", "warning",
            f"underfitting: training loss {train_recent:.3f} and validation loss {val_last:.3f} stay near chance "
            f"(ln 2 = {LN2:.3f})" + ("" if flat else ", still falling slowly"),
            {"steps": [train[0][0], train[-1][0], evals[-1][0]], "train_loss": [_r(first), _r(train_recent)],
             "val_loss": _r(val_last), "train_loss_floor": _r(floor), "flat": flat},
            underfitting_changes(cfg, whole), "fix-underfitting",
            "Neither split is learned: more capacity, a higher learning rate, less regularisation, more steps "
            "(e.g. both splits stuck near 70% accuracy)."))
    return out


def read_test_metrics(run_dir: Path) -> dict | None:
    """The model's test figures: evaluate/metrics.json, else the report's copy."""
    run = RunDir(run_dir)
    evaluated = run.metrics("evaluate")
    return evaluated.get("model") if evaluated is not None else run.metrics("report")


def read_val_metrics(run_dir: Path) -> dict | None:
    """Validation figures at the threshold evaluate chose on validation (evaluate/val_predictions.jsonl)."""
    path = RunDir(run_dir).stage("evaluate") / "val_predictions.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = [(r["label"] == "malicious", r["prediction"] == "malicious") for r in rows]
    tp, fn = sum(y and p for y, p in pairs), sum(y and not p for y, p in pairs)
    fp, tn = sum(p and not y for y, p in pairs), sum(not y and not p for y, p in pairs)
    return {"n": len(rows), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
            "sensitivity": tp / (tp + fn) if tp + fn else None, "specificity": tn / (tn + fp) if tn + fp else None}


def _one_class(figures: dict | None) -> tuple[str, str, str] | None:
    """(metric, class, side) when every script of one class is called the other, else None."""
    if not figures:
        return None
    if figures.get("specificity") == 0:
        return "specificity", "benign", "malicious"
    if figures.get("sensitivity") == 0:
        return "sensitivity", "malicious", "benign"
    return None


def check_collapse(log: Log, metrics: dict | None, cfg: Config, val: dict | None = None) -> list[Finding]:
    """Everything called one class ('Specificity: 0.00'). Only VALIDATION findings propose config changes (they
    feed --write-config): tuning on test figures would leak the test set into the next run. A collapse seen on test
    only is information. `val`: validation figures at the chosen threshold (read_val_metrics)."""
    out = []
    collapsed = _one_class(val)
    if collapsed:
        which, cls, side = collapsed
        evidence = {f"val_{k}": val.get(k) for k in ("n", "tp", "fp", "tn", "fn")}
        out.append(Finding(
            "collapse", "error", f"collapse: {which} is 0.00 on validation at the chosen threshold: every {cls} "
            f"script is called {side}", evidence, collapse_changes(cfg, (metrics or {}).get("roc_auc")),
            "fix-collapse", "The model predicts one class, on the split that picks the threshold. Fix: "
            f"{ADVICE['collapse'].fix}."))
    tested = _one_class(metrics)
    if tested:
        which, cls, side = tested
        n, tp, fp = metrics.get("n"), metrics.get("tp"), metrics.get("fp")
        predicted = None if tp is None or fp is None else tp + fp  # scripts called malicious
        one_side = predicted is not None and predicted == (n if side == "malicious" else 0)
        out.append(Finding(
            "collapse_on_test", "warning",
            f"{which} is 0.00 on test: every {cls} script is called {side}"
            + (f"; all {n} scores are on one side of the threshold" if one_side else ""),
            {k: metrics.get(k) for k in ("n", "tp", "fp", "tn", "fn", "threshold", "roc_auc")}
            | {"all_scores_one_side": one_side},
            why="Information only: changes to the config are read from validation, never from test (that would "
                "tune on the test set). " + ("Validation shows the same collapse (above)." if collapsed else
                                             "Validation does not collapse at this threshold: the test set differs "
                                             "from it (source, language), or validation is too small."
                                             if val is not None else "No validation predictions to compare.")))
    if collapsed or tested:
        return out
    final = log.final or (log.evals[-1] if log.evals else None)
    if final and (final.get("eval_specificity") == 0 or final.get("eval_sensitivity") == 0):
        which = "specificity" if final.get("eval_specificity") == 0 else "sensitivity"
        evidence = {"steps": [final.get("step")], f"val_{which}_at_0.5": 0.0,
                    "val_roc_auc": final.get("eval_roc_auc")}
        if metrics:
            out.append(Finding(
                "val_one_sided_at_half", "info", f"validation {which} is 0 at a 0.5 threshold; the chosen threshold "
                f"({metrics.get('threshold')}) separates the classes", evidence,
                why="The scores are not centred on 0.5, which the threshold chosen on validation corrects."))
        else:
            out.append(Finding(
                "collapse", "warning", f"collapse on validation: {which} is 0 at a 0.5 threshold (no test metrics "
                "yet)", evidence, collapse_changes(cfg, final.get("eval_roc_auc")), "fix-collapse",
                "Run evaluate: it chooses the threshold on validation and shows whether only 0.5 was wrong."))
    return out


CLOSEST_TIER = {"starcoder2-1b": "vram-12gb", "starcoder2-3b": "vram-24gb", "starcoder2-7b": "vram-40gb"}


def check_memory(cfg: Config, device: str) -> list[Finding]:
    """The VRAM tiers of the vram-* presets (batch x accumulation, checkpointing, 4-bit, 8-bit optimizer): advice on CUDA,
    an info when a CPU run of a hub model is a plan for a GPU. The built-in tiny model needs none of it."""
    from pipeline.experiments.tracking import vram_tier

    m, t = cfg.model, cfg.training
    if m.model_id == TINY_MODEL_ID:
        return []
    tier = vram_tier(cfg)
    closest = next((name for key, name in CLOSEST_TIER.items() if key in m.model_id.lower()), None)
    if device != "cuda":
        return [Finding("memory_plan", "info", f"memory: on a GPU this config matches the {tier} tier" if tier else
                        "memory: planning for a GPU, start from a VRAM preset" + (f" ({closest})" if closest else ""),
                        {"model_id": m.model_id, "batch": t.per_device_train_batch_size,
                         "accumulation": t.gradient_accumulation_steps}, preset=tier or closest,
                        why="VRAM tiers: 8-12 GB starcoder2-1b batch 1x32; 16 GB 3b 2x16; 24 GB 3b 4x8; "
                            "40 GB 7b 8x4; 80 GB 7b 16x2 (--preset vram-12gb ... vram-80gb).")]
    if tier:
        return [Finding("memory_tier", "info", f"memory: the config matches the {tier} tier",
                        {"model_id": m.model_id}, preset=tier)]
    p: dict[str, Any] = {}
    effective = t.per_device_train_batch_size * t.gradient_accumulation_steps
    if not 16 <= effective <= 64:
        p["training.gradient_accumulation_steps"] = max(1, round(32 / t.per_device_train_batch_size))
    if m.finetuning_type == "lora" and not m.load_in_4bit:
        p["model.load_in_4bit"] = True
    big = any(size in m.model_id.lower() for size in ("3b", "7b", "15b"))
    if big and not m.gradient_checkpointing:
        p["model.gradient_checkpointing"] = True
    if big and t.optim in ("adamw_torch", "adamw_torch_fused"):
        p["training.optim"] = "paged_adamw_8bit"
    if not p:
        return []
    return [Finding("memory", "advice", "memory: the config is outside the VRAM tiers of the vram-* presets",
                    {"model_id": m.model_id, "batch": t.per_device_train_batch_size,
                     "accumulation": t.gradient_accumulation_steps, "effective_batch": effective,
                     "gradient_checkpointing": m.gradient_checkpointing, "load_in_4bit": m.load_in_4bit,
                     "optim": t.optim}, p, closest,
                    "Effective batch 32-64; 4-bit below 80 GB; checkpointing below 40 GB (~40% less memory, ~20% "
                    "slower); an 8-bit paged optimizer up to 24 GB. Only needed if this GPU runs out of memory.")]


def summary(log: Log, metrics: dict | None, cfg: Config, stopped_early: bool, total: int | None) -> Finding:
    evals = [(s, v) for s, v in log.eval_losses() if math.isfinite(v)]
    evidence: dict[str, Any] = {"steps_trained": log.last_step, "planned_steps": total, "evaluations": len(evals)}
    parts = [f"{log.last_step} steps" + (f" of {total} planned" if total else "")
             + (" (early stopping)" if stopped_early else "")]
    if evals:
        best_step, best = min(evals, key=lambda e: e[1])
        evidence.update({"val_loss_first": _r(evals[0][1]), "val_loss_best": _r(best), "best_step": best_step})
        parts.append(f"val loss {evals[0][1]:.3f} -> best {best:.3f} at step {best_step}")
        if log.final and math.isfinite(log.final.get("eval_loss", math.nan)):
            evidence["val_loss_kept"] = _r(log.final["eval_loss"])
            parts.append(f"kept checkpoint {log.final['eval_loss']:.3f}")
    if metrics:
        for k in ("roc_auc", "sensitivity", "specificity", "threshold"):
            if isinstance(metrics.get(k), (int, float)):
                evidence[f"test_{k}"] = _r(metrics[k])
        parts.append("test " + ", ".join(f"{k} {metrics[k]:.3f}" for k in ("roc_auc", "sensitivity", "specificity")
                                         if isinstance(metrics.get(k), (int, float))))
    return Finding("summary", "info", "; ".join(parts), evidence)


# ------------------------------------------------------------------------------------------------ entry points
def diagnose(run_dir: str | Path, config: Config | None = None) -> list[Finding]:
    """Every finding for one run, most severe first. `config` defaults to the one the run's manifests recorded."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    history = run.log_history
    if not history.is_file():
        raise DiagnoseError(f"{history} is missing: train the run first (`sgpipe all --run-dir {run_dir}`)")
    try:
        cfg = config if config is not None else Config.model_validate(run.config())
    except ValidationError as e:
        first = e.errors()[0]
        raise DiagnoseError(f"the config recorded in {run_dir}'s manifests does not load in this sgpipe version "
                            f"({first['loc']}: {first['msg']}): rerun the run with this version") from None
    log = read_log(read_json(history))
    metrics = read_test_metrics(run_dir)
    device = run.counts("train").get("device") or cfg.model.device
    total = planned_steps(log, cfg)
    stopped_early = bool(cfg.training.early_stopping and total and log.last_step < total)

    findings = (check_numbers(log, cfg) + check_collapse(log, metrics, cfg, read_val_metrics(run_dir))
                + check_gradients(log, cfg)
                + check_fit(log, cfg) + check_schedule(log, cfg) + check_early_stop(log, cfg)
                + check_memory(cfg, device) + [summary(log, metrics, cfg, stopped_early, total)])
    if not any(f.alarm for f in findings):
        findings.append(Finding("healthy", "info", "no problem found: losses, gradients, schedule and class "
                                "balance of the predictions look sound"))
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))  # stable: check order within a severity


def suggested_changes(findings: list[Finding]) -> dict[str, Any]:
    """The changes of every alarm and advice, merged; where two disagree on a key, the more severe finding wins."""
    merged: dict[str, Any] = {}
    for f in sorted(findings, key=lambda f: SEVERITIES.index(f.severity)):
        if f.severity != "info":
            for key, value in f.changes.items():
                merged.setdefault(key, value)
    return merged


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_text(findings: list[Finding], run_dir: Path | str) -> str:
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    alarms = counts["error"] + counts["warning"]
    lines = [f"diagnose {run_dir}: {alarms} alarm(s) ({counts['error']} error, {counts['warning']} warning), "
             f"{counts['advice']} advice, {counts['info']} info"]
    for f in findings:
        lines.append(f"{f.severity.upper():8s}{f.title}")
        if f.evidence:
            lines.append("  evidence: " + "; ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in f.evidence.items()))
        if f.why:
            lines.append(f"  why: {f.why}")
        if f.changes:
            lines.append("  try: " + " ".join(f"--set {k}={json.dumps(v)}" for k, v in f.changes.items())
                         + (f"   (or --preset {f.preset})" if f.preset else ""))
    return "\n".join(lines)


def _strict(value: Any) -> Any:
    """JSON has no NaN or infinity: such values (from a broken run's metrics) travel as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    return [_strict(v) for v in value] if isinstance(value, (list, tuple)) else value


def render_json(findings: list[Finding], run_dir: Path | str) -> str:
    return json.dumps(_strict({"run": str(run_dir), "alarm": any(f.alarm for f in findings),
                               "findings": [asdict(f) for f in findings]}), indent=2, default=str, allow_nan=False)


def write_config(findings: list[Finding], base: str | Path | dict, out_path: str | Path,
                 protect: Path | None = None) -> tuple[Path, dict]:
    """Write a NEW config: `base` (a YAML path or a config tree) with the suggested changes, validated by load_config.
    Refuses to write over the base file or inside `protect` (the run directory): a run's own config stays as it ran.
    Returns the path and the changes applied."""
    out = Path(out_path)
    if isinstance(base, (str, Path)):
        if out.resolve() == Path(base).resolve():
            raise DiagnoseError(f"--write-config {out} is the base config itself: write the new config elsewhere")
        tree = yaml.safe_load(Path(base).read_text(encoding="utf-8")) or {}
    else:
        tree = copy.deepcopy(base)
    if protect is not None and out.resolve().is_relative_to(Path(protect).resolve()):
        raise DiagnoseError(f"--write-config {out} is inside the run directory {protect}: write it elsewhere, the "
                            "run's files stay as they ran")
    changes = suggested_changes(findings)
    for key, value in changes.items():
        set_dotted(tree, key, value)
    header = "# Written by `sgpipe diagnose`: the base config with the changes below.\n" + "".join(
        f"#   {k}: {json.dumps(v)}\n" for k, v in changes.items())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(header + yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), encoding="utf-8")
        load_config(tmp)  # a config that does not load is never published
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, changes
