"""Read one-factor sweeps run once per seed (`sgpipe sweep --seeds` or `--set run.seed=N` per sweep) and write the
table issue 13 asks for: per config, mean and spread over seeds of the validation figures (the model's per-language
val ROC AUC beside the TF-IDF baseline's, fit on the same balanced train rows), training stability (largest rise
of val loss between two evaluations, epochs trained), train time; and, where the runs held whole sources out
(data.split.source_val_size / source_test_size), which selection rule ranks the configs as the out-of-source test
split does (item 9).

    python -m benchmarks.quality_sweep runs/q-sweep-s1 runs/q-sweep-s2 runs/q-sweep-s3 --out quality_sweep

Nothing but aggregate figures goes into the JSON and CSV (no script, id or path of the data).
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS
from pipeline.experiments.compare import TRIAL_FILE, TRIALS, run_metrics
from pipeline.run.records import read_json, read_records, write_json

# Selection rules for item 9: a validation figure and the direction that is better.
RULES = {"val_loss": -1, "val_roc_auc": 1, "val_source_loss": -1, "val_source_roc_auc": 1}
REFERENCE = "test_source_roc_auc"  # what a rule should predict: ROC AUC on sources no split of the run holds


def _auc(y: list[int], s: list[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else None


def per_language_auc(labels: list[int], scores: list[float], langs: list[str]) -> dict[str, float]:
    by = defaultdict(lambda: ([], []))
    for y, s, lang in zip(labels, scores, langs):
        by[lang][0].append(y)
        by[lang][1].append(s)
    return {lang: a for lang, (y, s) in sorted(by.items()) if (a := _auc(y, s)) is not None}


_BASELINE_CACHE: dict[str, dict] = {}


def _seed(trial: Path) -> int:
    import yaml

    return yaml.safe_load((trial / "config.yaml").read_text(encoding="utf-8"))["run"]["seed"]


def baseline_val(trial: Path) -> dict:
    """The TF-IDF baseline's val ROC AUC (overall and per language), fit on the trial's balanced train rows as
    evaluate fits it; cached by the data's digest (trials of one seed share their data)."""
    from pipeline.evaluation.baseline import TfidfBaseline

    key = read_json(trial / "balance" / "manifest.json")["output_digest"] + read_json(
        trial / "split" / "manifest.json")["output_digest"]
    if key not in _BASELINE_CACHE:
        seed = _seed(trial)
        train = list(read_records(trial / "balance" / "train.jsonl"))
        val = list(read_records(trial / "split" / "val.jsonl"))
        base = TfidfBaseline(seed=seed).fit([r.text for r in train], np.array([r.y for r in train]))
        scores = base.predict_proba([r.text for r in val]).tolist()
        labels = [r.y for r in val]
        _BASELINE_CACHE[key] = {"overall": _auc(labels, scores),
                                "per_lang": per_language_auc(labels, scores, [r.lang for r in val])}
    return _BASELINE_CACHE[key]


def stability(trial: Path) -> dict:
    """Largest ratio of one val loss to the one before (2.0 = doubled), epochs and steps trained."""
    history = read_json(trial / "train" / "log_history.json")
    losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    trained = losses[1:]  # the first is the untrained model's
    jumps = [b / a for a, b in zip(trained, trained[1:]) if a > 0]
    counts = read_json(trial / "train" / "manifest.json")["counts"]
    return {"max_val_loss_jump": max(jumps, default=1.0), "epochs": counts["epochs"], "steps": counts["steps"]}


def read_trial(trial: Path) -> dict | None:
    info = read_json(trial / TRIAL_FILE)
    if info.get("status") != "ok":
        return None
    seed = _seed(trial)
    val = [json.loads(line) for line in (trial / "evaluate" / "val_predictions.jsonl").read_text().splitlines()]
    labels, scores = [int(v["label"] == "malicious") for v in val], [v["score"] for v in val]
    figures = run_metrics(trial)
    return {"changes": info["changes"], "seed": seed, "trial": trial.name, "seconds": info["seconds"],
            "model_val_roc_auc": _auc(labels, scores),
            "model_val_per_lang": per_language_auc(labels, scores, [v["lang"] for v in val]),
            "baseline_val": baseline_val(trial), **stability(trial),
            **{k: figures.get(k) for k in (*RULES, REFERENCE, "test_roc_auc", "train_seconds")}}


