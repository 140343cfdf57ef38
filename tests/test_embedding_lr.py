"""training.embedding_lr_scale: the input embeddings train in an optimizer group of their own at that multiple of the
learning rate (the schedule scales it like the rest), nothing else changes, and LoRA, whose embeddings are frozen,
refuses the setting with its fix."""
import pytest
import torch

from pipeline.config import load_config
from pipeline.model.trainer import scale_param_lr
from pipeline.run.runner import run_pipeline

from .conftest import FAST_TRAINING, NO_BASELINE, TINY_CONFIG


def test_scale_param_lr_moves_one_parameter_into_its_own_group():
    embeddings, weight, bias = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    optimizer = torch.optim.AdamW([{"params": [embeddings, weight], "weight_decay": 0.01},
                                   {"params": [bias], "weight_decay": 0.0}], lr=1e-3)
    scale_param_lr(optimizer, embeddings, 30.0)
    groups = optimizer.param_groups
    assert [len(g["params"]) for g in groups] == [1, 1, 1]
    assert groups[0]["params"][0] is weight and groups[0]["lr"] == 1e-3
    own = groups[2]
    assert own["params"][0] is embeddings and own["lr"] == pytest.approx(3e-2) and own["weight_decay"] == 0.01
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)  # a schedule scales each group's own
    optimizer.step()  # no gradients: changes nothing, keeps the documented call order
    scheduler.step()
    assert groups[2]["lr"] == pytest.approx(1.5e-2) and groups[0]["lr"] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="not in the optimizer"):
        scale_param_lr(optimizer, torch.nn.Parameter(torch.zeros(1)), 2.0)


def test_train_stage_gives_the_embeddings_their_learning_rate(tmp_path, tiny_overrides, monkeypatch):
    from pipeline.model import trainer as trainer_module

    calls = []
    real = trainer_module.scale_param_lr

    def recording(optimizer, param, scale):
        real(optimizer, param, scale)
        calls.append((tuple(param.shape), scale, sorted(g["lr"] for g in optimizer.param_groups)))

    monkeypatch.setattr(trainer_module, "scale_param_lr", recording)
    lines = []
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST_TRAINING, "training.max_steps=2",
                                              "model.max_length=128", "training.embedding_lr_scale=30", *NO_BASELINE])
    run_pipeline(cfg, tmp_path, until="train", log=lines.append)
    assert len(calls) == 1
    shape, scale, lrs = calls[0]
    assert shape[1] == cfg.model.tiny.hidden_size and shape[0] >= 512  # the input embedding matrix: vocab x hidden
    assert scale == 30.0 and lrs[-1] == pytest.approx(30 * lrs[0])
    assert any("input embeddings learn at 30x" in line for line in lines)


def test_lora_refuses_an_embedding_learning_rate():
    with pytest.raises(ValueError, match="LoRA keeps them frozen"):
        load_config(TINY_CONFIG, overrides=["model.finetuning_type=lora", "training.embedding_lr_scale=30"])
