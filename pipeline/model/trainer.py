"""VerdictTrainer: TRL's SFTTrainer with the two-label loss at the verdict position, and the metrics it reports.

SFTTrainer keeps what it is good at (pre-tokenised datasets, the collator, checkpoints, resume, callbacks, logging);
only the loss changes. The model is called without labels, so neither TRL 1.15's fused LM-head kernel (which fails on
CPU) nor an Unsloth fused loss runs; the logits at the position before the verdict token are already two-wide after
head.trim_lm_head.

Training loss: two-way cross-entropy, smoothed over the two labels (`label_smoothing`) and optionally class-weighted.
Evaluation loss: the plain two-way cross-entropy (no smoothing, no weights), so eval_loss compares across smoothing
and weighting settings; a smoothed loss has a floor above zero that moves with the smoothing.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from trl import SFTConfig, SFTTrainer

from pipeline.model.head import two_label_loss, verdict_positions


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


class VerdictTrainer(SFTTrainer):
    """SFTTrainer whose loss is the two-label cross-entropy at the verdict position.

    Train and eval datasets are pre-tokenised rows from prompt.build_training_row (`input_ids`, `completion_mask`).
    `class_weights`: (weight of benign, weight of malicious) for the training loss, or None.
    """

    def __init__(self, model, args: SFTConfig, *, label_smoothing: float = 0.0,
                 class_weights: Sequence[float] | None = None, **kwargs):
        _check_args(args)
        args.completion_only_loss = True  # the rows have no prompt/completion columns, so TRL would not infer it
        os.environ.setdefault("UNSLOTH_RETURN_LOGITS", "1")  # unsloth models return no logits otherwise
        self.label_token_ids = _label_ids_of(model)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        super().__init__(model=model, args=args, **kwargs)

    def _verdict_logits(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, 2) at the position before each verdict token, classes (B,))."""
        positions, y = verdict_positions(inputs["labels"], self.label_token_ids)
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}  # no labels: no LM loss inside the model
        logits = model(**model_inputs, use_cache=False).logits
        if logits.shape[-1] != 2:
            raise ValueError(f"the model has a {logits.shape[-1]}-way head: call trim_lm_head before training")
        return logits[torch.arange(len(y), device=logits.device), positions.to(logits.device)], y.to(logits.device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits2, y = self._verdict_logits(model, inputs)
        if model.training:
            loss = two_label_loss(logits2, y, self.label_smoothing, self.class_weights, num_items_in_batch)
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
