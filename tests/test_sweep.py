"""Sweeps on the tiny config: a baseline and trials as full run directories, the data stages computed once and
reused through the runner's cache (no trial reruns one), failed trials recorded while the sweep goes on; Optuna
search with a shared storage that a worker joins; the grid language."""
import json

import pytest

from pipeline.experiments.compare import compare
from pipeline.config import load_config
from pipeline.experiments.diagnose import diagnose
from pipeline.experiments.sweep import (DATA_STAGES, Range, SweepError, data_keys_changed, parse_grid, parse_seeds,
                                        plan_grid, sweep)
from pipeline.experiments.tracking import run_tags

from .conftest import FAST_TRAINING, TINY_CONFIG, TINY_INPUTS

pytestmark = pytest.mark.slow  # a full run per trial
FAST = [*TINY_INPUTS, *FAST_TRAINING, "training.max_steps=8", "training.logging_steps=2",
        "evaluation.bootstrap_samples=100"]


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """Baseline (lr 1e-3), one lr trial, and a trial that fails (no CUDA here); lr=1e-3 equals the baseline."""
    where = tmp_path_factory.mktemp("sweep")
    lines = []
    space = parse_grid(["training.learning_rate=1e-3,3e-3", "model.device=cuda"])
    sweep_dir, trials = sweep(TINY_CONFIG, space, one_at_a_time=True, base_overrides=FAST, sweep_dir=where,
                              log=lines.append)
    return sweep_dir, trials, lines


def test_trials_reuse_the_data_stages_computed_once(grid_sweep):
    sweep_dir, trials, lines = grid_sweep
    assert [t.name for t in trials] == ["000-baseline", "001-learning_rate-0.003", "002-device-cuda"]
    ok = [t for t in trials if t.status == "ok"]
    assert len(ok) == 2
    for t in ok:
        assert t.ran == ["train", "evaluate", "report"] and t.reused == list(DATA_STAGES)  # no data stage reran
        trial_dir = sweep_dir / "trials" / t.name
        for stage in DATA_STAGES:  # the trial's data files are the shared ones, linked, not recomputed
            shared = sweep_dir / "data" / stage / "manifest.json"
            assert (trial_dir / stage / "manifest.json").stat().st_ino == shared.stat().st_ino
    assert any(line.startswith("[data]") and "running" in line for line in lines)  # the data, once
    tags = {t.name: run_tags(load_config(sweep_dir / "trials" / t.name / "config.yaml")) for t in ok}
    assert "phase:baseline" in tags["000-baseline"] and "phase:sweep" in tags["001-learning_rate-0.003"]
    assert not any(t.startswith("tier:") for t in tags["000-baseline"])  # the tiny CPU config is no VRAM tier


def test_tracker_tags_from_the_config():
    assert run_tags(load_config(presets=["vram-24gb"])) == ["phase:iteration", "tier:vram-24gb"]
    tagged = load_config(TINY_CONFIG, overrides=["tracking.tags=[team-a,phase:sweep]"])
    assert run_tags(tagged) == ["team-a", "phase:sweep"]  # a phase given is kept; the tiny config has no tier


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(grid_sweep):
    sweep_dir, trials, _ = grid_sweep
    failed = trials[-1]
    assert failed.status == "failed" and "CUDA" in failed.error
    assert (sweep_dir / "trials" / failed.name / "error.txt").is_file()
    table = json.loads((sweep_dir / "sweep.json").read_text())
    assert [(r["name"], r["status"]) for r in table["trials"]] == [(t.name, t.status) for t in trials]


def test_compare_lists_every_trial_and_picks_the_best_by_validation_loss(grid_sweep, tmp_path):
    sweep_dir, trials, _ = grid_sweep
    c = compare([sweep_dir])
    assert [r.name for r in c.rows] == [t.name for t in trials]
    assert set(c.varied) == {"training.learning_rate", "model.device"}
    ok = [r for r in c.rows if r.status == "ok"]
    assert c.best is min(ok, key=lambda r: r.metrics["val_loss"])
    assert all(r.metrics["test_roc_auc"] is not None and r.metrics["train_seconds"] > 0 for r in ok)


