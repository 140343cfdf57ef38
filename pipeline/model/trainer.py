"""VerdictTrainer: TRL's SFTTrainer with the two-label loss at the verdict position, and the metrics it reports.

SFTTrainer keeps what it is good at (pre-tokenised datasets, the collator, checkpoints, resume, callbacks, logging);
only the loss changes. The model is called without labels, so neither TRL 1.15's fused LM-head kernel (which fails on
CPU) nor an Unsloth fused loss runs; the logits at the position before the verdict token are already two-wide after
head.trim_lm_head.

Training loss: two-way cross-entropy, smoothed over the two labels (`label_smoothing`) and optionally class-weighted.
Token dropout (`token_dropout` > 0, training only): at every step a share of each row's script tokens is replaced by
script tokens drawn from the same batch, so no few memorised tokens can decide a verdict alone; the template and the
verdict are never touched (prompt.ScriptSpans), and the draw is seeded by (seed, step, rank, the batch's ids), so a
resumed run draws what the uninterrupted one drew.

Embedding learning rate (`embedding_lr_scale` != 1, full fine-tuning): the input embeddings sit in an optimizer group
of their own at that multiple of the learning rate. An embedding row gets a gradient only in the steps whose batch
holds its token, so from random init, in a run of a few hundred steps, rare tokens' rows stay near their
initialisation while a bag-of-n-grams baseline fits a weight for every n-gram it saw twice.

Evaluation loss: the plain two-way cross-entropy (no smoothing, no weights), so eval_loss compares across smoothing
and weighting settings; a smoothed loss has a floor above zero that moves with the smoothing.

Resume reproduces the uninterrupted run (tests/test_train_stage.py proves equal weight digests after a SIGKILL):
- the training order is a function of (data_seed, epoch) alone (`EpochSeededSampler`): Trainer's samplers otherwise
  draw from the global RNG when an epoch starts, whose state differs between a fresh process and a long-running one,
  so the resumed epoch was a different permutation and skipping its first batches skipped the wrong rows;
- the running loss sums live in each checkpoint (`LOSS_STATE`), so `training_loss` is the whole run's mean and the
  first log after a resume averages the same steps as it would have without the interruption.
"""
from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
from trl import SFTConfig, SFTTrainer

from pipeline.model.head import two_label_loss, verdict_positions
from pipeline.model.prompt import ScriptSpans


def _label_ids_of(model) -> list[int]:
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    ids = getattr(config, "sgpipe_label_token_ids", None)
    if ids is None:
        raise ValueError("the model's head is not trimmed (no config.sgpipe_label_token_ids): call "
                         "pipeline.model.head.trim_lm_head (backends.load_model does) before training")
    return list(ids)


def _check_args(args: SFTConfig) -> None:
    """Settings that would silently break a one-verdict-per-row loss."""
    if args.packing:
        raise ValueError("packing puts several scripts in one row: keep packing=False for classification")
    if args.padding_free:
        raise ValueError("padding_free flattens the batch: keep padding_free=False for classification")
    if args.completion_only_loss is False:
        raise ValueError("completion_only_loss must be True: the verdict token is the only labelled token")
    if args.label_smoothing_factor:
        raise ValueError("label_smoothing_factor smooths over the whole vocabulary: pass 0 to SFTConfig and give the "
                         "smoothing to VerdictTrainer(label_smoothing=...)")


LOSS_STATE = "sgpipe_loss_state-{rank}.json"  # per process: each rank's running loss sums, in every checkpoint


TEACHER = "teacher"  # optional training-row column: a teacher's P(malicious) for the row (training.distill_from)