def _mean_sd(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per config (its changes), figures as mean and sd over its seeds."""
    by = defaultdict(list)
    for r in rows:
        by[json.dumps(r["changes"], sort_keys=True)].append(r)
    table = []
    for key, runs in by.items():
        langs = sorted({lang for r in runs for lang in r["model_val_per_lang"]})
        row = {"changes": json.loads(key), "seeds": sorted(r["seed"] for r in runs),
               **{k: _mean_sd([r[k] for r in runs]) for k in (*RULES, REFERENCE, "test_roc_auc", "model_val_roc_auc",
                                                               "train_seconds", "epochs", "max_val_loss_jump")},
               "baseline_val_roc_auc": _mean_sd([r["baseline_val"]["overall"] for r in runs]),
               "val_per_lang": {lang: {"model": _mean_sd([r["model_val_per_lang"].get(lang) for r in runs]),
                                       "baseline": _mean_sd([r["baseline_val"]["per_lang"].get(lang) for r in runs])}
                                for lang in langs},
               "worst_val_loss_jump": round(max(r["max_val_loss_jump"] for r in runs), 3),
               "min_epochs": min(r["epochs"] for r in runs)}
        row["languages_model_beats_baseline_on_val"] = sum(
            (v["model"]["mean"] or 0) >= (v["baseline"]["mean"] or 1) for v in row["val_per_lang"].values())
        table.append(row)
    return sorted(table, key=lambda r: (r["changes"] != {}, -(r["model_val_roc_auc"]["mean"] or 0)))


def _ranks(values: list[float], sign: int) -> list[float]:
    from scipy.stats import rankdata

    return rankdata([-sign * v for v in values]).tolist()  # rank 1 = best


def selection(table: list[dict], rows: list[dict]) -> dict:
    """For each rule: Spearman's rho and Kendall's tau between the configs' mean figure and their mean out-of-source
    test ROC AUC, the config it picks and that config's out-of-source test ROC AUC (vs the best possible); and the
    same per seed (what one run per config would have decided)."""
    from scipy.stats import kendalltau, spearmanr

    scored = [r for r in table if r[REFERENCE]["mean"] is not None and all(r[k]["mean"] is not None for k in RULES)]
    if len(scored) < 3:
        return {}
    reference = [r[REFERENCE]["mean"] for r in scored]
    out = {"configs": len(scored), "reference": REFERENCE, "best_reference": max(reference), "rules": {}}
    for rule, sign in RULES.items():
        values = [sign * r[rule]["mean"] for r in scored]
        pick = scored[int(np.argmax(values))]
        per_seed = []
        for seed in sorted({r["seed"] for r in rows}):
            seeded = {json.dumps(r["changes"], sort_keys=True): r for r in rows if r["seed"] == seed}
            pairs = [(sign * s[rule], s[REFERENCE]) for s in seeded.values()
                     if s[rule] is not None and s[REFERENCE] is not None]
            if len(pairs) >= 3:
                per_seed.append(spearmanr(*zip(*pairs)).statistic)
        out["rules"][rule] = {
            "spearman": round(float(spearmanr(values, reference).statistic), 3),
            "kendall": round(float(kendalltau(values, reference).statistic), 3),
            "spearman_per_seed": [round(float(x), 3) for x in per_seed],
            "picks": pick["changes"], "picked_reference": pick[REFERENCE]["mean"]}
    return out


def test_table(rows: list[dict], sweeps: list[Path]) -> list[dict]:
    """Per config: test ROC AUC of model, baseline and ensemble (when the runs had one), overall and per language,
    mean and sd over seeds. Only for the final comparison of the chosen config with the current one: configs are
    chosen on validation, test is read once."""
    by = defaultdict(list)
    for sweep in sweeps:
        for t in sorted((sweep / TRIALS).iterdir()):
            info = read_json(t / TRIAL_FILE) if (t / TRIAL_FILE).is_file() else {}
            if info.get("status") == "ok":
                by[json.dumps(info["changes"], sort_keys=True)].append(read_json(t / "evaluate" / "metrics.json"))
    table = []
    for key, runs in by.items():
        scorers = [k for k in ("model", "baseline", "ensemble") if all(run.get(k) for run in runs)]
        langs = sorted({lang for run in runs for lang in run["model"]["per_lang"]})
        row = {"changes": json.loads(key), "n_seeds": len(runs), "test_n": [run["model"]["n"] for run in runs]}
        for scorer in scorers:
            row[scorer] = {"all": _mean_sd([run[scorer]["roc_auc"] for run in runs]),
                           **{lang: _mean_sd([run[scorer]["per_lang"].get(lang, {}).get("roc_auc") for run in runs])
                              for lang in langs}}
        table.append(row)
    return table


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep directories (one per seed, or one with --seeds)")
    parser.add_argument("--out", default="quality_sweep", help="name of the JSON and CSV in benchmarks/results/")
    parser.add_argument("--note", default="", help="machine and load, recorded with the figures")
    parser.add_argument("--test", action="store_true", help="also the test table (model, baseline, ensemble per "
                        "language): for the final comparison of chosen configs only, never to choose")
    args = parser.parse_args(argv)
    rows = [r for sweep in args.sweeps for t in sorted((sweep / TRIALS).iterdir())
            if (t / TRIAL_FILE).is_file() and (r := read_trial(t)) is not None]
    table = aggregate(rows)
    result = {"sweeps": [str(s) for s in args.sweeps], "note": args.note, "configs": table,
              "selection": selection(table, rows), "runs": rows}
    if args.test:
        result["test"] = test_table(rows, args.sweeps)
        for r in result["test"]:
            print(json.dumps(r["changes"]), *(f"{scorer}: " + ", ".join(
                f"{lang} {v['mean']}±{v['sd']}" for lang, v in r[scorer].items())
                for scorer in ("model", "baseline", "ensemble") if scorer in r), sep="\n  ")
    write_json(RESULTS / f"{args.out}.json", result)
    with open(RESULTS / f"{args.out}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        langs = sorted({lang for r in table for lang in r["val_per_lang"]})
        w.writerow(["changes", "seeds", "val_loss", "val_loss_sd", "model_val_roc_auc", "sd", "baseline_val_roc_auc",
                    *[f"{lang}_model/baseline" for lang in langs], "val_source_roc_auc", "test_source_roc_auc",
                    "worst_val_loss_jump", "min_epochs", "train_seconds"])
        for r in table:
            w.writerow([json.dumps(r["changes"]), len(r["seeds"]), r["val_loss"]["mean"], r["val_loss"]["sd"],
                        r["model_val_roc_auc"]["mean"], r["model_val_roc_auc"]["sd"], r["baseline_val_roc_auc"]["mean"],
                        *[f"{r['val_per_lang'].get(lang, {}).get('model', {}).get('mean')}/"
                          f"{r['val_per_lang'].get(lang, {}).get('baseline', {}).get('mean')}" for lang in langs],
                        r["val_source_roc_auc"]["mean"], r[REFERENCE]["mean"], r["worst_val_loss_jump"],
                        r["min_epochs"], r["train_seconds"]["mean"]])
    for r in table:
        print(f"{json.dumps(r['changes']):60s} val_loss {r['val_loss']['mean']} ±{r['val_loss']['sd']}  val AUC "
              f"{r['model_val_roc_auc']['mean']} ±{r['model_val_roc_auc']['sd']} (tfidf "
              f"{r['baseline_val_roc_auc']['mean']})  langs won {r['languages_model_beats_baseline_on_val']}  "
              f"oos val {r['val_source_roc_auc']['mean']} oos test {r[REFERENCE]['mean']}  jump "
              f"{r['worst_val_loss_jump']}  {r['train_seconds']['mean']} s")
    print(json.dumps(result["selection"], indent=1))
    return result


if __name__ == "__main__":
    main()
