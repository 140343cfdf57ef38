"""Binary classification metrics for scores P(malicious), threshold policies, bootstrap intervals, collapse alarm.

Conventions used everywhere in sgpipe:
- malicious is the positive class (y = 1, see `records.LABELS`); benign is y = 0;
- a score is P(malicious) in [0, 1];
- the prediction rule is: malicious iff score >= threshold;
- ranking metrics (ROC AUC, PR AUC) come from the scores, never from hard labels;
- a ratio whose denominator is 0 (e.g. sensitivity with no malicious scripts) is None, never a silent 0.

Every function returns plain Python ints/floats/lists/dicts so results can go straight into JSON.
No plotting here: `calibration_curve`, `roc_points` and `pr_points` return the numbers a report plots.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

EPS = 1e-15  # clip for the cross-entropy so a score of exactly 0 or 1 on the wrong class costs ~34.5, not infinity
ECE_BINS = 10
POLICIES = ("youden", "target_specificity", "target_sensitivity", "max_f1", "fixed")
BOOTSTRAP_METRICS = (
    "sensitivity", "specificity", "precision", "npv", "f1", "balanced_accuracy", "mcc", "accuracy", "roc_auc", "brier"
)
_TIE = 1e-12  # float slack when comparing a metric with a target or with the best value


def _check(y_true, scores, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: y in {0, 1}, finite scores in [0, 1], same non-zero length."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{where}: y_true has {y.size} items but scores has {s.size}; pass one score per script")
    if y.size == 0:
        raise ValueError(f"{where}: no items to score")
    bad = set(np.unique(y).tolist()) - {0, 1}
    if bad:
        raise ValueError(f"{where}: y_true has values {sorted(map(str, bad))}; expected 0 (benign) or 1 (malicious),"
                         " e.g. from Record.y")
    if not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(f"{where}: scores must be finite probabilities P(malicious) in [0, 1]; "
                         f"got min {np.nanmin(s)}, max {np.nanmax(s)}, {int(np.sum(~np.isfinite(s)))} non-finite")
    return y.astype(np.int64), s


def _check_threshold(threshold: float, where: str) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"{where}: threshold {threshold} is outside [0, 1]; scores are probabilities")
    return t


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def _counts(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    return tp, fp, tn, fn


def _mcc(tp: int, fp: int, tn: int, fn: int) -> float | None:
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)  # Python ints: no overflow on large sets
    return None if den == 0 else (tp * tn - fp * fn) / math.sqrt(den)


def _bins(s: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin index of each score; bin i is [i/n, (i+1)/n), and a score of 1.0 goes in the last bin."""
    return np.clip((s * n_bins).astype(np.int64), 0, n_bins - 1)


