"""Leave-source-out cross-validation: every script is scored by a model that never trained on its source.

    python -m benchmarks.source_folds --name default
    python -m benchmarks.source_folds --name probability_1 --set data.augment.probability=1.0

A held-out-source split of 15% (data.split.source_val_size) holds 2-9 sources of the shared dev set, so its ROC AUC
swings by 0.1-0.2 with the seed and one pair of sources can decide a comparison. Folds use every source once: the
sources are dealt into K folds (malicious-majority sources first, then benign ones, each to the fold with the fewest
scripts of that label so far, ties broken by a seeded shuffle), and for each fold `sgpipe all --until train` runs on
the other folds' scripts (the config's own dedup, train/val split, augment and balance), after which the fold's
scripts are scored by the trained classifier, by the TF-IDF baseline fit on that run's balanced train rows (as
evaluate fits it) and by the stacked ensemble fit on that run's in-distribution val. Reported: ROC AUC over all
held-out scripts pooled, per language pooled, and per fold (mean and sd over the folds that hold both labels).
Scores of different fold models are pooled as they are: the pooled figure also asks that one model's scores mean
the same across runs, which the per-fold figures do not.

Reads ../shared/data/dev.jsonl.gz (or --data); writes derived files only under --work, and only aggregate figures
(no script, id or source name) into benchmarks/results/<out>.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, SHARED_DEV, machine_info, rounded_roc_auc, write_result

LABELS = ("malicious", "benign")


def assign_folds(sources: dict[str, Counter], k: int, seed: int) -> dict[str, int]:
    """Source -> fold. Each source goes whole into one fold; every fold gets a share of each label's scripts."""
    names = sorted(sources)
    random.Random(seed).shuffle(names)
    load = {label: [0] * k for label in LABELS}
    fold = {}
    for label in LABELS:
        mine = [s for s in names if max(LABELS, key=lambda lab: (sources[s][lab], lab == "malicious")) == label]
        for source in sorted(mine, key=lambda s: -sum(sources[s].values())):  # largest first: greedy balance
            fold[source] = min(range(k), key=lambda f: load[label][f])
            load[label][fold[source]] += sources[source][label]
    return fold


