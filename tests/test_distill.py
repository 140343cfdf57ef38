"""Distillation from the TF-IDF baseline (training.distill_from=tfidf): the teacher's scores are out-of-fold by
original script, they reach the training loss through TRL's collator, and they move the target as documented."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.config import load_config
from pipeline.evaluation import baseline
from pipeline.model.head import two_label_loss
from pipeline.run.records import read_json
from pipeline.run.runner import run_pipeline

from .conftest import FAST_TRAINING, NO_BASELINE, TINY_CONFIG


def _corpus():
    texts, y, groups = [], [], []
    for i in range(30):
        label = i % 2
        word = "evil" if label else "good"
        for variant in range(3):  # an original, a variant of it, an oversampled copy: one group
            texts.append(f"{word} script {i} token{i} v{variant % 2}")
            y.append(label)
            groups.append(f"g{i}")
    return texts, y, groups


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_group(monkeypatch):
    texts, y, groups = _corpus()
    seen = []
    real_fit = baseline.TfidfBaseline.fit

    def recording_fit(self, fit_texts, fit_y):
        seen.append(set(fit_texts))
        return real_fit(self, fit_texts, fit_y)

    monkeypatch.setattr(baseline.TfidfBaseline, "fit", recording_fit)
    real_predict = baseline.TfidfBaseline.predict_proba
    scored_by = {}

    def recording_predict(self, held_texts):
        for t in held_texts:
            scored_by[t] = seen[-1]
        return real_predict(self, held_texts)

    monkeypatch.setattr(baseline.TfidfBaseline, "predict_proba", recording_predict)
    scores = baseline.out_of_fold_scores(texts, y, groups, folds=5, seed=3)
    assert len(seen) == 5 and scores.shape == (len(texts),)
    group_of = dict(zip(texts, groups))
    for text, fit_set in scored_by.items():
        assert not any(group_of[t] == group_of[text] for t in fit_set)  # no text of its group in the teacher's fit
    assert len(scored_by) == len(set(texts))
    y = np.array(y)
    assert scores[y == 1].mean() > scores[y == 0].mean() + 0.2  # "evil"/"good" generalise across groups
    assert np.array_equal(scores, baseline.out_of_fold_scores(texts, y, groups, folds=5, seed=3))


def test_teacher_moves_the_target_by_its_weight():
    logits = torch.tensor([[0.3, -0.2], [1.0, 2.0]])
    y = torch.tensor([1, 0])
    teacher = torch.tensor([0.2, 0.9])
    logp = F.log_softmax(logits, -1)
    only_teacher = two_label_loss(logits, y, 0.1, teacher=teacher, teacher_weight=1.0)
    assert only_teacher == pytest.approx(float(-(torch.stack([1 - teacher, teacher], 1) * logp).sum(1).mean()))
    assert two_label_loss(logits, y, 0.1, teacher=teacher, teacher_weight=0.0) == two_label_loss(logits, y, 0.1)
    half = two_label_loss(logits, y, 0.0, teacher=teacher, teacher_weight=0.5)
    assert half == pytest.approx(0.5 * float(two_label_loss(logits, y)) + 0.5 * float(only_teacher))


def test_carry_teacher_hands_the_inner_collator_only_what_it_knows():
    from pipeline.model.trainer import TEACHER, _CarryTeacher

    received = []

    def inner(examples):
        received.append(examples)
        return {"input_ids": torch.tensor([e["input_ids"] for e in examples])}

    batch = _CarryTeacher(inner)([{"input_ids": [1, 2], TEACHER: 0.25}, {"input_ids": [3, 4], TEACHER: 0.75}])
    assert all(TEACHER not in e for e in received[0])
    assert torch.equal(batch[TEACHER], torch.tensor([0.25, 0.75]))
    assert TEACHER not in _CarryTeacher(inner)([{"input_ids": [1, 2]}])  # val rows have no teacher


def test_train_stage_feeds_the_teacher_to_the_training_loss_only(tmp_path, tiny_overrides, monkeypatch):
    from pipeline.model import trainer as trainer_module

    calls = []
    real = trainer_module.two_label_loss

    def recording(logits2, y, *args, teacher=None, teacher_weight=0.0, **kwargs):
        calls.append((teacher is not None, teacher_weight, len(y)))
        return real(logits2, y, *args, teacher=teacher, teacher_weight=teacher_weight, **kwargs)

    monkeypatch.setattr(trainer_module, "two_label_loss", recording)
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST_TRAINING, "training.max_steps=3",
                                              "model.max_length=128", "training.distill_from=tfidf",
                                              "training.distill_weight=0.3", *NO_BASELINE])
    lines = []
    run_pipeline(cfg, tmp_path, until="train", log=lines.append)
    assert any("distilling from the TF-IDF baseline (weight 0.3)" in line for line in lines)
    summary = read_json(tmp_path / "train" / "manifest.json")["counts"]["distill"]
    assert summary["weight"] == 0.3 and 0.5 < summary["out_of_fold_roc_auc"] <= 1.0
    assert summary["mean_score_malicious"] > summary["mean_score_benign"]
    training = [c for c in calls if c[1]]
    assert len(training) == 3 and all(has and w == 0.3 for has, w, _ in training)
    assert any(not has and w == 0.0 for has, w, _ in calls)  # evaluation: the plain loss, no teacher
