"""How to combine the model's and the baseline's scores: stacked (evaluate's logistic regression on val) or plain means.

    python -m benchmarks.ensemble_rules --runs /tmp/q/srcplc-s{seed} --seeds 1,2,3,4,5 \
        --folds /tmp/sgpipe-source-folds/per_language_balance --out benchmarks/results/ensemble_rules.json

Reads `sgpipe all --until train` runs and scores, per rule, ROC AUC on three views:
- val: in-distribution validation, cross-fitted (each val script scored by a rule fit on the other val folds);
- val_source: the out-of-source validation split, rules fit on all of val (runs with data.split.source_val_size > 0);
- folds: the held-out fold of each leave-source-out run that `benchmarks.source_folds` left in its --work folder.
Rules: stacked (pipeline/evaluation/ensemble.py, as evaluate fits it), mean of log-odds, mean of probabilities, and
the model and the baseline alone. Test splits are never read. Only aggregate figures go into the JSON.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from benchmarks.common import rounded_roc_auc, write_result

RULES = ("stacked", "mean_log_odds", "mean_prob", "model", "baseline")


def combine(y_fit, model_fit, base_fit, model, base, seed: int) -> dict[str, np.ndarray]:
    """Each rule's scores on (model, base); only `stacked` learns anything, from the fit triple."""
    from pipeline.evaluation.ensemble import StackedEnsemble, log_odds

    stack = StackedEnsemble()
    stack.fit(y_fit, model_fit, base_fit, seed=seed)
    model, base = np.asarray(model, dtype=np.float64), np.asarray(base, dtype=np.float64)
    return {"stacked": stack.predict(model, base), "mean_log_odds": (log_odds(model) + log_odds(base)) / 2,
            "mean_prob": (model + base) / 2, "model": model, "baseline": base}


def cross_fitted(y, model, base, seed: int, folds: int = 5) -> dict[str, float]:
    """In-distribution ROC AUC per rule, every script scored by rules fit without it."""
    from sklearn.model_selection import StratifiedKFold

    y, model, base = (np.asarray(v) for v in (y, model, base))
    scores = {rule: np.empty(len(y)) for rule in RULES}
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(model, y):
        for rule, s in combine(y[fit], model[fit], base[fit], model[held], base[held], seed).items():
            scores[rule][held] = s
    return {rule: rounded_roc_auc(y, s) for rule, s in scores.items()}


def _scored(run: Path, seed: int, *record_lists: list) -> list[tuple]:
    """(labels, model scores, baseline scores) of each list of records, by the run's classifier (loaded once) and
    baseline."""
    from benchmarks.compare_val_runs import fitted_baseline
    from pipeline.model.classifier import Classifier

    classifier, baseline = Classifier.load(run / "train" / "classifier", device="cpu"), fitted_baseline(run, seed)
    return [([r.y for r in records], classifier.score_records(records, 32),
             baseline.predict_proba([r.text for r in records])) for records in record_lists]


def _summary(rows: list[dict]) -> dict:
    return {rule: {"mean": round(statistics.mean(r[rule] for r in rows), 4),
                   "higher_than_stacked": sum(r[rule] > r["stacked"] for r in rows)} for rule in RULES}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", help="RUN_DIR_PATTERN with {seed}: `sgpipe all --until train` runs")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--folds", help="a benchmarks.source_folds work folder (WORK/NAME) holding fold0, fold1, ...")
    p.add_argument("--fold-seed", type=int, default=1, help="the run.seed the fold runs were made with")
    p.add_argument("--out", help="the JSON file to write (default benchmarks/results/ensemble_rules.json)")
    a = p.parse_args(argv)
    from benchmarks.compare_val_runs import _records
    from pipeline.run.records import read_records

    views: dict[str, list[dict]] = {}
    for seed in ([int(s) for s in a.seeds.split(",")] if a.runs else []):
        run = Path(a.runs.format(seed=seed))
        out_of_source = [_records(run, "val_source")] if (run / "split" / "val_source.jsonl").exists() else []
        val, *held = _scored(run, seed, _records(run, "val"), *out_of_source)
        views.setdefault("val", []).append({"seed": seed, **cross_fitted(*val, seed)})
        if held:
            y, model, base = held[0]
            aucs = {rule: rounded_roc_auc(y, s) for rule, s in combine(*val, model, base, seed).items()}
            views.setdefault("val_source", []).append({"seed": seed, **aucs})
    for fold in sorted(Path(a.folds).glob("fold*")) if a.folds else []:
        run = fold / "run"
        val, held = _scored(run, a.fold_seed, _records(run, "val"),
                            list(read_records(fold / "held" / "ingest" / "records.jsonl")))
        aucs = {rule: rounded_roc_auc(held[0], s)
                for rule, s in combine(*val, *held[1:], a.fold_seed).items()}
        views.setdefault("folds", []).append({"fold": fold.name, **aucs})
    for view, rows in views.items():
        print(f"{view:10s} " + "  ".join(f"{rule} {m['mean']:.4f} ({m['higher_than_stacked']}/{len(rows)} above "
                                         "stacked)" for rule, m in _summary(rows).items()))
    result = {"runs": a.runs, "folds": a.folds, "per_view": views,
              "summary": {view: _summary(rows) for view, rows in views.items()}}
    write_result("ensemble_rules", a.out, result)
    return result


if __name__ == "__main__":
    main()
