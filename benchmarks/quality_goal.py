"""The quality goal, checked in one command: the per-language test table over seeds, the model against the baseline.

    python -m benchmarks.quality_goal --seeds 1,2,3                     # configs/tiny.yaml on the shared dev set
    python -m benchmarks.quality_goal --config configs/scriptguard.yaml --seeds 1,2,3   # a GPU host with the 3B weights
    python -m benchmarks.quality_goal --runs '/tmp/q/test-s{seed}' --seeds 1,2,3        # read finished runs, train none

For each seed, `sgpipe all --until evaluate` runs in a fresh directory (sgpipe reuses a stage whose config is
unchanged, so a directory left by other code would be read back as this code's). Its test split is read once, by
evaluate, as in any run. The table gives test ROC AUC per language and overall, for the model, the TF-IDF baseline and
the ensemble when the config serves one: each seed's figure, the mean and the sd, and on how many seeds the model was
at least the baseline (paired: same split, same training rows).

The goal (issue 13): in every language with `--min-scripts` or more scripts in the data (after ingest, before dedup:
what the user brought), the model's mean test ROC AUC is at least the baseline's, and its overall mean is at least
`--overall`. A language with fewer scripts is listed but not judged: its test split holds too few scripts to say.

Select configs on validation (benchmarks.compare_val_runs, benchmarks.source_folds) before running this: it reads test.
Only aggregate figures go into the JSON (no script, id, path or source name).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmarks.common import REPO, SHARED_DEV, TINY_DATA, machine_info, write_result
from benchmarks.compare_val_runs import _mean_sd

SCORERS = ("model", "baseline", "ensemble")
OVERALL = "all"


def run_seed(data: str, config: str, overrides: list[str], seed: int, run_dir: Path) -> Path:
    """`sgpipe all --until evaluate` on `data` with run.seed=`seed`, in a fresh `run_dir`."""
    from pipeline.config import load_config
    from pipeline.run.runner import run_pipeline

    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(config, overrides=[*overrides, f"run.seed={seed}"], inputs=[data])
    run_pipeline(cfg, run_dir, until="evaluate", log=lambda m: None)
    return run_dir


def read_run(run: Path) -> dict:
    """One evaluated run: {"scripts": {lang: n in the data}, "test": {lang | "all": {scorer: ROC AUC, "n": n}}}."""
    from pipeline.run.records import read_json

    metrics = read_json(run / "evaluate" / "metrics.json")
    test: dict[str, dict] = {}
    for scorer in SCORERS:
        figures = metrics.get(scorer)
        if not figures:  # no baseline, or no ensemble, in this config
            continue
        test.setdefault(OVERALL, {"n": figures["n"]})[scorer] = figures["roc_auc"]
        for lang, m in figures.get("per_lang", {}).items():
            if isinstance(m, dict) and m.get("roc_auc") is not None:
                test.setdefault(lang, {"n": m["n"]})[scorer] = m["roc_auc"]
    scripts = read_json(run / "ingest" / "manifest.json")["counts"]["per_lang"]  # ingest counted them already
    return {"scripts": scripts, "test": test}


def table(runs: list[dict]) -> dict:
    """Per row (each language, and "all"): test scripts, scripts in the data, each scorer's figures over the seeds, and
    the seeds on which the model was at least the baseline. A row enters only when every run scored it."""
    rows = {}
    names = [OVERALL, *sorted({lang for r in runs for lang in r["test"]} - {OVERALL})]
    for name in names:
        per_run = [r["test"].get(name) for r in runs]
        if any(p is None for p in per_run):
            continue
        row = {"test_scripts": per_run[0]["n"],
               "scripts": sum(runs[0]["scripts"].values()) if name == OVERALL else runs[0]["scripts"].get(name, 0)}
        for scorer in SCORERS:
            if all(scorer in p for p in per_run):
                values = [p[scorer] for p in per_run]
                row[scorer] = {"per_seed": [round(v, 4) for v in values], **_mean_sd(values)}
        if "baseline" in row:
            row["seeds_model_at_least_baseline"] = sum(p["model"] >= p["baseline"] for p in per_run)
        rows[name] = row
    return rows


def judge(rows: dict, min_scripts: int, overall: float) -> dict:
    """The goal, row by row: the model's mean at least the baseline's in every language with `min_scripts`+ scripts,
    and the model's overall mean at least `overall`."""
    if "baseline" not in rows[OVERALL]:
        raise ValueError("the runs have no TF-IDF baseline, and the goal compares the model with it: run them with "
                         "evaluation.baseline=true")
    languages = {}
    for name, row in rows.items():
        if name == OVERALL or row["scripts"] < min_scripts or "baseline" not in row:
            continue
        gap = round(row["model"]["mean"] - row["baseline"]["mean"], 4)
        languages[name] = {"model_minus_baseline": gap, "met": gap >= 0}
    model_overall = rows[OVERALL]["model"]["mean"]
    met_overall = model_overall >= overall
    return {"min_scripts": min_scripts, "overall_target": overall,
            "overall": {"model": model_overall, "met": met_overall}, "languages": languages,
            "languages_behind": sorted(k for k, v in languages.items() if not v["met"]),
            "met": met_overall and all(v["met"] for v in languages.values())}


