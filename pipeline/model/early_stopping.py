"""Early stopping that waits: no stop before a minimum number of epochs, and none at all on a validation split too
small to decide.

transformers' EarlyStoppingCallback stops as soon as the validation metric has failed to improve `patience` times.
On a small validation split (data/tiny had ~29 val scripts) the loss is noisy enough that the first evaluation can
stay the best by chance, and training stopped almost before it began. This subclass keeps the parent's patience
bookkeeping (so the counter, the threshold and the best checkpoint mean what they always meant) and only vetoes the
stop it asks for while the run is too young or the split too small. It never clears a stop that something else asked
for (max_steps, a user's callback).
"""
from __future__ import annotations

from collections.abc import Callable

from transformers import EarlyStoppingCallback


def tiny_val_warning(val_scripts: int, min_val_scripts: int) -> str | None:
    """The warning logged when the validation split is below training.early_stopping_min_val_scripts, else None."""
    if val_scripts >= min_val_scripts:
        return None
    return (f"WARNING: the validation split has {val_scripts} scripts, fewer than "
            f"training.early_stopping_min_val_scripts={min_val_scripts}: its loss is too noisy to stop on, so early "
            "stopping is off for this run (all training.num_epochs run; the best checkpoint is still kept). "
            "Give validation more scripts (data.split.val_size, or more data) for early stopping to act.")


class MinimumEarlyStoppingCallback(EarlyStoppingCallback):
    """EarlyStoppingCallback that may act only from `min_epochs` on, and only when val has `min_val_scripts`."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0, *,
                 min_epochs: float = 0.0, val_scripts: int = 0, min_val_scripts: int = 0,
                 log: Callable[[str], None] = print):
        # keyword names as the parent's, so a checkpoint's saved callback state (state() below) rebuilds this class
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.min_epochs = min_epochs
        self.min_val_scripts = min_val_scripts
        self.val_scripts = val_scripts
        self.vetoed_at: list[int] = []  # global steps at which a stop was asked for and refused (for the log)
        warning = tiny_val_warning(val_scripts, min_val_scripts)
        self.may_act = warning is None
        if warning:
            log(f"[train] {warning}")

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        stop_before = control.should_training_stop  # asked by someone else: never ours to clear
        super().on_evaluate(args, state, control, metrics, **kwargs)
        asked = control.should_training_stop and not stop_before
        if asked and (not self.may_act or (state.epoch or 0.0) < self.min_epochs):
            control.should_training_stop = False
            self.vetoed_at.append(state.global_step)

    def state(self) -> dict:
        saved = super().state()
        saved["args"].update(min_epochs=self.min_epochs, val_scripts=self.val_scripts,
                             min_val_scripts=self.min_val_scripts)
        return saved
