"""Stacked ensemble (model + baseline scores, fit on val) and per-language thresholds: behaviour on synthetic
scores where the right answer is known."""
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.evaluation import metrics as M
from pipeline.evaluation.ensemble import StackedEnsemble


def _two_views(n: int, seed: int):
    """Labels and two scorers that each see half of the evidence, with independent noise: the sum sees it all."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    b = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return y, a, b


def test_stacking_beats_both_scorers_on_unseen_data_and_round_trips(tmp_path):
    y_val, a_val, b_val = _two_views(400, 0)
    y_test, a_test, b_test = _two_views(2000, 1)
    stack = StackedEnsemble()
    oof = stack.fit(y_val, a_val, b_val, seed=0)
    assert oof.shape == y_val.shape and not np.allclose(oof, stack.predict(a_val, b_val))  # out-of-fold, not in-fold
    e = stack.predict(a_test, b_test)
    assert roc_auc_score(y_test, e) > max(roc_auc_score(y_test, a_test), roc_auc_score(y_test, b_test)) + 0.02
    assert stack.coef[0] > 0 and stack.coef[1] > 0
    stack.save(tmp_path / "ensemble.json")
    assert np.array_equal(StackedEnsemble.load(tmp_path / "ensemble.json").predict(a_test, b_test), e)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "pickle", "model_weight": 1}))
    with pytest.raises(ValueError, match="bad.json"):
        StackedEnsemble.load(tmp_path / "bad.json")


def test_stacking_needs_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        StackedEnsemble().fit(np.zeros(10), np.full(10, 0.2), np.full(10, 0.3))


def test_per_language_thresholds_follow_each_languages_scale_and_fall_back_when_small():
    """Language "a" scores everything ~0.3 higher than "b": one threshold cannot serve both."""
    rng = np.random.default_rng(0)

    def scores(n, shift):
        y = rng.integers(0, 2, n)
        return y, np.clip(0.2 + 0.3 * y + shift + rng.normal(0, 0.05, n), 0, 1)

    (ya, sa), (yb, sb), (yc, sc) = scores(200, 0.3), scores(200, 0.0), scores(12, 0.3)
    y_val, s_val = np.concatenate([ya, yb, yc]), np.concatenate([sa, sb, sc])
    langs = ["a"] * 200 + ["b"] * 200 + ["c"] * 12
    chosen = M.per_group_thresholds(y_val, s_val, langs, global_threshold=0.5, min_count=40)
    assert chosen["a"]["source"] == chosen["b"]["source"] == "group" and chosen["c"]["source"] == "global"
    assert chosen["c"]["threshold"] == 0.5 and chosen["a"]["threshold"] > chosen["b"]["threshold"] + 0.2
    (ya, sa), (yb, sb) = scores(500, 0.3), scores(500, 0.0)
    y_test, s_test, test_langs = np.concatenate([ya, yb]), np.concatenate([sa, sb]), ["a"] * 500 + ["b"] * 500
    at = M.metrics_at_group_thresholds(y_test, s_test, test_langs, chosen, default=0.5)
    one = M.binary_metrics(y_test, s_test, 0.5)
    assert at["balanced_accuracy"] > one["balanced_accuracy"] + 0.1 and at["n"] == 1000
    assert set(at["per_lang"]) == {"a", "b"} and at["per_lang"]["a"]["specificity"] > 0.9


def test_predict_serves_the_ensemble_only_for_runs_that_have_one(tmp_path):
    from pipeline.evaluation.baseline import TfidfBaseline
    from pipeline.evaluation.ensemble import EnsembleScorer, with_ensemble
    from pipeline.run.records import Record

    class Fixed:  # a stand-in classifier: its score is fixed per text
        threshold = 0.5

        def score_records(self, records, batch_size=16):
            return np.array([0.9 if "iex" in r.text else 0.1 for r in records])

    model = Fixed()
    assert with_ensemble(model, tmp_path) is model  # no evaluate/ensemble.json: the plain classifier
    texts = ["iex (iwr http://x)", "Get-ChildItem C:\\", "iex $payload", "Write-Output hello"] * 5
    y = np.array([1, 0, 1, 0] * 5)
    (tmp_path / "evaluate").mkdir()
    TfidfBaseline(seed=0).fit(texts, y).save(tmp_path / "evaluate" / "baseline.npz")
    StackedEnsemble((2.0, 1.0), -0.5).save(tmp_path / "evaluate" / "ensemble.json", threshold=0.42)
    served = with_ensemble(model, tmp_path)
    assert isinstance(served, EnsembleScorer) and served.threshold == 0.42
    records = [Record(id=str(i), text=t, label="benign", lang="powershell", source="s") for i, t in enumerate(texts[:4])]
    base = TfidfBaseline.load(tmp_path / "evaluate" / "baseline.npz").predict_proba(texts[:4])
    expected = StackedEnsemble((2.0, 1.0), -0.5).predict(model.score_records(records), base)
    assert np.allclose(served.score_records(records), expected)
