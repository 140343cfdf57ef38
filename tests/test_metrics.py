"""metrics.py against scikit-learn, plus the behaviour sklearn does not define for us (None, thresholds, alarms)."""
import json

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, brier_score_loss,
                             confusion_matrix, f1_score, log_loss, matthews_corrcoef, precision_score, recall_score,
                             roc_auc_score)

from pipeline.evaluation.metrics import BOOTSTRAP_METRICS, _resampled_auc, _stratified_indices, binary_metrics, bootstrap_ci, calibration_curve, choose_threshold, collapse_alarm, language_balanced_roc_auc, per_group_metrics, pr_points, roc_points


def noisy(n: int, seed: int, sep: float = 0.25, decimals: int | None = 2):
    """Labels and overlapping scores (rounded, so ties occur) where malicious (1) tends to score higher."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    s = np.clip(rng.normal(0.4 + sep * y, 0.2), 0, 1)
    return y, (np.round(s, decimals) if decimals is not None else s)


@pytest.mark.parametrize("seed,threshold", [(0, 0.5), (1, 0.3), (2, 0.62), (3, 0.5)])
def test_binary_metrics_match_sklearn(seed, threshold):
    y, s = noisy(300, seed)
    s[:5] = threshold  # scores exactly at the threshold count as malicious (rule: score >= threshold)
    pred = (s >= threshold).astype(int)
    m = binary_metrics(y, s, threshold)
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred, pos_label=1))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["npv"] == pytest.approx(precision_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert m["brier"] == pytest.approx(brier_score_loss(y, s))
    assert m["eval_loss"] == pytest.approx(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15)))
    assert m["confusion"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert (m["n"], m["n_pos"], m["n_neg"], m["threshold"]) == (300, int(y.sum()), int((1 - y).sum()), threshold)
    json.dumps(m)  # plain Python types only
    assert all(type(v) in (int, float, list) for v in m.values())


def test_orientation_malicious_is_positive():
    y = [1, 1, 1, 0, 0, 0]
    s = [0.9, 0.8, 0.3, 0.2, 0.1, 0.6]  # one malicious missed, one benign flagged
    m = binary_metrics(y, s, 0.5)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (2, 1, 2, 1)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s)) and m["roc_auc"] > 0.5
    flipped = binary_metrics(y, 1 - np.asarray(s), 0.5)  # scores as P(benign) would be the wrong orientation
    assert flipped["roc_auc"] == pytest.approx(1 - m["roc_auc"])


def test_undefined_ratios_are_none_not_zero():
    only_mal = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7], 0.5)
    assert only_mal["specificity"] is None and only_mal["roc_auc"] is None and only_mal["pr_auc"] is None
    assert only_mal["balanced_accuracy"] is None and only_mal["mcc"] is None
    assert only_mal["sensitivity"] == pytest.approx(2 / 3)
    nothing_flagged = binary_metrics([1, 0, 0], [0.1, 0.2, 0.3], 0.5)
    assert nothing_flagged["precision"] is None and nothing_flagged["mcc"] is None
    assert nothing_flagged["sensitivity"] == 0.0
    only_benign_all_clear = binary_metrics([0, 0], [0.1, 0.2], 0.5)
    assert only_benign_all_clear["f1"] is None and only_benign_all_clear["sensitivity"] is None
    assert only_benign_all_clear["specificity"] == 1.0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="expected 0 .benign. or 1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        binary_metrics([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError, match="one score per script"):
        binary_metrics([0, 1, 1], [0.1, 0.2])


def test_ece_and_calibration_curve():
    y = np.array([1, 0, 0, 0] * 5)
    assert binary_metrics(y, np.full(20, 0.25))["ece"] == pytest.approx(0.0)  # 25% malicious at score 0.25
    assert binary_metrics(y, np.full(20, 0.95))["ece"] == pytest.approx(0.70)
    yy, s = noisy(500, 4, decimals=None)
    c = calibration_curve(yy, s)
    assert sum(c["count"]) == 500 and len(c["count"]) == 10
    filled = [i for i, k in enumerate(c["count"]) if k]
    manual = sum(c["count"][i] / 500 * abs(c["frac_malicious"][i] - c["mean_score"][i]) for i in filled)
    assert binary_metrics(yy, s)["ece"] == pytest.approx(manual)
    assert binary_metrics([1], [1.0])["ece"] == 0.0  # a score of exactly 1.0 lands in the last bin


def test_eval_loss_is_finite_on_confident_mistakes():
    m = binary_metrics([1, 0], [0.0, 1.0])
    assert np.isfinite(m["eval_loss"]) and m["eval_loss"] > 30


def test_resampled_auc_equals_sklearn_on_each_resample():
    y, s = noisy(200, 5)
    ip, ineg = _stratified_indices(y, 20, np.random.default_rng(0))
    fast = _resampled_auc(s, s[y == 0], ip, ineg)
    for b in range(20):
        idx = np.concatenate([ip[b], ineg[b]])
        assert fast[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)


def test_bootstrap_contains_point_and_narrows_with_more_data():
    widths = {}
    for n in (200, 5000):
        y, s = noisy(n, 6)
        ci = bootstrap_ci(y, s, 0.5, metrics=BOOTSTRAP_METRICS, n_boot=500, seed=1)
        point = binary_metrics(y, s, 0.5)
        for name, (lo, hi) in ci.items():
            assert lo <= point[name] <= hi, name
        widths[n] = {k: hi - lo for k, (lo, hi) in ci.items()}
    for name in BOOTSTRAP_METRICS:
        assert widths[5000][name] < widths[200][name], name


def test_bootstrap_is_seeded_stratified_and_checks_names():
    y, s = noisy(300, 7)
    assert bootstrap_ci(y, s, seed=3) == bootstrap_ci(y, s, seed=3)
    perfect = bootstrap_ci([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9], n_boot=200)
    assert perfect["roc_auc"] == (1.0, 1.0)  # stratified: every resample still has both classes
    assert bootstrap_ci([1, 1, 1], [0.2, 0.6, 0.9], n_boot=50)["specificity"] == (None, None)
    with pytest.raises(ValueError, match="unknown metrics"):
        bootstrap_ci(y, s, metrics=("sensitivity", "speed"))


def all_cuts(y, s):
    """Metrics at every distinct way of cutting the scores (thresholds at each distinct score, and above the max)."""
    ts = list(np.unique(s)) + [min(1.0, float(np.max(s)) + 1e-9)]
    return [binary_metrics(y, s, t) for t in ts]


def test_youden_maximises_j():
    y, s = noisy(180, 8)
    r = choose_threshold(y, s, "youden")
    j = r["achieved"]["sensitivity"] + r["achieved"]["specificity"] - 1
    assert j == pytest.approx(max(m["sensitivity"] + m["specificity"] - 1 for m in all_cuts(y, s)))
    assert r["threshold"] not in set(s.tolist())  # midpoints: the threshold never sits on a sample


def test_youden_tie_goes_to_threshold_nearest_half():
    r = choose_threshold([0, 1, 0, 1], [0.1, 0.2, 0.6, 0.9], "youden")  # J = 0.5 at 0.15 and at 0.75
    assert r["threshold"] == pytest.approx(0.75)


def test_target_specificity_is_lowest_threshold_meeting_target():
    y, s = noisy(400, 9)
    r = choose_threshold(y, s, "target_specificity", target=0.99)
    assert r["achieved"]["specificity"] >= 0.99 and r["met"]
    lower = np.unique(s[s < r["threshold"]])
    assert lower.size and binary_metrics(y, s, float(lower.max()))["specificity"] < 0.99  # one step lower fails
    best_sens = max(m["sensitivity"] for m in all_cuts(y, s) if m["specificity"] >= 0.99)
    assert r["achieved"]["sensitivity"] == pytest.approx(best_sens)


def test_target_sensitivity_is_highest_threshold_meeting_target():
    y, s = noisy(400, 10)
    r = choose_threshold(y, s, "target_sensitivity", target=0.95)
    assert r["achieved"]["sensitivity"] >= 0.95
    best_spec = max(m["specificity"] for m in all_cuts(y, s) if m["sensitivity"] >= 0.95)
    assert r["achieved"]["specificity"] == pytest.approx(best_spec)


def test_max_f1_and_fixed():
    y, s = noisy(300, 11)
    r = choose_threshold(y, s, "max_f1")
    assert r["achieved"]["f1"] == pytest.approx(max(m["f1"] or 0.0 for m in all_cuts(y, s)))
    fixed = choose_threshold(y, s, "fixed")
    assert fixed["threshold"] == 0.5 and fixed["stability"]["p5"] == fixed["stability"]["p95"] == 0.5
    assert choose_threshold(y, s, "fixed", fixed=0.7)["achieved"]["threshold"] == 0.7


def test_threshold_stability_shows_the_swing_on_a_small_val_set():
    y, s = noisy(180, 12, sep=0.15)
    r = choose_threshold(y, s, "youden", n_boot=200, seed=0)
    st = r["stability"]
    assert st["p5"] <= st["p50"] <= st["p95"] and st["p95"] - st["p5"] > 0.02
    assert choose_threshold(y, s, "youden", seed=0)["stability"] == st  # seeded
    json.dumps(r)


def test_choose_threshold_errors():
    with pytest.raises(ValueError, match="unknown policy"):
        choose_threshold([0, 1], [0.1, 0.9], "median")
    with pytest.raises(ValueError, match="needs a target"):
        choose_threshold([0, 1], [0.1, 0.9], "target_specificity")
    with pytest.raises(ValueError, match="both malicious and benign"):
        choose_threshold([1, 1], [0.1, 0.9], "youden")


def test_per_group_metrics_match_subsets_and_respect_min_n():
    y, s = noisy(300, 13)
    langs = np.array(["powershell", "bash", "python"])[np.arange(300) % 3]
    langs[:2] = "vbscript"
    groups = per_group_metrics(y, s, langs, 0.5, min_n=5)
    assert sorted(groups) == ["bash", "powershell", "python"]  # vbscript has 2 < min_n
    mask = langs == "bash"
    assert groups["bash"] == binary_metrics(y[mask], s[mask], 0.5)
    assert "vbscript" in per_group_metrics(y, s, langs, 0.5)


def test_language_balanced_roc_auc_gives_a_language_prior_nothing():
    rng = np.random.default_rng(0)
    langs = np.array(["javascript"] * 400 + ["bash"] * 200)
    y = np.concatenate([rng.random(400) < 0.2, rng.random(200) < 0.6]).astype(int)  # 20% vs 60% malicious
    prior = np.where(langs == "javascript", 0.2, 0.6) + rng.normal(0, 1e-3, y.size)  # knows the language only
    assert roc_auc_score(y, prior) > 0.65  # the plain ROC AUC rewards the prior
    assert language_balanced_roc_auc(y, prior, langs) == pytest.approx(0.5, abs=0.03)
    signal = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, 0.8, y.size))))  # one signal, one scale, both languages
    assert abs(language_balanced_roc_auc(y, signal, langs) - roc_auc_score(y, signal)) < 0.03
    cell_size = np.array([np.sum((langs == lang) & (y == t)) for lang, t in zip(langs, y)])
    assert language_balanced_roc_auc(y, signal, langs) == pytest.approx(roc_auc_score(y, signal,
                                                                                      sample_weight=1 / cell_size))
    assert language_balanced_roc_auc(np.zeros(5), np.linspace(0, 1, 5), ["bash"] * 5) is None
    # a language with under 10 scripts of a label is left out: 1 malicious VBScript script would weigh like 120 bash
    y2, s2, langs2 = np.append(y, [1, 0, 0]), np.append(signal, [0.01, 0.99, 0.98]), np.append(langs, ["vbscript"] * 3)
    assert language_balanced_roc_auc(y2, s2, langs2) == language_balanced_roc_auc(y, signal, langs)


def test_collapse_alarm():
    y, s = noisy(100, 14)
    everything_malicious = binary_metrics(y, s, 0.0)
    msg = collapse_alarm(everything_malicious)
    assert msg and "specificity is 0.00" in msg and "label smoothing 0.1-0.15" in msg
    assert "hybrid" in msg and "0.85" in msg and "threshold" in msg
    assert "sensitivity is 0.00" in collapse_alarm(binary_metrics(y, np.zeros(100), 0.5))
    assert collapse_alarm(binary_metrics(y, s, 0.5)) is None
    assert collapse_alarm(binary_metrics([1, 1], [0.9, 0.8], 0.5)) is None  # no benign: undefined, not collapsed


def test_curve_points():
    y, s = noisy(100, 15)
    roc, pr = roc_points(y, s), pr_points(y, s)
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and len(roc["fpr"]) == len(roc["tpr"])
    assert len(pr["recall"]) == len(pr["precision"])
    assert roc_points([1, 1], [0.2, 0.3]) is None and pr_points([0, 0], [0.2, 0.3]) is None
