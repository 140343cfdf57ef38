"""Compare configs on validation from `sgpipe all --until train` runs, one run per (config, seed), paired by seed.

    python -m benchmarks.compare_val_runs --reference default=/tmp/q/def-s{seed} \
        distill=/tmp/q/dist8-s{seed} --seeds 1,2,3,4,5 --what "..." --out benchmarks/results/tiny_candidates_val.json

Per config: val loss and val ROC AUC (the kept checkpoint's, from the train manifest) per seed, mean and sd, and the
paired difference from the reference (same seed = same data and split); the TF-IDF baseline's val ROC AUC on the
same split (fit on the same balanced train rows) beside them. Reads validation only: the test split is never opened.
With --val-source, the model, the baseline and the stacked ensemble (fit on in-distribution val, as evaluate fits it)
are also scored on the out-of-source validation split (runs made with data.split.source_val_size > 0). Only
aggregate figures go into the JSON (no script, id or path of the data).
"""
from __future__ import annotations

import argparse
import functools
import statistics
from pathlib import Path

from benchmarks.common import write_result
from pipeline.run.records import read_json


def _mean_sd(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def _records(run: Path, split: str) -> list:
    from pipeline.run.records import read_records

    return list(read_records(run / "split" / f"{split}.jsonl"))


@functools.lru_cache(maxsize=None)
def fitted_baseline(run: Path, seed: int):
    """The TF-IDF baseline fit on the run's balanced train rows, as evaluate fits it (once per run: the val, val_source
    and ensemble figures share it; source_folds uses it too)."""
    import numpy as np

    from pipeline.evaluation.baseline import TfidfBaseline
    from pipeline.run.records import read_records

    train = list(read_records(run / "balance" / "train.jsonl"))
    return TfidfBaseline(seed=seed).fit([r.text for r in train], np.array([r.y for r in train]))


def baseline_auc(run: Path, seed: int, split: str = "val") -> float:
    """The TF-IDF baseline's ROC AUC on this run's `split` (val | val_source)."""
    from sklearn.metrics import roc_auc_score

    held = _records(run, split)
    return float(roc_auc_score([r.y for r in held], fitted_baseline(run, seed).predict_proba([r.text for r in held])))


def val_source_aucs(run: Path, seed: int) -> dict:
    """ROC AUC on the run's out-of-source validation split (whole sources no training row comes from:
    data.split.source_val_size) of the trained classifier and of the stacked ensemble (evaluation.ensemble=tfidf)
    that evaluate would build: fit on the in-distribution val scores of model and baseline, applied unchanged."""
    from sklearn.metrics import roc_auc_score

    from pipeline.evaluation.ensemble import StackedEnsemble
    from pipeline.model.classifier import Classifier

    val, held = _records(run, "val"), _records(run, "val_source")
    classifier, base = Classifier.load(run / "train" / "classifier", device="cpu"), fitted_baseline(run, seed)
    m_val, m_held = classifier.score_records(val, 32), classifier.score_records(held, 32)
    b_val, b_held = (base.predict_proba([r.text for r in rows]) for rows in (val, held))
    stack = StackedEnsemble()
    stack.fit([r.y for r in val], m_val, b_val, seed=seed)
    y = [r.y for r in held]
    return {"val_source_roc_auc": round(float(roc_auc_score(y, m_held)), 4),
            "ensemble_val_source_roc_auc": round(float(roc_auc_score(y, stack.predict(m_held, b_held))), 4)}


def collect(pattern: str, seeds: list[int], val_source: bool = False) -> list[dict]:
    runs = []
    for seed in seeds:
        run = Path(pattern.format(seed=seed))
        counts = read_json(run / "train" / "manifest.json")["counts"]
        runs.append({"seed": seed, "val_loss": round(counts["val_loss_end"], 4),
                     "val_roc_auc": round(counts["val_roc_auc_end"], 4), "train_seconds": counts["train_seconds"],
                     "epochs": counts["epochs"], "best_checkpoint": counts["best_checkpoint"]})
        if val_source:
            runs[-1].update(val_source_aucs(run, seed))
    return runs


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", help="NAME=RUN_DIR_PATTERN with {seed} in the pattern")
    p.add_argument("--reference", required=True, help="NAME=RUN_DIR_PATTERN of the config the others are paired with")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--what", default="", help="what was run, for the record")
    p.add_argument("--val-source", action="store_true", help="also score the out-of-source validation split (runs "
                   "made with data.split.source_val_size > 0)")
    p.add_argument("--out", help="the JSON file to write (default benchmarks/results/compare_val_runs.json)")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    ref_name, ref_pattern = a.reference.split("=", 1)
    reference = collect(ref_pattern, seeds, a.val_source)
    splits = ["val", "val_source"] if a.val_source else ["val"]
    result = {"what": a.what, "seeds": seeds, "reference": ref_name, "configs": {}}
    for split in splits:
        baseline = [round(baseline_auc(Path(ref_pattern.format(seed=s)), s, split), 4) for s in seeds]
        result[f"baseline_{split}_roc_auc"] = {"per_seed": baseline, **_mean_sd(baseline)}
    for name, pattern in [(ref_name, ref_pattern)] + [c.split("=", 1) for c in a.configs]:
        runs = reference if name == ref_name else collect(pattern, seeds, a.val_source)
        entry = {"runs": runs, "val_loss": _mean_sd([r["val_loss"] for r in runs]),
                 "val_roc_auc": _mean_sd([r["val_roc_auc"] for r in runs]),
                 "train_seconds": _mean_sd([r["train_seconds"] for r in runs])}
        if a.val_source:
            for key in ("val_source_roc_auc", "ensemble_val_source_roc_auc"):
                entry[key] = _mean_sd([r[key] for r in runs])
        if name != ref_name:
            d_auc = [r["val_roc_auc"] - q["val_roc_auc"] for r, q in zip(runs, reference)]
            d_loss = [r["val_loss"] - q["val_loss"] for r, q in zip(runs, reference)]
            entry["paired_vs_reference"] = {"val_roc_auc": _mean_sd(d_auc), "val_loss": _mean_sd(d_loss),
                                            "seeds_auc_higher": sum(d > 0 for d in d_auc),
                                            "seeds_loss_lower": sum(d < 0 for d in d_loss)}
        result["configs"][name] = entry
        paired = entry.get("paired_vs_reference")
        print(f"{name:12s} val loss {entry['val_loss']['mean']:.4f} ± {entry['val_loss']['sd']:.4f}  ROC AUC "
              f"{entry['val_roc_auc']['mean']:.4f} ± {entry['val_roc_auc']['sd']:.4f}  train "
              f"{entry['train_seconds']['mean']:.0f} s" + (
                  f"  paired dAUC {paired['val_roc_auc']['mean']:+.4f} ({paired['seeds_auc_higher']}/{len(seeds)} "
                  f"higher), dloss {paired['val_loss']['mean']:+.4f}" if paired else "") + (
                  f"  out-of-source val ROC AUC {entry['val_source_roc_auc']['mean']:.4f} ± "
                  f"{entry['val_source_roc_auc']['sd']:.4f} (ensemble "
                  f"{entry['ensemble_val_source_roc_auc']['mean']:.4f}"
                  f" ± {entry['ensemble_val_source_roc_auc']['sd']:.4f})" if a.val_source else ""))
    for split in splits:
        b = result[f"baseline_{split}_roc_auc"]
        print(f"TF-IDF baseline {split} ROC AUC {b['mean']:.4f} ± {b['sd']:.4f}")
    write_result("compare_val_runs", a.out, result)
    return result


if __name__ == "__main__":
    main()