def print_table(rows: dict, goal: dict) -> None:
    scorers = [s for s in SCORERS if any(s in row for row in rows.values())]
    print("| language (test scripts, in data) | " + " | ".join(scorers) + " | model >= baseline |")
    print("|---|" + "---|" * (len(scorers) + 1))
    for name, row in rows.items():
        judged = name == OVERALL or name in goal["languages"]
        cells = [f"{row[s]['mean']:.3f} +- {row[s]['sd']:.3f}" if s in row else "" for s in scorers]
        seeds = f"{row['seeds_model_at_least_baseline']} of {len(row['model']['per_seed'])} seeds"
        print(f"| {name} ({row['test_scripts']}, {row['scripts']}){'' if judged else ' not judged'} | "
              + " | ".join(cells) + f" | {seeds} |")
    behind = ", ".join(goal["languages_behind"]) or "none"
    print(f"goal {'met' if goal['met'] else 'not met'}: overall model {goal['overall']['model']:.3f} "
          f"(target {goal['overall_target']}); languages with {goal['min_scripts']}+ scripts where the model is behind "
          f"the baseline: {behind}")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED_DEV if SHARED_DEV.exists() else TINY_DATA),
                   help="labelled data (default: the shared dev set when it is there, else data/tiny)")
    p.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    p.add_argument("--seeds", default="1,2,3", help="comma-separated run.seed values (3 or more for a spread)")
    p.add_argument("--runs", default=None, help="read finished runs at this pattern ({seed} filled in) instead of "
                   "training: each must have been run through evaluate")
    p.add_argument("--work", default="/tmp/sgpipe-quality-goal", help="where the runs are written")
    p.add_argument("--min-scripts", type=int, default=100, help="languages with fewer scripts in the data are not "
                   "judged")
    p.add_argument("--overall", type=float, default=0.95, help="the model's overall test ROC AUC target")
    p.add_argument("--what", default="", help="what the runs are, for the JSON")
    p.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/quality_goal.json)")
    a = p.parse_args(argv)

    seeds = [int(s) for s in a.seeds.split(",")]
    if a.runs:
        dirs = [Path(a.runs.format(seed=s)) for s in seeds]
    else:
        dirs = []
        for s in seeds:
            dirs.append(run_seed(a.data, a.config, a.overrides, s, Path(a.work) / f"seed{s}"))
            print(f"seed {s}: evaluated in {dirs[-1]}", flush=True)
    rows = table([read_run(d) for d in dirs])
    try:
        goal = judge(rows, a.min_scripts, a.overall)
    except ValueError as e:
        p.error(str(e))
    print_table(rows, goal)
    write_result("quality_goal", a.out, {
        "what": a.what, "machine": machine_info(0), "data": Path(a.data).name if not a.runs else None,
        "config": Path(a.config).name if not a.runs else None, "overrides": a.overrides if not a.runs else None,
        "seeds": seeds, "rows": rows, "goal": goal})
    return {"rows": rows, "goal": goal}


if __name__ == "__main__":
    main()
