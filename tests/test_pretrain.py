"""The tiny model's self-supervised warm-up (model.tiny.warmup_epochs): it learns the scripts' text, reads them as the
classifier does, never sees a label, is seeded, and runs in the train stage before the head is cut."""
import json

import pytest
import torch

from pipeline.config import load_config
from pipeline.model import prompt
from pipeline.model.pretrain import lm_rows, warm_up
from pipeline.model.tiny import build_tiny_model, train_tokenizer
from pipeline.run.records import read_json
from pipeline.run.runner import run_pipeline

from .conftest import FAST_TRAINING, NO_BASELINE, TINY_CONFIG, TINY_DATA

TEXTS = [json.loads(line)["text"] for line in TINY_DATA.read_text(encoding="utf-8").splitlines()][:40]
LANGS = ["bash"] * len(TEXTS)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(prompt.tokenizer_corpus(TEXTS), 512, max_length=128)


def _lm_loss(model, rows) -> float:
    with torch.no_grad():
        total = 0.0
        for r in rows:
            ids = torch.tensor([r])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))
    return total / len(rows)


def test_rows_are_the_classifier_prompts_without_the_verdict(tokenizer):
    rows = lm_rows(TEXTS[:5], LANGS[:5], tokenizer, 128, 0.75)
    assert rows == [prompt.encode(t, "bash", tokenizer, 128, 0.75) for t in TEXTS[:5]]
    assert not {r[-1] for r in rows} & set(prompt.label_token_ids(tokenizer))  # no label token is ever a target
    windows = prompt.Windows(16, "mean", 8)  # whole-script reading: the warm-up reads the windows training reads
    windowed = lm_rows(TEXTS, LANGS, tokenizer, 64, 0.75, windows, seed=5)
    assert windowed == [r["input_ids"][:-1] for r in prompt.build_training_rows(
        TEXTS, LANGS, ["benign"] * len(TEXTS), tokenizer, 64, 0.75, windows, 5)]
    assert max(map(len, windowed)) <= 63


def test_warm_up_lowers_next_token_loss_and_is_seeded(tokenizer):
    rows = lm_rows(TEXTS, LANGS, tokenizer, 128, 0.75)

    def trained(seed: int):
        model = build_tiny_model(len(tokenizer), hidden_size=32, intermediate_size=64, num_heads=2, num_kv_heads=1,
                                 max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, seed=0)
        before = _lm_loss(model, rows)
        rng = torch.get_rng_state()
        info = warm_up(model, rows, epochs=3, learning_rate=3e-3, batch_size=8, seed=seed,
                       pad_token_id=tokenizer.pad_token_id)
        assert torch.equal(torch.get_rng_state(), rng)  # the caller's random draws are not moved
        return model, before, info

    a, before, info = trained(1)
    assert info["steps"] == 3 * 5 and info["tokens"] > 0
    assert _lm_loss(a, rows) < before - 0.5
    assert not a.training  # handed back in eval mode, as it came
    b, _, _ = trained(1)
    c, _, _ = trained(2)
    weights = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(weights(a), weights(b))
    assert not torch.equal(weights(a), weights(c))


def test_zero_epochs_changes_nothing(tokenizer):
    model = build_tiny_model(len(tokenizer), hidden_size=32, intermediate_size=64, num_heads=2, num_kv_heads=1)
    before = [p.clone() for p in model.parameters()]
    assert warm_up(model, [[1, 2, 3]], epochs=0, learning_rate=1e-3, batch_size=4, seed=0, pad_token_id=1) == {
        "steps": 0}
    assert all(torch.equal(x, y) for x, y in zip(before, model.parameters()))


def test_dropout_reaches_the_model_config():
    model = build_tiny_model(300, dropout=0.2)
    assert (model.config.embedding_dropout, model.config.residual_dropout, model.config.attention_dropout) == (
        0.2, 0.2, 0.2)


def test_train_stage_warms_up_before_cutting_the_head(tmp_path, tiny_overrides):
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST_TRAINING, "training.max_steps=2",
                                              "model.max_length=128", "model.tiny.warmup_epochs=0.5",
                                              "model.tiny.dropout=0.1", *NO_BASELINE])
    lines = []
    run_pipeline(cfg, tmp_path, until="train", log=lines.append)
    warm = [line for line in lines if "LM warm-up step" in line]
    assert warm and "next-token loss" in warm[-1]
    warm_up_counts = read_json(tmp_path / "train" / "manifest.json")["counts"]["lm_warm_up"]
    assert f"step {warm_up_counts['steps']}/{warm_up_counts['steps']}:" in warm[-1]
    assert warm_up_counts["loss_last"] < warm_up_counts["loss_first"]
    saved = read_json(tmp_path / "train" / "classifier" / "config.json")
    assert saved["residual_dropout"] == 0.1 and saved["vocab_size"] > 2  # full model saved, head trimmed to 2 rows
    assert load_config(TINY_CONFIG, overrides=["model.tiny.warmup_epochs=0"]).model.tiny.warmup_epochs == 0


def test_warm_up_settings_are_range_checked():
    with pytest.raises(Exception, match="warmup_epochs"):
        load_config(TINY_CONFIG, overrides=["model.tiny.warmup_epochs=-1"])
    with pytest.raises(Exception, match="warmup_learning_rate"):
        load_config(TINY_CONFIG, overrides=["model.tiny.warmup_learning_rate=0"])
