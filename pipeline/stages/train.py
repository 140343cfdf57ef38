"""Train: fine-tune the classifier on the balanced train split, early-stopping on VAL (never test).

The story, top to bottom: setup (model, tokenizer, datasets, arguments) -> train -> cleanup (save the best model,
its scoring spec and the log history). The loss is the two-label cross-entropy at the verdict position only
(pipeline/model/trainer.py); every other training knob maps onto TRL's SFTConfig in `training_arguments`.

Outputs: classifier/ (weights or adapter with the 2-row head, tokenizer, prompt and scoring spec),
log_history.json (the trainer's log: losses, learning rate, grad norm, eval metrics), environment.json.
Checkpoints live in the run's persistent work folder (`.work/train/checkpoints`), so `--resume` survives a kill.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import TINY_MODEL_ID, Config
from ..model import backends
from pipeline.run.records import read_records, write_json
from pipeline.run.runner import StageContext, StageError, is_main_process

if TYPE_CHECKING:  # trl is imported inside the stage only: `sgpipe --help` must not pay for it
    from trl import SFTConfig

    from ..model.trainer import VerdictTrainer
    from ..model.prompt import Windows

CHECKPOINTS = "checkpoints"
WALL_CLOCK = ("_runtime", "_per_second", "_preparation_time")  # log keys that measure time, not the model


def training_arguments(cfg: Config, output_dir: Path, device: str, log, train_rows: int) -> "SFTConfig":
    """Every `training.*` key, mapped onto SFTConfig; GPU-only features are turned off on CPU, and said so.
    Evaluation and checkpoint intervals come from plan.cadence (eval_per_epoch needs the number of training rows)."""
    from trl import SFTConfig

    from ..plan import cadence, world_size

    t, cuda = cfg.training, device == "cuda"
    optim = t.optim
    if not cuda and optim in ("paged_adamw_8bit", "adamw_8bit", "adamw_torch_fused"):
        log(f"[train] optim {optim} needs CUDA: using adamw_torch on CPU")
        optim = "adamw_torch"
    if not cuda and (t.bf16 or t.fp16 or t.tf32):
        log("[train] bf16/fp16/tf32 are GPU features: training in fp32 on CPU")
    evaluating = t.eval_strategy != "no"
    steps = cadence(t, train_rows, world_size())
    if evaluating and t.eval_per_epoch:
        log(f"[train] evaluating every {steps.eval_steps} steps ({steps.steps_per_epoch} an epoch, "
            f"training.eval_per_epoch={t.eval_per_epoch:g}; training.eval_steps is not used: set eval_per_epoch=0 "
            "to use it)")
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate, weight_decay=t.weight_decay, optim=optim,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps if t.warmup_steps else t.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        max_grad_norm=t.max_grad_norm, num_train_epochs=t.num_epochs, max_steps=t.max_steps,
        eval_strategy=t.eval_strategy, eval_steps=steps.eval_steps,
        save_strategy=t.eval_strategy if (t.load_best_model_at_end and evaluating) else "steps",
        save_steps=steps.save_steps, save_total_limit=t.save_total_limit, logging_steps=t.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=t.load_best_model_at_end, metric_for_best_model=t.metric_for_best_model,
        greater_is_better=t.metric_for_best_model != "eval_loss",
        bf16=t.bf16 and cuda, fp16=t.fp16 and cuda, tf32=(t.tf32 if cuda else None),
        gradient_checkpointing=cfg.model.gradient_checkpointing and cuda,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        max_length=cfg.model.max_length, packing=False, completion_only_loss=True,
        label_smoothing_factor=0.0,  # smoothing is over the two labels, inside VerdictTrainer
        use_cpu=not cuda, report_to=[r for r in cfg.tracking.report_to if r != "none"] or "none",
        run_name=cfg.run.name, seed=t.seed_or(cfg.run.seed), data_seed=t.seed_or(cfg.run.seed),
        dataloader_num_workers=0, disable_tqdm=False,
    )


def untrained_eval_callback(metrics: dict):
    """A callback that puts the untrained model's evaluation first in the trainer's log_history, at step 0.

    The Trainer starts a fresh state (empty log_history) when training begins, so an evaluation made before
    `train()` would otherwise be lost: val_loss_start and diagnose's "never below the untrained model" need it.
    """
    from transformers import TrainerCallback

    entry = {**metrics, "epoch": 0.0, "step": 0}

    class UntrainedEval(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            state.log_history.insert(0, dict(entry))

    return UntrainedEval()


def class_weights(labels: list[int], mode: str) -> tuple[float, float] | None:
    if mode == "none":
        return None
    n, pos = len(labels), sum(labels)
    return (n / (2 * (n - pos)), n / (2 * pos))


def run(ctx: StageContext) -> dict:
    backends.import_backend(ctx.config.model)  # first: unsloth must patch transformers/trl/datasets/peft before use
    session = _setup(ctx)
    result, final = _train(ctx, session)
    return _cleanup(ctx, session, result, final)


@dataclass
class _Session:
    """What setup hands to training and cleanup."""
    trainer: "VerdictTrainer"
    tokenizer: object
    info: dict  # backends.load_model's description of the model
    device: str
    train_rows: int
    val_rows: int
    checkpoints: Path
    resume: str | None  # the checkpoint training resumes from
    started: float  # time.time() when setup began
    teacher: dict | None = None  # with training.distill_from: what the teacher's out-of-fold scores looked like


def _setup(ctx: StageContext) -> _Session:
    """Threads and seed, device, records, model and tokenizer, datasets, resume point, arguments, the trainer."""
    import torch
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from pipeline.experiments.tracking import setup_tracking

    cfg, m, t = ctx.config, ctx.config.model, ctx.config.training
    started = time.time()
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)
    seed = t.seed_or(cfg.run.seed)  # what training draws: init, data order, windows (the split is run.seed's)
    set_seed(seed)
    try:
        device = backends.resolve_device(m.device)
    except ValueError as e:
        raise StageError(str(e)) from None
    train_records = list(read_records(ctx.input("balance", "train.jsonl")))
    # The selection split: val, or with training.select_on=val_source the whole sources held out of training
    val_records = list(read_records(ctx.input("split", f"{t.select_on}.jsonl")))
    if t.select_on != "val":
        ctx.log(f"[train] evaluations, early stopping and the best checkpoint read {t.select_on} "
                f"({len(val_records)} out-of-source scripts)")
    checkpoints = ctx.work / CHECKPOINTS
    resume = _resume_point(ctx, checkpoints, get_last_checkpoint)
    tiny = m.model_id == TINY_MODEL_ID
    model, tokenizer, info = backends.load_model(
        m, cfg.lora, device=device, seed=seed,
        # the tiny model's tokenizer learns from distinct training texts only: val and test never shape it
        tokenizer_texts=sorted({r.text for r in train_records}) if tiny else None,
        # a resumed run's weights come from its checkpoint: warming up again would be thrown away
        before_head=_lm_warm_up(ctx, train_records) if tiny and m.tiny.warmup_epochs and not resume else None)
    ctx.log(f"[train] {info}")
    train_ds, val_ds = (_dataset(train_records, tokenizer, m, seed), _dataset(val_records, tokenizer, m, seed))
    teacher = None
    if t.distill_from == "tfidf":
        from ..model.trainer import TEACHER

        scores, teacher = _teacher_scores(ctx, train_records)
        train_ds = train_ds.add_column(TEACHER, scores.tolist())
    if t.embedding_lr_scale != 1.0:
        ctx.log(f"[train] the input embeddings learn at {t.embedding_lr_scale:g}x the learning rate "
                f"({t.learning_rate * t.embedding_lr_scale:g} at its peak)")
    if t.token_dropout:
        ctx.log(f"[train] token dropout {t.token_dropout:g}: that share of each training row's script tokens is "
                "replaced by tokens of its batch at every step (evaluation reads scripts unchanged)")
    args = training_arguments(cfg, checkpoints, device, ctx.log, len(train_ds))
    setup_tracking(cfg, ctx.log)
    trainer = _trainer(ctx, model, tokenizer, args, train_ds, val_ds, _callbacks(ctx, train_records, val_records),
                       [r.y for r in train_records])
    return _Session(trainer, tokenizer, info, device, len(train_ds), len(val_ds), checkpoints, resume, started,
                    teacher)


def _lm_warm_up(ctx: StageContext, train_records: list):
    """model.tiny.warmup_epochs of next-token training on the distinct training scripts, read as the classifier reads
    them, before the head is cut to the two verdict rows (pipeline/model/pretrain.py says why this is no label leak)."""
    from ..model.pretrain import lm_rows, warm_up

    cfg, m = ctx.config, ctx.config.model
    seed = cfg.training.seed_or(cfg.run.seed)
    distinct = sorted({(r.text, r.lang) for r in train_records})

    def run(model, tokenizer) -> dict:
        rows = lm_rows([t for t, _ in distinct], [lang for _, lang in distinct], tokenizer, m.max_length,
                       m.truncation_head_ratio, windows_of(m), seed)
        return warm_up(model, rows, epochs=m.tiny.warmup_epochs, learning_rate=m.tiny.warmup_learning_rate,
                       batch_size=cfg.training.per_device_train_batch_size, seed=seed,
                       pad_token_id=tokenizer.pad_token_id, log=ctx.log)

    return run


def _teacher_scores(ctx: StageContext, train_records: list):
    """(scores, summary) for training.distill_from=tfidf: the TF-IDF baseline's out-of-fold P(malicious) for each
    training row, an original and its variants (and oversampled copies) always in one fold, so no row is scored by a
    model that saw it; the summary (the teacher's out-of-fold ROC AUC on the rows, its mean score per class) goes into
    the manifest."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ..evaluation.baseline import out_of_fold_scores

    started = time.time()
    scores = out_of_fold_scores([r.text for r in train_records], [r.y for r in train_records],
                                [r.parent_id or r.id for r in train_records],
                                seed=ctx.config.training.seed_or(ctx.config.run.seed))
    y = np.array([r.y for r in train_records])
    summary = {"teacher": "tfidf", "weight": ctx.config.training.distill_weight,
               "out_of_fold_roc_auc": round(float(roc_auc_score(y, scores)), 4),
               "mean_score_malicious": round(float(scores[y == 1].mean()), 4),
               "mean_score_benign": round(float(scores[y == 0].mean()), 4),
               "seconds": round(time.time() - started, 1)}
    ctx.log(f"[train] distilling from the TF-IDF baseline (weight {summary['weight']:g}): out-of-fold ROC AUC "
            f"{summary['out_of_fold_roc_auc']:.3f} on the training rows, mean P(malicious) "
            f"{summary['mean_score_malicious']:.3f} malicious / {summary['mean_score_benign']:.3f} benign "
            f"({summary['seconds']} s)")
    return scores, summary


def windows_of(m) -> "Windows":
    """The model section's whole-script reading (model.window_stride, window_aggregation, max_windows)."""
    from ..model.prompt import Windows

    return Windows(m.window_stride, m.window_aggregation, m.max_windows)


def _dataset(records, tokenizer, m, seed: int):
    """Prompt rows (input ids, the verdict position and its label) for a list of records; with windows on, a long
    script's row reads one of its windows, drawn with `seed` (evaluation during training too: the stage's final
    figures, from evaluate, aggregate every window)."""
    from datasets import Dataset

    from ..model.prompt import build_training_rows

    return Dataset.from_list(build_training_rows([r.text for r in records], [r.lang for r in records],
                                                 [r.label for r in records], tokenizer, m.max_length,
                                                 m.truncation_head_ratio, windows_of(m), seed))


def _callbacks(ctx: StageContext, train_records: list, val_records: list) -> list:
    """The run's metadata for the trackers, and early stopping when training.early_stopping is on."""
    from ..model.early_stopping import MinimumEarlyStoppingCallback
    from pipeline.experiments.tracking import environment, run_metadata_callback

    cfg, t = ctx.config, ctx.config.training
    callbacks = [run_metadata_callback({
        "sgpipe": cfg.model_dump(mode="json"), "env": environment(),
        "dataset": {"train_sha256": ctx.manifest("balance")["output_digest"],
                    "val_sha256": ctx.manifest("split")["output_digest"],
                    "train_rows": len(train_records), "val_rows": len(val_records),
                    "train_malicious": sum(r.y for r in train_records), "val_malicious": sum(r.y for r in val_records)}})]
    if t.early_stopping:
        callbacks.append(MinimumEarlyStoppingCallback(
            t.early_stopping_patience, t.early_stopping_threshold, min_epochs=t.early_stopping_min_epochs,
            val_scripts=len(val_records), min_val_scripts=t.early_stopping_min_val_scripts, log=ctx.log))
    return callbacks


def _trainer(ctx: StageContext, model, tokenizer, args, train_ds, val_ds, callbacks: list,
             train_labels: list[int]) -> "VerdictTrainer":
    """The verdict-loss trainer, checked to have kept every row."""
    from ..model.trainer import VerdictTrainer, compute_verdict_metrics

    t = ctx.config.training
    trainer = VerdictTrainer(
        model, args, train_dataset=train_ds, eval_dataset=val_ds if t.eval_strategy != "no" else None,
        processing_class=tokenizer, label_smoothing=t.label_smoothing_factor,
        class_weights=class_weights(train_labels, t.class_weights),
        teacher_weight=t.distill_weight if t.distill_from != "none" else 0.0, token_dropout=t.token_dropout,
        embedding_lr_scale=t.embedding_lr_scale,
        compute_metrics=compute_verdict_metrics, callbacks=callbacks)
    # TRL drops rows whose labels were truncated away; ours cannot be, and this proves it on every run.
    for name, built, prepared in (("train", train_ds, trainer.train_dataset), ("val", val_ds, trainer.eval_dataset)):
        if prepared is not None and len(prepared) != len(built):
            raise StageError(f"{len(built) - len(prepared)} {name} rows were dropped by the trainer: a verdict was lost")
    return trainer


def _train(ctx: StageContext, s: _Session):
    """(the trainer's TrainOutput, the last evaluation's metrics), the untrained model's val loss logged first."""
    trainer, evaluating = s.trainer, ctx.config.training.eval_strategy != "no"
    if evaluating and s.resume is None:
        # The untrained model's val loss, for the record. Not `eval_on_start`: that would make the untrained model the
        # best so far, so early stopping could count its patience from step 0 and keep a worse checkpoint.
        trainer.add_callback(untrained_eval_callback(trainer.evaluate()))
    result = trainer.train(resume_from_checkpoint=s.resume)
    final = trainer.final_metrics() if evaluating else {}  # logged already: not evaluated twice
    return result, final


def _cleanup(ctx: StageContext, s: _Session, result, final: dict) -> dict:
    """Publish the best model (already reloaded when load_best_model_at_end), its spec and its history; drop the
    checkpoints; return the stage's counts."""
    from ..model.classifier import Classifier
    from pipeline.experiments.tracking import environment

    m, trainer = ctx.config.model, s.trainer
    tiny = m.model_id == TINY_MODEL_ID
    Classifier.save(trainer.model, s.tokenizer, ctx.out / "classifier", base_model=None if tiny else m.model_id,
                    max_length=m.max_length, head_ratio=m.truncation_head_ratio, windows=windows_of(m),
                    model_config=m.model_dump(mode="json"))
    if tiny:  # the CPU model: predict then starts without torch (a 3B model stays on the PyTorch path)
        _export_fast_path(ctx.out / "classifier")
    # Wall-clock figures (eval_runtime, *_per_second...) would make identical training runs publish different
    # outputs, and so rerun everything downstream; the time taken is in the manifest (train_seconds).
    history = [{k: v for k, v in h.items() if not k.endswith(WALL_CLOCK)} for h in trainer.state.log_history]
    write_json(ctx.out / "log_history.json", history)
    write_json(ctx.out / "environment.json", {**environment(), "model": s.info})
    counts = _counts(s, result, final, history)
    if is_main_process():
        shutil.rmtree(s.checkpoints, ignore_errors=True)  # published: nothing left to resume
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    ctx.log(f"[train] {counts['steps']} steps in {counts['train_seconds']} s; val loss {fmt(counts['val_loss_start'])}"
            f" -> {fmt(counts['val_loss_end'])}, val ROC AUC {fmt(counts['val_roc_auc_end'])}")
    return counts


def _counts(s: _Session, result, final: dict, history: list[dict]) -> dict:
    """The train manifest's counts: rows, steps, losses at start and end, best checkpoint, backend, time taken."""
    state, evals = s.trainer.state, [h for h in history if "eval_loss" in h]
    return {
        "train_rows": s.train_rows, "val_rows": s.val_rows, "steps": state.global_step,
        "epochs": round(state.epoch or 0.0, 3), "resumed_from": Path(s.resume).name if s.resume else None,
        "train_loss": round(result.training_loss, 5), "train_seconds": round(time.time() - s.started, 1),
        "val_loss_start": evals[0]["eval_loss"] if evals else None,
        "val_loss_end": final.get("eval_loss"), "val_roc_auc_end": final.get("eval_roc_auc"),
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "backend": s.info.get("backend"), "device": s.device,
        "trainable_parameters": s.info.get("trainable_params"),
        **({"lm_warm_up": s.info["warm_up"]} if "warm_up" in s.info else {}),
        **({"distill": s.teacher} if s.teacher else {}),
    }


def _resume_point(ctx: StageContext, checkpoints: Path, get_last_checkpoint) -> str | None:
    """The last checkpoint of an interrupted run of THIS configuration, when --resume asks for it.

    Checkpoints are tagged with the stage fingerprint: resuming a run whose config or data changed would silently
    mix two experiments, so that is refused with the fix.
    """
    tag = checkpoints / "fingerprint"
    if not ctx.options.get("resume"):
        if is_main_process():  # under DDP, rank 0 owns the checkpoint folder
            shutil.rmtree(checkpoints, ignore_errors=True)
            checkpoints.mkdir(parents=True)
            tag.write_text(ctx.fingerprint)
        return None
    if not checkpoints.is_dir() or get_last_checkpoint(str(checkpoints)) is None:
        raise StageError(f"--resume: no checkpoint in {checkpoints}; run `sgpipe train` without --resume")
    if not tag.exists() or tag.read_text() != ctx.fingerprint:
        raise StageError("--resume: the checkpoints belong to a different config or data; rerun without --resume")
    last = get_last_checkpoint(str(checkpoints))
    ctx.log(f"[train] resuming from {last}")
    return last


def _export_fast_path(classifier_dir: Path) -> None:
    """classifier.onnx beside the classifier, for `sgpipe predict`'s fast path; a failure only costs that speed."""
    import logging

    from ..model.onnx_export import export_onnx

    try:
        export_onnx(classifier_dir)
    except Exception as e:  # e.g. onnx missing or an operator the exporter lacks: predict falls back to PyTorch
        logging.getLogger(__name__).warning("ONNX export for the fast predict path failed (%s: %s); predict will "
                                            "use PyTorch", type(e).__name__, e)