def calibration_curve(y_true, scores, n_bins: int = ECE_BINS) -> dict:
    """Reliability diagram data: per equal-width score bin, its count, mean score and fraction malicious.

    Empty bins are kept (count 0, means None) so every curve has the same bins.
    """
    y, s = _check(y_true, scores, "calibration_curve")
    b = _bins(s, n_bins)
    count = np.bincount(b, minlength=n_bins)
    sum_s = np.bincount(b, weights=s, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    return {
        "bin_lower": [i / n_bins for i in range(n_bins)],
        "bin_upper": [(i + 1) / n_bins for i in range(n_bins)],
        "count": count.tolist(),
        "mean_score": [_ratio(sum_s[i], count[i]) for i in range(n_bins)],
        "frac_malicious": [_ratio(sum_y[i], count[i]) for i in range(n_bins)],
    }


def _ece(y: np.ndarray, s: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(malicious): sum over equal-width bins of (bin share) * |frac malicious - mean
    score|. This is the binary, positive-class form (not the top-label-confidence form used for multi-class)."""
    b = _bins(s, n_bins)
    count = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, weights=y, minlength=n_bins) - np.bincount(b, weights=s, minlength=n_bins))
    return float(gap.sum() / count.sum())  # sum_b |sum_y - sum_s| / n == sum_b (n_b/n) |mean_y - mean_s|


def binary_metrics(y_true, scores, threshold: float = 0.5) -> dict:
    """All the figures a report needs for one set of scores at one threshold (see the module docstring)."""
    y, s = _check(y_true, scores, "binary_metrics")
    t = _check_threshold(threshold, "binary_metrics")
    tp, fp, tn, fn = _counts(y, s, t)
    n_pos, n_neg = tp + fn, tn + fp
    sens, spec = _ratio(tp, n_pos), _ratio(tn, n_neg)
    both = n_pos > 0 and n_neg > 0
    sc = np.clip(s, EPS, 1.0 - EPS)
    return {
        "n": int(y.size),
        "n_pos": n_pos,
        "n_neg": n_neg,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": sens,
        "specificity": spec,
        "precision": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (sens + spec) / 2 if both else None,
        "mcc": _mcc(tp, fp, tn, fn),
        "accuracy": (tp + tn) / y.size,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
        "brier": float(np.mean((s - y) ** 2)),
        "ece": _ece(y, s),
        "eval_loss": float(-np.mean(y * np.log(sc) + (1 - y) * np.log(1.0 - sc))),
        "confusion": [[tn, fp], [fn, tp]],
        "threshold": t,
    }


def _stratified_indices(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resample within each class so every resample keeps the class counts (and both classes) of the original."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    return (pos[rng.integers(0, pos.size, size=(n_boot, pos.size))] if pos.size else np.empty((n_boot, 0), np.int64),
            neg[rng.integers(0, neg.size, size=(n_boot, neg.size))] if neg.size else np.empty((n_boot, 0), np.int64))


def _resampled_auc(s: np.ndarray, s_neg: np.ndarray, ip: np.ndarray, ineg: np.ndarray) -> np.ndarray:
    """ROC AUC of many resamples at once, by the Mann-Whitney formula AUC = P(pos > neg) + P(pos == neg) / 2.

    s holds all scores, s_neg the benign ones; ip (B, n_pos) / ineg (B, n_neg) index into s. For each resample we
    count how many of its negatives fall below (and tie with) each of its positives via cumulative counts over the
    sorted distinct negative scores: O(B * n), with no per-resample sort and no sklearn call per resample.
    """
    u = np.unique(s_neg)
    lo = np.searchsorted(u, s, side="left")  # distinct negative values strictly below each score (a negative's code)
    hi = np.searchsorted(u, s, side="right")  # ... below or equal
    n_boot, k = ineg.shape[0], u.size
    codes = lo[ineg] + (np.arange(n_boot) * k)[:, None]  # offset each row so one bincount counts every row
    counts = np.bincount(codes.ravel(), minlength=n_boot * k).reshape(n_boot, k)
    cum = np.zeros((n_boot, k + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=cum[:, 1:])  # cum[b, j] = negatives of resample b scoring below u[j]
    below = np.take_along_axis(cum, lo[ip], axis=1)
    below_or_tie = np.take_along_axis(cum, hi[ip], axis=1)
    wins = (below + below_or_tie).sum(axis=1) / 2.0  # below + ties/2, summed over the resample's positives
    return wins / (ip.shape[1] * ineg.shape[1])


def _resampled_metrics(y: np.ndarray, s: np.ndarray, t: float, ip: np.ndarray, ineg: np.ndarray,
                       names: Sequence[str]) -> dict[str, np.ndarray]:
    """The requested metrics for each resample (rows of ip/ineg); NaN where a ratio is undefined."""
    hit = s >= t
    tp = hit[ip].sum(axis=1).astype(np.float64)
    fp = hit[ineg].sum(axis=1).astype(np.float64)
    n_pos, n_neg = ip.shape[1], ineg.shape[1]
    fn, tn = n_pos - tp, n_neg - fp

    def ratio(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)

    sens, spec = ratio(tp, np.full_like(tp, n_pos)), ratio(tn, np.full_like(tn, n_neg))
    out = {}
    for name in names:
        if name == "sensitivity":
            out[name] = sens
        elif name == "specificity":
            out[name] = spec
        elif name == "precision":
            out[name] = ratio(tp, tp + fp)
        elif name == "npv":
            out[name] = ratio(tn, tn + fn)
        elif name == "f1":
            out[name] = ratio(2 * tp, 2 * tp + fp + fn)
        elif name == "balanced_accuracy":
            out[name] = (sens + spec) / 2
        elif name == "mcc":
            out[name] = ratio(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        elif name == "accuracy":
            out[name] = (tp + tn) / (n_pos + n_neg)
        elif name == "brier":
            err = (s - y) ** 2
            out[name] = (err[ip].sum(axis=1) + err[ineg].sum(axis=1)) / (n_pos + n_neg)
        elif name == "roc_auc":
            out[name] = (_resampled_auc(s, s[y == 0], ip, ineg) if n_pos and n_neg
                         else np.full(ip.shape[0], np.nan))
    return out


def bootstrap_ci(y_true, scores, threshold: float = 0.5,
                 metrics: Sequence[str] = ("sensitivity", "specificity", "roc_auc"),
                 n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, tuple]:
    """Stratified percentile bootstrap: {metric: (lo, hi)} at confidence 1 - alpha.

    Each resample draws the malicious and the benign scripts separately, with replacement, keeping the class counts,
    so sensitivity/specificity/AUC are defined in every resample whenever they are defined on the full set. Resamples
    where a ratio is undefined (e.g. precision with no predicted positives) are left out; a metric undefined in every
    resample gives (None, None). Resamples are processed in chunks to bound memory.
    """
    y, s = _check(y_true, scores, "bootstrap_ci")
    t = _check_threshold(threshold, "bootstrap_ci")
    unknown = [m for m in metrics if m not in BOOTSTRAP_METRICS]
    if unknown:
        raise ValueError(f"bootstrap_ci: unknown metrics {unknown}; choose from {list(BOOTSTRAP_METRICS)}")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError(f"bootstrap_ci: need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // y.size)  # ~2M sampled items (a few tens of MB) per chunk
    parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_boot, chunk):
        ip, ineg = _stratified_indices(y, min(chunk, n_boot - start), rng)
        for m, v in _resampled_metrics(y, s, t, ip, ineg, metrics).items():
            parts[m].append(v)
    out = {}
    for m in metrics:
        v = np.concatenate(parts[m])
        v = v[~np.isnan(v)]
        out[m] = ((float(np.percentile(v, 100 * alpha / 2)), float(np.percentile(v, 100 * (1 - alpha / 2))))
                  if v.size else (None, None))
    return out


def _candidates(s: np.ndarray) -> np.ndarray:
    """Thresholds to try: midpoints between consecutive distinct scores (so no threshold sits exactly on a sample),
    with 0 and 1 added as ends, plus 0.0 itself (calls everything malicious even if some score is exactly 0).
    When no score is exactly 1.0 the top midpoint calls everything benign."""
    edges = np.unique(np.concatenate([[0.0, 1.0], s]))
    return np.concatenate([[0.0], (edges[:-1] + edges[1:]) / 2])


def _select(y: np.ndarray, s: np.ndarray, policy: str, target: float | None) -> float:
    """The threshold a policy picks on (y, s); both classes must be present (checked by the caller)."""
    t = _candidates(s)
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    tp = pos.size - np.searchsorted(pos, t, side="left")  # positives with score >= t
    fp = neg.size - np.searchsorted(neg, t, side="left")
    tpr, tnr = tp / pos.size, 1.0 - fp / neg.size
    if policy == "target_specificity":  # specificity rises with t: the lowest qualifying t keeps the most sensitivity
        ok = np.flatnonzero(tnr >= target - _TIE)  # empty only when a benign script scores exactly 1.0
        return float(t[ok[0]] if ok.size else t[-1])
    if policy == "target_sensitivity":  # sensitivity falls with t: the highest qualifying t keeps the most specificity
        return float(t[np.flatnonzero(tpr >= target - _TIE)[-1]])  # t = 0.0 (all malicious) always qualifies
    if policy == "youden":
        value = tpr + tnr - 1.0
    else:  # max_f1
        value = np.where(tp > 0, 2 * tp / (2 * tp + fp + (pos.size - tp)), 0.0)
    best = t[value >= value.max() - _TIE]
    return float(best[np.argmin(np.abs(best - 0.5))])  # tie: the one closest to 0.5 (argmin takes the lowest of equals)


def choose_threshold(y_val, s_val, policy: str = "youden", target: float | None = None, fixed: float = 0.5,
                     n_boot: int = 200, seed: int = 0) -> dict:
    """Pick the decision threshold on VALIDATION scores (never on test), with its bootstrap stability.

    Policies (prediction rule: malicious iff score >= threshold):
    - "youden": maximise sensitivity + specificity - 1; ties go to the threshold closest to 0.5;
    - "target_specificity": the lowest threshold with val specificity >= target (the most sensitivity under it);
    - "target_sensitivity": the highest threshold with val sensitivity >= target (the most specificity under it);
    - "max_f1": maximise F1 of the malicious class; ties go to the threshold closest to 0.5;
    - "fixed": `fixed`, whatever the data.
    Candidates are midpoints between consecutive distinct val scores (see `_candidates`). A target specificity may be
    unreachable only when a benign script scores exactly 1.0; then the highest candidate is returned and `met` is
    False. `stability` gives the 5th/50th/95th percentiles of the threshold the same policy picks on `n_boot`
    stratified bootstrap resamples of the val set: on small val sets it swings widely, and the report shows that.
    """
    if policy not in POLICIES:
        raise ValueError(f"choose_threshold: unknown policy {policy!r}; choose from {list(POLICIES)}")
    y, s = _check(y_val, s_val, "choose_threshold")
    uses_target = policy.startswith("target_")
    if uses_target and (target is None or not 0.0 <= target <= 1.0):
        raise ValueError(f"choose_threshold: policy {policy!r} needs a target in [0, 1], got {target!r}")
    if policy == "fixed":
        t = _check_threshold(fixed, "choose_threshold(fixed)")
        stability = {"p5": t, "p50": t, "p95": t, "n_boot": 0}
    else:
        if not (np.any(y == 1) and np.any(y == 0)):
            raise ValueError(f"choose_threshold: policy {policy!r} needs both malicious and benign scripts in the "
                             "val set; make the val split larger/stratified or use policy 'fixed'")
        t = _select(y, s, policy, target)
        ip, ineg = _stratified_indices(y, n_boot, np.random.default_rng(seed))
        boots = [_select(y[i], s[i], policy, target) for i in np.concatenate([ip, ineg], axis=1)]
        p5, p50, p95 = np.percentile(boots, [5, 50, 95])
        stability = {"p5": float(p5), "p50": float(p50), "p95": float(p95), "n_boot": n_boot}
    achieved = binary_metrics(y, s, t)
    met = True
    if policy == "target_specificity":
        met = achieved["specificity"] >= target - _TIE
    elif policy == "target_sensitivity":
        met = achieved["sensitivity"] >= target - _TIE
    return {"threshold": t, "policy": policy, "target": target if uses_target else None, "met": bool(met),
            "achieved": achieved, "stability": stability}


def per_group_metrics(y_true, scores, groups, threshold: float = 0.5, min_n: int = 1) -> dict[str, dict]:
    """`binary_metrics` for each group (e.g. language or source), sorted by group name.

    Groups with fewer than `min_n` scripts are left out (their figures would be noise); a group with one class has
    None for sensitivity or specificity and for the AUCs.
    """
    y, s = _check(y_true, scores, "per_group_metrics")
    g = np.asarray([str(x) for x in groups])
    if g.size != y.size:
        raise ValueError(f"per_group_metrics: {g.size} groups for {y.size} scores; pass one group per script")
    out = {}
    for name in sorted(set(g.tolist())):
        mask = g == name
        if mask.sum() >= min_n:
            out[name] = binary_metrics(y[mask], s[mask], threshold)
    return out


# A (language, label) cell with fewer scripts is left out of the language-balanced ROC AUC: weighted like the others,
# one or two scripts (the dev set's test split holds 1 malicious VBScript script) would decide a share of the figure.
MIN_CELL = 10


def language_balanced_roc_auc(y_true, scores, langs, min_cell: int | None = None) -> float | None:
    """ROC AUC with every (language, label) cell weighted to the same total mass: what the score ranks when no
    language is more common, nor more often malicious, than another. A score that leans on a language's share of
    malicious scripts (a prior that moves every score of that language) gains nothing here; scores on one scale
    across languages lose nothing. Only languages with at least `min_cell` (default MIN_CELL) scripts of each label
    count; None when none has."""
    y, s = _check(y_true, scores, "language_balanced_roc_auc")
    min_cell = MIN_CELL if min_cell is None else min_cell
    langs = np.asarray([str(x) for x in langs])
    counted = [lang for lang in sorted(set(langs.tolist()))
               if min(np.sum((langs == lang) & (y == 1)), np.sum((langs == lang) & (y == 0))) >= min_cell]
    keep = np.isin(langs, counted)
    if not keep.any():
        return None
    cells = np.char.add(langs[keep], y[keep].astype(str))
    _, where, count = np.unique(cells, return_inverse=True, return_counts=True)
    return float(roc_auc_score(y[keep], s[keep], sample_weight=1.0 / count[where]))


def collapse_alarm(metrics: dict) -> str | None:
    """A message when the model calls everything one class (sensitivity or specificity exactly 0), else None.

    This is the classic "Specificity: 0.00" failure; the message gives the fixes of pipeline/advice.py.
    """
    sens, spec = metrics.get("sensitivity"), metrics.get("specificity")
    if spec == 0:
        what = f"specificity is 0.00: every benign script is called malicious (threshold {metrics.get('threshold')})"
    elif sens == 0:
        what = f"sensitivity is 0.00: every malicious script is called benign (threshold {metrics.get('threshold')})"
    else:
        return None
    from pipeline.advice import ADVICE

    return f"COLLAPSE: {what}. The model predicts one class. Fixes: {ADVICE['collapse'].fix}."


def roc_points(y_true, scores) -> dict | None:
    """ROC curve points (fpr, tpr) for a plot; None when only one class is present."""
    y, s = _check(y_true, scores, "roc_points")
    if y.min() == y.max():
        return None
    fpr, tpr, _ = roc_curve(y, s)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}


def pr_points(y_true, scores) -> dict | None:
    """Precision-recall curve points (recall, precision) for a plot; None when only one class is present."""
    y, s = _check(y_true, scores, "pr_points")
    if y.min() == y.max():
        return None
    precision, recall, _ = precision_recall_curve(y, s)
    return {"recall": recall.tolist(), "precision": precision.tolist()}


def well_covered(y_group, min_count: int) -> bool:
    """Whether a group's labels `y_group` (1 = malicious) can carry a fit of its own (a threshold, a calibration): at
    least `min_count` scripts, of which at least a tenth (and 3) are of each label."""
    n, n_pos = len(y_group), int(np.sum(y_group))
    return n >= min_count and min(n_pos, n - n_pos) >= max(3, int(math.ceil(0.1 * n)))


def per_group_thresholds(y_val, s_val, groups, global_threshold: float, min_count: int, policy: str = "youden",
                         target: float | None = None, fixed: float = 0.5, seed: int = 0) -> dict[str, dict]:
    """A threshold per group (language) chosen on VALIDATION by `policy`, where the group has at least `min_count`
    val scripts of which at least a tenth (and 3) are of each label; elsewhere the global threshold.

    Scores of one model are not on one scale across languages (the dev set: overall AUC below most per-language
    AUCs), so one threshold can be right for one language and wrong for another. Returns {group: {"threshold",
    "source": "group" | "global", "n_val"}}, sorted by group name.
    """
    y, s = _check(y_val, s_val, "per_group_thresholds")
    g = np.asarray([str(x) for x in groups])
    out = {}
    for name in sorted(set(g.tolist())):
        mask = g == name
        n = int(mask.sum())
        if well_covered(y[mask], min_count):
            t = choose_threshold(y[mask], s[mask], policy, target=target, fixed=fixed, n_boot=50, seed=seed)
            out[name] = {"threshold": t["threshold"], "source": "group", "n_val": n,
                         "stability": {k: t["stability"][k] for k in ("p5", "p95")}}
        else:
            out[name] = {"threshold": float(global_threshold), "source": "global", "n_val": n}
    return out


def metrics_at_group_thresholds(y_true, scores, groups, thresholds: dict[str, dict],
                                default: float) -> dict:
    """Metrics when each script is judged at its group's threshold (`default` for a group not in `thresholds`).

    The same figures as `binary_metrics` at threshold 0.5 of the shifted scores: a script is malicious iff its score
    is at least its group's threshold. Ranking metrics (AUC) are left out: they do not depend on thresholds."""
    y, s = _check(y_true, scores, "metrics_at_group_thresholds")
    g = [str(x) for x in groups]
    t = np.array([thresholds.get(name, {}).get("threshold", default) for name in g], dtype=np.float64)
    hit = (s >= t).astype(np.float64)  # 1.0 at or above the group threshold, 0.0 below: binary_metrics at 0.5
    keys = ("sensitivity", "specificity", "precision", "npv", "f1", "balanced_accuracy", "mcc", "accuracy", "tp",
            "fp", "tn", "fn", "n")
    overall = binary_metrics(y, hit, 0.5)
    per = per_group_metrics(y, hit, g, 0.5)
    return {**{k: overall[k] for k in keys if k in overall},
            "per_lang": {name: {k: m[k] for k in keys if k in m} for name, m in per.items()}}