def run_fold(rows: list[dict], held: list[dict], run_dir: Path, config: str, overrides: list[str]) -> dict:
    """Train on `rows` in `run_dir`; score `held` with the model, the baseline and the stacked ensemble."""
    from benchmarks.compare_val_runs import fitted_baseline
    from pipeline.config import load_config
    from pipeline.evaluation.ensemble import StackedEnsemble
    from pipeline.model.classifier import Classifier
    from pipeline.run.records import read_json, read_records
    from pipeline.run.runner import run_pipeline

    # A fresh directory: sgpipe reuses a stage whose config is unchanged, so runs left by an earlier version of the
    # code under the same --name would be read back as this version's (it happened: a rerun of a changed balance
    # stage returned the old folds' figures to the fourth digit).
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    for name, part in (("train_sources.jsonl", rows), ("held_sources.jsonl", held)):
        with open(run_dir / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    cfg = load_config(config, overrides=overrides, inputs=[str(run_dir / "train_sources.jsonl")])
    run_pipeline(cfg, run_dir / "run", until="train", log=lambda m: None)
    # the held-out scripts go through ingest too, so they are read exactly as a user's file would be
    held_cfg = load_config(config, overrides=overrides, inputs=[str(run_dir / "held_sources.jsonl")])
    run_pipeline(held_cfg, run_dir / "held", until="ingest", log=lambda m: None)
    test = list(read_records(run_dir / "held" / "ingest" / "records.jsonl"))
    val = list(read_records(run_dir / "run" / "split" / "val.jsonl"))

    classifier = Classifier.load(run_dir / "run" / "train" / "classifier", device="cpu")
    baseline = fitted_baseline(run_dir / "run", cfg.run.seed)
    scores = {}
    for split, records in (("val", val), ("held", test)):
        scores[split] = (np.array([r.y for r in records]), classifier.score_records(records, 32),
                         baseline.predict_proba([r.text for r in records]))
    stack = StackedEnsemble()
    stack.fit(*scores["val"], seed=cfg.run.seed)
    y, model, base = scores["held"]
    counts = read_json(run_dir / "run" / "train" / "manifest.json")["counts"]
    return {"y": y, "lang": [r.lang for r in test], "model": np.asarray(model), "baseline": np.asarray(base),
            "ensemble": stack.predict(model, base), "val_roc_auc": counts.get("val_roc_auc_end"),
            "train_seconds": counts.get("train_seconds")}


def summarise(folds: list[dict]) -> dict:
    scorers = ("model", "baseline", "ensemble")
    y = np.concatenate([f["y"] for f in folds])
    lang = np.array([x for f in folds for x in f["lang"]])
    pooled = {s: np.concatenate([f[s] for f in folds]) for s in scorers}
    out = {"n": int(len(y)), "pooled": {s: rounded_roc_auc(y, pooled[s]) for s in scorers}, "per_lang": {},
           "per_fold": {}}
    for name in sorted(set(lang.tolist())):
        mask = lang == name
        if mask.sum() >= 20 and len(set(y[mask].tolist())) == 2:
            out["per_lang"][name] = {"n": int(mask.sum()),
                                     **{s: rounded_roc_auc(y[mask], pooled[s][mask]) for s in scorers}}
    for s in scorers:
        aucs = [a for a in (rounded_roc_auc(f["y"], f[s]) for f in folds) if a is not None]
        out["per_fold"][s] = {"per_fold": aucs, "mean": round(statistics.mean(aucs), 4),
                              "sd": round(statistics.stdev(aucs), 4) if len(aucs) > 1 else 0.0}
    out["folds_in_distribution_val_roc_auc"] = [f["val_roc_auc"] for f in folds]
    out["train_seconds"] = [f["train_seconds"] for f in folds]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED_DEV), help="labelled JSONL(.gz) with a `source` field")
    p.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    p.add_argument("--name", default="default", help="what this config is called in the results")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1, help="run.seed of every fold run, and the fold shuffle")
    p.add_argument("--work", default="/tmp/sgpipe-source-folds", help="where fold data and runs are written")
    p.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/source_folds_<name>.json)")
    a = p.parse_args(argv)

    opener = gzip.open if a.data.endswith(".gz") else open
    with opener(a.data, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    by_source: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_source[r.get("source") or "?"][r["label"]] += 1
    fold_of = assign_folds(by_source, a.folds, a.seed)
    overrides = [*a.overrides, f"run.seed={a.seed}"]
    folds = []
    for k in range(a.folds):
        held = [r for r in rows if fold_of[r.get("source") or "?"] == k]
        rest = [r for r in rows if fold_of[r.get("source") or "?"] != k]
        folds.append(run_fold(rest, held, Path(a.work) / a.name / f"fold{k}", a.config, overrides))
        f = folds[-1]
        print(f"fold {k}: {len(held)} held-out scripts ({Counter(r['label'] for r in held)['malicious']} malicious) "
              f"from {sum(v == k for v in fold_of.values())} sources; model {rounded_roc_auc(f['y'], f['model'])}, "
              f"baseline {rounded_roc_auc(f['y'], f['baseline'])}, ensemble {rounded_roc_auc(f['y'], f['ensemble'])}",
              flush=True)
    result = summarise(folds)
    print(f"{a.name}: pooled ROC AUC model {result['pooled']['model']}, baseline {result['pooled']['baseline']}, "
          f"ensemble {result['pooled']['ensemble']}; per fold model {result['per_fold']['model']['mean']} ± "
          f"{result['per_fold']['model']['sd']}, baseline {result['per_fold']['baseline']['mean']} ± "
          f"{result['per_fold']['baseline']['sd']}")
    for lang, m in result["per_lang"].items():
        print(f"  {lang:11s} n {m['n']:4d}  model {m['model']}  baseline {m['baseline']}  ensemble {m['ensemble']}")
    write_result(f"source_folds_{a.name}", a.out, {
        "machine": machine_info(1), "data": Path(a.data).name, "config": Path(a.config).name,
        "overrides": a.overrides, "folds": a.folds, "seed": a.seed, "sources": len(by_source),
        "fold_sizes": [sum(sum(by_source[s].values()) for s, v in fold_of.items() if v == k) for k in range(a.folds)],
        "result": result})
    return result


if __name__ == "__main__":
    main()