def test_diagnose_reads_a_real_trial(grid_sweep):
    sweep_dir, trials, _ = grid_sweep
    findings = diagnose(sweep_dir / "trials" / trials[0].name)
    codes = {f.code for f in findings}
    assert "summary" in codes and "lr_schedule" not in codes  # the schedule check agrees with a real trainer log


def test_a_rerun_sweep_is_all_cache_hits(grid_sweep):
    sweep_dir, trials, _ = grid_sweep
    space = parse_grid(["training.learning_rate=1e-3,3e-3"])
    _, again = sweep(TINY_CONFIG, space, one_at_a_time=True, base_overrides=FAST, sweep_dir=sweep_dir,
                     log=lambda m: None)
    assert [t.ran for t in again] == [[], []] and [t.status for t in again] == ["ok", "ok"]


def test_optuna_records_failed_trials_and_a_worker_joins_the_study(tmp_path):
    import optuna

    space = parse_grid(["model.device=cuda", "training.learning_rate=1e-4..1e-2"])  # every trial fails fast here
    sweep_dir, first = sweep(TINY_CONFIG, space, base_overrides=FAST, sweep_dir=tmp_path, search="random", trials=2,
                             baseline=False, log=lambda m: None)
    _, joined = sweep(TINY_CONFIG, {}, base_overrides=FAST, sweep_dir=tmp_path, search="random", trials=3,
                      worker=True, log=lambda m: None)
    assert [t.status for t in first + joined] == ["failed"] * 3
    study = optuna.load_study(study_name="sgpipe-tiny", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    assert all(1e-4 <= t.params["training.learning_rate"] <= 1e-2 and "CUDA" in t.user_attrs["error"]
               for t in study.trials)
    with pytest.raises(SweepError, match="weight_decay"):  # a worker with another config cannot join
        sweep(TINY_CONFIG, {}, base_overrides=[*FAST, "training.weight_decay=0.3"], sweep_dir=tmp_path,
              search="random", trials=4, worker=True, log=lambda m: None)
    with pytest.raises(SweepError, match="no study"):
        sweep(TINY_CONFIG, {}, base_overrides=FAST, sweep_dir=tmp_path, search="tpe", trials=4, worker=True,
              study="missing", log=lambda m: None)


def test_grid_language_and_plans():
    space = parse_grid(["training.learning_rate=1e-4,2e-4,1e-4", "lora.target_modules=[q_proj,v_proj],[all-linear]",
                        "lora.r=8..64", "training.weight_decay=0.0..0.3", "training.warmup_ratio=0.01..0.2"])
    assert space["training.learning_rate"] == [1e-4, 2e-4]
    assert space["lora.target_modules"] == [["q_proj", "v_proj"], ["all-linear"]]
    assert space["lora.r"] == Range(8, 64, integer=True, log=False)
    assert not space["training.weight_decay"].log and space["training.warmup_ratio"].log
    with pytest.raises(SweepError, match="twice"):
        parse_grid(["lora.r=8,16", "lora.r=32"])

    base = load_config(TINY_CONFIG)  # lr 1e-3, label smoothing 0.1
    grid = parse_grid(["training.learning_rate=1e-3,3e-3", "training.label_smoothing_factor=0.0,0.1"])
    assert plan_grid(base, grid, one_at_a_time=True) == [{"training.learning_rate": 3e-3},
                                                         {"training.label_smoothing_factor": 0.0}]
    full = plan_grid(base, grid, one_at_a_time=False)
    assert len(full) == 3 and {} not in full  # 2 x 2 combinations minus the one equal to the baseline
    with pytest.raises(SweepError, match="range"):
        plan_grid(base, {"lora.r": Range(8, 64, True, False)}, one_at_a_time=False)
    assert data_keys_changed({"data.dedup.threshold": 0.9}) and not data_keys_changed({"lora.r": 8})


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path):
    where = tmp_path / "never"
    with pytest.raises(SweepError, match="lora.r=0"):
        sweep(TINY_CONFIG, parse_grid(["lora.r=0,8"]), base_overrides=FAST, sweep_dir=where)
    with pytest.raises(SweepError, match="lora.r"):  # the config error names the closest key
        sweep(TINY_CONFIG, parse_grid(["lora_r=8,16"]), base_overrides=FAST, sweep_dir=where)
    with pytest.raises(SweepError, match="validation metric"):
        sweep(TINY_CONFIG, parse_grid(["lora.r=8,16"]), base_overrides=FAST, sweep_dir=where, metric="test_roc_auc")
    with pytest.raises(SweepError, match="--trials"):
        sweep(TINY_CONFIG, parse_grid(["lora.r=8,16"]), base_overrides=FAST, sweep_dir=where, search="tpe")
    with pytest.raises(SweepError, match="--seeds is for --search grid"):
        sweep(TINY_CONFIG, parse_grid(["lora.r=8..16"]), base_overrides=FAST, sweep_dir=where, search="tpe",
              trials=2, seeds=[1, 2])
    with pytest.raises(SweepError, match="distinct"):
        sweep(TINY_CONFIG, parse_grid(["lora.r=8,16"]), base_overrides=FAST, sweep_dir=where, seeds=[1, 1])
    with pytest.raises(SweepError, match="use --seeds"):
        sweep(TINY_CONFIG, parse_grid(["run.seed=1,2"]), base_overrides=FAST, sweep_dir=where, seeds=[1, 2])
    with pytest.raises(SweepError, match="integers"):
        parse_seeds("1,two")
    assert parse_seeds("1, 2,3") == [1, 2, 3] and parse_seeds(None) is None
    assert not where.exists()