class _CarryTeacher:
    """Wraps TRL's collator, which builds only the columns it knows: the rows' teacher scores ride along as a tensor."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples: list[dict]) -> dict:
        if not examples or TEACHER not in examples[0]:
            return self.inner(examples)
        batch = self.inner([{k: v for k, v in e.items() if k != TEACHER} for e in examples])
        batch[TEACHER] = torch.tensor([float(e[TEACHER]) for e in examples], dtype=torch.float32)
        return batch


class EpochSeededSampler(torch.utils.data.Sampler):
    """A sampler whose order is a function of (seed, epoch) alone: the wrapped sampler (Trainer's LengthGroupedSampler
    or RandomSampler) gets a generator seeded with seed + epoch each time an epoch starts. Every rank builds the same
    one, so DDP shards one permutation. No `generator` attribute: accelerate would otherwise re-seed it."""

    def __init__(self, inner, seed: int):
        self.inner, self.seed, self.epoch = inner, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.inner.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class _RestoreLossState(TrainerCallback):
    """At train begin (after Trainer zeroed its loss sums), put back those saved in the checkpoint resumed from."""

    def __init__(self, trainer: "VerdictTrainer"):
        self.trainer = weakref.ref(trainer)

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer()
        if trainer is not None and trainer._resumed_from:
            trainer._load_loss_state(trainer._resumed_from)


class VerdictTrainer(SFTTrainer):
    """SFTTrainer whose loss is the two-label cross-entropy at the verdict position.

    Train and eval datasets are pre-tokenised rows from prompt.build_training_row (`input_ids`, `completion_mask`).
    `class_weights`: (weight of benign, weight of malicious) for the training loss, or None.
    """

    def __init__(self, model, args: SFTConfig, *, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | None = None, teacher_weight: float = 0.0, token_dropout: float = 0.0,
                 embedding_lr_scale: float = 1.0, **kwargs):
        _check_args(args)
        args.completion_only_loss = True  # the rows have no prompt/completion columns, so TRL would not infer it
        os.environ.setdefault("UNSLOTH_RETURN_LOGITS", "1")  # unsloth models return no logits otherwise
        self.label_token_ids = _label_ids_of(model)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.teacher_weight = float(teacher_weight)
        self.token_dropout = float(token_dropout)
        self.embedding_lr_scale = float(embedding_lr_scale)
        if self.token_dropout and kwargs.get("processing_class") is None:
            raise ValueError("token_dropout finds the script in each row with the tokenizer: pass processing_class")
        self._script_spans = ScriptSpans(kwargs["processing_class"]) if self.token_dropout else None
        self._resumed_from: str | None = None
        super().__init__(model=model, args=args, **kwargs)
        self.data_collator = _CarryTeacher(self.data_collator)
        self.add_callback(_RestoreLossState(self))

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if TEACHER not in self._signature_columns:  # kept through remove_unused_columns, for the loss
            self._signature_columns = [*self._signature_columns, TEACHER]

    # ---- reproducible resume

    def _get_train_sampler(self, train_dataset=None):
        inner = super()._get_train_sampler(train_dataset)
        if inner is None or not hasattr(inner, "generator"):
            return inner
        return EpochSeededSampler(inner, self.args.data_seed if self.args.data_seed is not None else self.args.seed)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
        self._resumed_from = resume_from_checkpoint or None
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation rows longest first: batches of similar lengths pad little (the metrics ignore the order)."""
        if self.args.world_size > 1 or "input_ids" not in getattr(eval_dataset, "column_names", ()):
            return super()._get_eval_sampler(eval_dataset)
        lengths = [len(ids) for ids in eval_dataset["input_ids"]]
        return sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def final_metrics(self) -> dict[str, float]:
        """The eval metrics of the model held after `train()`, read from the evaluation already logged for it (the
        best checkpoint's, reloaded by load_best_model_at_end, or the last step's); evaluated only if none was."""
        best = self.state.best_global_step if self.args.load_best_model_at_end else None
        step = best or self.state.global_step
        logged = [h for h in self.state.log_history if "eval_loss" in h and h.get("step") == step]
        return dict(logged[-1]) if logged else self.evaluate()

    def _loss_state_file(self, checkpoint: str | Path) -> Path:
        return Path(checkpoint) / LOSS_STATE.format(rank=self.args.process_index)

    def _save_checkpoint(self, model, trial):
        # Written before the weights: a kill in between leaves a folder HF's own resume refuses anyway.
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        self._loss_state_file(folder).write_text(json.dumps({
            "total_loss": self._total_loss_scalar, "pending_loss": float(self._tr_loss.item()),
            "last_logged_step": self._globalstep_last_logged}))
        super()._save_checkpoint(model, trial)

    def _load_loss_state(self, checkpoint: str) -> None:
        file = self._loss_state_file(checkpoint)
        if not file.exists():
            raise FileNotFoundError(f"{file} is missing: {checkpoint} was not written by this version of sgpipe; "
                                    "rerun `sgpipe train` without --resume")
        saved = json.loads(file.read_text())
        self._total_loss_scalar = float(saved["total_loss"])
        self._tr_loss += saved["pending_loss"]
        self._globalstep_last_logged = int(saved["last_logged_step"])

    def _verdict_logits(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, 2) at the position before each verdict token, classes (B,))."""
        positions, y = verdict_positions(inputs["labels"], self.label_token_ids)
        # no labels: no LM loss inside the model
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", TEACHER)}
        if model.training and self.token_dropout:
            model_inputs["input_ids"] = self._drop_tokens(model_inputs["input_ids"], positions)
        logits = model(**model_inputs, use_cache=False).logits
        if logits.shape[-1] != 2:
            raise ValueError(f"the model has a {logits.shape[-1]}-way head: call trim_lm_head before training")
        return logits[torch.arange(len(y), device=logits.device), positions.to(logits.device)], y.to(logits.device)

    def create_optimizer(self, model=None):
        """Trainer's optimizer, the input embeddings in a group of their own when embedding_lr_scale != 1."""
        had_one = self.optimizer is not None
        optimizer = super().create_optimizer(model)
        if self.embedding_lr_scale != 1.0 and not had_one:
            embeddings = (self.model if model is None else model).get_input_embeddings().weight
            scale_param_lr(optimizer, embeddings, self.embedding_lr_scale)
        return optimizer

    def _drop_tokens(self, input_ids: torch.Tensor, last_prompt: torch.Tensor) -> torch.Tensor:
        seed = hash((self.args.seed, self.state.global_step, self.args.process_index, int(input_ids.sum()))) % 2**63
        return drop_script_tokens(input_ids, last_prompt, self._script_spans, self.token_dropout, seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits2, y = self._verdict_logits(model, inputs)
        if model.training:
            loss = two_label_loss(logits2, y, self.label_smoothing, self.class_weights, num_items_in_batch,
                                  teacher=inputs.get(TEACHER), teacher_weight=self.teacher_weight)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # num_items counts every rank's rows; DDP averages
        else:
            loss = two_label_loss(logits2, y)
        return (loss, {"logits": logits2}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """(unsmoothed loss, logits (B, 2), classes (B,)): what compute_verdict_metrics receives."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            logits2, y = self._verdict_logits(model, inputs)
            loss = two_label_loss(logits2, y)
        if prediction_loss_only:
            return loss.detach(), None, None
        return loss.detach(), logits2.detach().float(), y


def scale_param_lr(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter, scale: float) -> None:
    """Move `param` from its optimizer group into a group of its own: the same settings (weight decay, betas, ...), the
    learning rate times `scale`. Call before the scheduler is built, which then scales each group's own rate."""
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            group["params"] = [p for p in group["params"] if p is not param]
            optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                       "params": [param], "lr": group["lr"] * scale})
            return
    raise ValueError("the parameter is not in the optimizer: frozen parameters (LoRA's embeddings) have no learning "
                     "rate to scale")


