"""compare on planted runs (manifests and logs written by hand): only the parameters that differ are listed, the best
run follows each metric's direction, CSV cells cannot run as spreadsheet formulas, markdown cells cannot break the
table, and each varied parameter gets a sensitivity plot."""
import csv
import io
import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.experiments.compare import CompareError, compare, csv_cell, sensitivity, to_csv, to_markdown, write
from pipeline.run.rundir import RunDir
from pipeline.config import Config, load_config

from .conftest import TINY_CONFIG


def _plant(path, overrides, val_loss, test_roc_auc, seconds):
    """A finished run as the runner leaves it: manifests with config slices and counts, and a log history."""
    cfg = load_config(TINY_CONFIG, overrides=overrides)
    stages = {"train": (("model", "lora", "training", "run.seed"),
                        {"val_loss_end": val_loss, "val_roc_auc_end": 0.9, "train_seconds": seconds}),
              "evaluate": (("evaluation", "run.seed"),
                           {"eval_loss": val_loss + 0.05, "roc_auc": test_roc_auc, "sensitivity": 0.8,
                            "specificity": 0.9}),
              "split": (("data.split", "run.seed"), {})}
    for stage, (reads, counts) in stages.items():
        (path / stage).mkdir(parents=True)
        (path / stage / "manifest.json").write_text(json.dumps(
            {"stage": stage, "config": {k: cfg.slice(k) for k in reads}, "counts": counts}))
    (path / "train" / "log_history.json").write_text(json.dumps(
        [{"loss": 0.5, "step": 1}, {"train_loss": 0.5, "step": 2},
         {"eval_loss": val_loss, "eval_roc_auc": 0.9, "eval_balanced_accuracy": 0.85, "step": 2}]))
    return path


@pytest.fixture
def runs(tmp_path):
    return [_plant(tmp_path / "a", ["training.learning_rate=1e-3", "model.model_id=tiny-starcoder2"], 0.40, 0.90, 10.0),
            _plant(tmp_path / "b", ["training.learning_rate=3e-3", "data.split.val_size=0.2"], 0.35, 0.85, 12.0),
            _plant(tmp_path / "c", ["training.learning_rate=3e-3", "run.name=other"], 0.45, 0.95, 8.0)]


def test_only_differing_parameters_and_every_metric(runs):
    c = compare(runs)
    assert [r.name for r in c.rows] == ["a", "b", "c"]
    assert c.varied == ["data.split.val_size", "training.learning_rate"]  # run.name is a label, not a parameter
    assert c.rows[1].params["data.split.val_size"] == 0.2 and c.rows[0].metrics["test_loss"] == pytest.approx(0.45)
    assert c.rows[0].metrics["val_balanced_accuracy"] == 0.85
    Config.model_validate(RunDir(runs[0]).config())  # a run's config reads back as a valid config


def test_best_follows_the_metric_direction_and_warns_about_test_selection(runs):
    assert compare(runs).best.name == "b"  # lowest validation loss
    by_test = compare(runs, "test_roc_auc")
    assert by_test.best.name == "c" and any("selection set" in n for n in by_test.notes)
    assert compare(runs, "train_seconds").best.name == "c"
    with pytest.raises(CompareError, match="val_loss"):
        compare(runs, "accuracy")


def test_sensitivity_groups_runs_by_value(runs):
    points = {p["value"]: p for p in sensitivity(compare(runs))["training.learning_rate"]}
    assert points["0.003"]["n"] == 2 and points["0.003"]["mean"] == pytest.approx(0.40)
    assert points["0.003"]["std"] == pytest.approx(0.05) and points["0.001"]["n"] == 1


def test_csv_cells_cannot_become_formulas():
    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert [csv_cell(v) for v in ("+1+2", "@SUM(A1)", "-2+3", "\tx")] == ["'+1+2", "'@SUM(A1)", "'-2+3", "'\tx"]
    assert [csv_cell(v) for v in ("-1", "1e-05", "abc", -1, 0.5)] == ["-1", "1e-05", "abc", "-1", "0.5"]


def test_hostile_values_stay_inert_in_csv_and_markdown(tmp_path, runs):
    evil = _plant(tmp_path / "evil", ["model.model_id==cmd|calc", "training.learning_rate=3e-3"], 0.5, 0.5, 1.0)
    c = compare([*runs, evil])
    rows = list(csv.reader(io.StringIO(to_csv(c))))
    column = rows[0].index("model.model_id")
    assert rows[-1][column] == "'=cmd|calc"
    table_lines = [line for line in to_markdown(c).splitlines() if line.startswith("| evil")]
    assert len(table_lines) == 1 and r"=cmd\|calc" in table_lines[0]  # the pipe is escaped: no extra column


def test_write_and_cli(runs, tmp_path):
    files = write(compare(runs), tmp_path / "out")
    assert (tmp_path / "out" / "sensitivity_training.learning_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files["best"].read_text())["run"] == "b"
    result = CliRunner().invoke(app, ["compare", *map(str, runs), "--metric", "val_roc_auc", "--out",
                                      str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "| a " in result.stdout and (tmp_path / "cli" / "comparison.csv").is_file()
    bad = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "neither a run directory" in bad.output.replace("\n", "")