def test_seeds_run_every_config_once_per_seed_on_that_seeds_data(tmp_path):
    lines = []
    sweep_dir, trials = sweep(TINY_CONFIG, parse_grid(["training.learning_rate=3e-3"]), one_at_a_time=True,
                              base_overrides=[*FAST, "training.max_steps=4", "training.eval_steps=2",
                                              "training.save_steps=2", "report.faithfulness_scripts=0",
                                              "report.explain_lines=0"],
                              sweep_dir=tmp_path / "seeded", seeds=[1, 2], log=lines.append)
    assert [t.name for t in trials] == ["000-baseline-s1", "000-baseline-s2", "001-learning_rate-0.003-s1",
                                        "001-learning_rate-0.003-s2"]
    assert all(t.status == "ok" and t.reused == list(DATA_STAGES) for t in trials)  # each seed's data, computed once
    for t in trials:
        trial_dir = sweep_dir / "trials" / t.name
        assert load_config(trial_dir / "config.yaml").run.seed == t.seed
        shared = sweep_dir / f"data-s{t.seed}" / "split" / "val.jsonl"
        assert (trial_dir / "split" / "val.jsonl").stat().st_ino == shared.stat().st_ino
    val = {seed: (sweep_dir / f"data-s{seed}" / "split" / "val.jsonl").read_text() for seed in (1, 2)}
    assert val[1] != val[2]  # the seed moves the split too
    table = json.loads((sweep_dir / "sweep.json").read_text())
    assert table["seeds"] == [1, 2]
    by = {json.dumps(c["changes"]): c for c in table["configs"]}
    base, lr = by["{}"], by['{"training.learning_rate": 0.003}']
    assert base["seeds"] == [1, 2] and base["n"] == 2 and lr["n"] == 2
    values = [t.value for t in trials if not t.changes]
    assert base["mean"] == pytest.approx(sum(values) / 2)
    assert base["sd"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