def drop_script_tokens(input_ids: torch.Tensor, last_prompt: torch.Tensor, spans: ScriptSpans, share: float,
                       seed: int) -> torch.Tensor:
    """Token dropout: `input_ids` with each script token replaced, with probability `share`, by a script token drawn
    from the whole batch (so replacements look like the data, never a special token); `last_prompt`: each row's
    last prompt position. The template, the verdict and padding stay as they are."""
    ids = input_ids.detach().cpu()
    script = torch.zeros_like(ids, dtype=torch.bool)
    for i, row in enumerate(ids.tolist()):
        start, end = spans.span(row, int(last_prompt[i]))
        script[i, start:end] = True
    pool = ids[script]
    if not len(pool):
        return input_ids
    draw = torch.Generator().manual_seed(seed)
    hit = script & (torch.rand(ids.shape, generator=draw) < share)
    fill = pool[torch.randint(len(pool), ids.shape, generator=draw)]
    return torch.where(hit, fill, ids).to(input_ids.device)


def compute_verdict_metrics(eval_pred) -> dict[str, float]:
    """specificity, sensitivity, balanced accuracy (malicious = positive, threshold 0.5), ROC AUC, from 2-way logits.

    The Trainer prefixes them with "eval_". A metric whose class is absent from the eval set is NaN.
    """
    from sklearn.metrics import roc_auc_score

    logits, y = np.asarray(eval_pred.predictions, dtype=np.float64), np.asarray(eval_pred.label_ids)
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z[:, 1]) / np.exp(z).sum(1)
    pred = p >= 0.5
    tp, fn = int((pred & (y == 1)).sum()), int((~pred & (y == 1)).sum())
    tn, fp = int((~pred & (y == 0)).sum()), int((pred & (y == 0)).sum())
    specificity = tn / (tn + fp) if tn + fp else float("nan")
    sensitivity = tp / (tp + fn) if tp + fn else float("nan")
    return {
        "specificity": specificity,
        "sensitivity": sensitivity,
        "balanced_accuracy": (specificity + sensitivity) / 2,
        "roc_auc": float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else float("nan"),
    }
