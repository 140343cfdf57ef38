"""The early-stopping minimum (pipeline/model/early_stopping.py): transformers' callback would stop on the first noisy
evaluations; ours may not stop before training.early_stopping_min_epochs, nor at all on a validation split smaller
than training.early_stopping_min_val_scripts, and never clears a stop asked for by something else."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import EarlyStoppingCallback, TrainerControl, TrainerState

from pipeline.config import ConfigError, load_config
from pipeline.model.early_stopping import MinimumEarlyStoppingCallback

from .conftest import TINY_CONFIG

ARGS = SimpleNamespace(metric_for_best_model="eval_loss", greater_is_better=False)
# The first evaluation is the best by chance, the next ones are worse: what a tiny val split did on data/tiny.
LOSSES = [0.60, 0.62, 0.61, 0.63, 0.64, 0.65]
EVALS_PER_EPOCH = 2


def first_stop(callback) -> float | None:
    """Feed LOSSES to `callback` as the Trainer would (best_metric kept by the Trainer); the epoch it stops at."""
    state, control = TrainerState(), TrainerControl()
    for i, loss in enumerate(LOSSES, 1):
        state.global_step, state.epoch = i * 10, i / EVALS_PER_EPOCH
        callback.on_evaluate(ARGS, state, control, metrics={"eval_loss": loss})
        state.best_metric = loss if state.best_metric is None else min(state.best_metric, loss)
        if control.should_training_stop:
            return state.epoch
    return None


def test_plain_callback_stops_on_the_first_noisy_evaluations():
    assert first_stop(EarlyStoppingCallback(2, 0.0)) == 1.5  # the failure the minimum exists for


def test_no_stop_before_min_epochs_then_the_usual_patience():
    cb = MinimumEarlyStoppingCallback(2, 0.0, min_epochs=2.5, val_scripts=500, min_val_scripts=100)
    assert first_stop(cb) == 2.5
    assert cb.vetoed_at == [30, 40]  # the stops it refused, by global step


def test_tiny_val_turns_early_stopping_off_with_a_warning():
    logged = []
    cb = MinimumEarlyStoppingCallback(2, 0.0, min_epochs=0.0, val_scripts=29, min_val_scripts=100, log=logged.append)
    assert first_stop(cb) is None
    assert len(logged) == 1 and "29 scripts" in logged[0] and "early_stopping_min_val_scripts=100" in logged[0]


def test_enough_val_and_no_minimum_behaves_like_the_parent():
    logged = []
    cb = MinimumEarlyStoppingCallback(2, 0.0, min_epochs=0.0, val_scripts=100, min_val_scripts=100, log=logged.append)
    assert first_stop(cb) == 1.5 and logged == []


def test_a_stop_asked_by_something_else_is_never_cleared():
    cb = MinimumEarlyStoppingCallback(1, 0.0, min_epochs=5.0, val_scripts=10, min_val_scripts=100, log=lambda m: None)
    state, control = TrainerState(epoch=0.5, global_step=5), TrainerControl(should_training_stop=True)  # max_steps
    cb.on_evaluate(ARGS, state, control, metrics={"eval_loss": 1.0})
    assert control.should_training_stop


def test_saved_state_rebuilds_the_callback():
    cb = MinimumEarlyStoppingCallback(3, 0.01, min_epochs=1.5, val_scripts=120, min_val_scripts=100)
    again = MinimumEarlyStoppingCallback(**cb.state()["args"])
    assert (again.early_stopping_patience, again.min_epochs, again.min_val_scripts) == (3, 1.5, 100)


@pytest.mark.parametrize("key", ["training.early_stopping_min_epochs=-1", "training.early_stopping_min_val_scripts=-5"])
def test_config_keys_are_range_checked(key):
    with pytest.raises(ConfigError, match=key.split("=")[0].split(".")[1]):
        load_config(TINY_CONFIG, overrides=[key])
