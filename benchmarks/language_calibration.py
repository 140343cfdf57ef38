"""Does calibrating scores per language (fit on val) put them on one scale and raise the pooled ROC AUC?

    python -m benchmarks.language_calibration --runs '/tmp/q/srcdef-s{seed}' --seeds 1,2,3,4,5

The issue that asked for it measured an overall ROC AUC below most per-language ones on an independent set: scores
that mean different things in different languages rank badly when pooled. Per-language Platt scaling (a logistic
regression on the log-odds per language with enough val scripts of both labels, the global one otherwise) changes no
ranking inside a language, only how languages interleave, so it can only move the pooled figure.

Per `sgpipe all --until train` run: the model's and the TF-IDF baseline's (fit on the run's balanced train rows, as
evaluate fits it) pooled ROC AUC on val, raw and calibrated by 5-fold cross-fitting on val (each script calibrated by
a fit that did not see it, strata = language x label); and, for runs with an out-of-source val split
(data.split.source_val_size > 0), raw and calibrated (fit on all of val) on those held-out sources. Reads no test
split. Only aggregate figures go into benchmarks/results/<out>.json.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, write_result
from pipeline.evaluation.ensemble import log_odds
from pipeline.evaluation.metrics import well_covered


class LanguageCalibration:
    """Platt scaling per language: z -> a_L * z + b_L, fit on val; a language that is not `well_covered` (fewer than
    `min_count` val scripts, or under a tenth of either label) gets the global fit, as per-language thresholds do."""

    def __init__(self, min_count: int = 40, C: float = 1.0):
        self.min_count, self.C, self.fits = min_count, C, {}

    def _fit_one(self, z, y):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C).fit(z[:, None], y)

    def fit(self, z, y, langs) -> "LanguageCalibration":
        z, y, langs = np.asarray(z, dtype=np.float64), np.asarray(y), np.asarray(langs)
        self.fits = {None: self._fit_one(z, y)}
        for lang in sorted(set(langs.tolist())):
            mine = langs == lang
            if well_covered(y[mine], self.min_count):
                self.fits[lang] = self._fit_one(z[mine], y[mine])
        return self

    def transform(self, z, langs) -> np.ndarray:
        z, langs = np.asarray(z, dtype=np.float64), np.asarray(langs)
        out = np.empty(len(z))
        for lang in set(langs.tolist()):
            mine = langs == lang
            out[mine] = self.fits.get(lang, self.fits[None]).decision_function(z[mine, None])
        return out


def cross_fitted(z, y, langs, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Calibrated val scores, each from a calibration fit on the other folds."""
    from sklearn.model_selection import StratifiedKFold

    z, y, langs = np.asarray(z, dtype=np.float64), np.asarray(y), np.asarray(langs)
    strata = [f"{lang}/{label}" for lang, label in zip(langs, y)]
    out = np.empty(len(z))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, strata):
        out[held] = LanguageCalibration().fit(z[fit], y[fit], langs[fit]).transform(z[held], langs[held])
    return out


def measure_run(run: Path, seed: int) -> dict:
    from sklearn.metrics import roc_auc_score

    from benchmarks.compare_val_runs import _records, fitted_baseline
    from pipeline.model.classifier import Classifier

    classifier, baseline = Classifier.load(run / "train" / "classifier", device="cpu"), fitted_baseline(run, seed)
    val = _records(run, "val")
    y, langs = np.array([r.y for r in val]), np.array([r.lang for r in val])
    out = {}
    scores = {"model": log_odds(classifier.score_records(val, 32)),
              "baseline": log_odds(baseline.predict_proba([r.text for r in val]))}
    for name, z in scores.items():
        out[f"{name}_val_raw"] = roc_auc_score(y, z)
        out[f"{name}_val_calibrated"] = roc_auc_score(y, cross_fitted(z, y, langs))
    held_file = run / "split" / "val_source.jsonl"
    if held_file.exists() and held_file.stat().st_size:
        held = _records(run, "val_source")
        yh, lh = np.array([r.y for r in held]), np.array([r.lang for r in held])
        held_scores = {"model": log_odds(classifier.score_records(held, 32)),
                       "baseline": log_odds(baseline.predict_proba([r.text for r in held]))}
        for name, z in held_scores.items():
            out[f"{name}_val_source_raw"] = roc_auc_score(yh, z)
            calibration = LanguageCalibration().fit(scores[name], y, langs)
            out[f"{name}_val_source_calibrated"] = roc_auc_score(yh, calibration.transform(z, lh))
    return {k: round(float(v), 4) for k, v in out.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="run directory pattern with {seed}")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--what", default="", help="what was run, for the record")
    p.add_argument("--out", default="language_calibration")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = {seed: measure_run(Path(a.runs.format(seed=seed)), seed) for seed in seeds}
    summary = {}
    for key in runs[seeds[0]]:
        values = [r[key] for r in runs.values()]
        summary[key] = {"mean": round(statistics.mean(values), 4),
                        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
        print(f"{key:32s} {summary[key]['mean']:.4f} ± {summary[key]['sd']:.4f}   per seed {values}")
    result = {"what": a.what, "machine": machine_info(1), "seeds": seeds, "per_seed": runs, "summary": summary}
    write_result(a.out, None, result)
    return result


if __name__ == "__main__":
    main()
