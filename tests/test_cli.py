"""The command line on data/tiny: the data stages run, cache, rerun from a changed key; errors name the fix."""
import subprocess
import sys

from typer.testing import CliRunner

from pipeline.cli import app

from .conftest import TINY_CONFIG

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_data_stages_twice_then_a_changed_threshold(tmp_path, tiny_overrides):
    common = ["--config", TINY_CONFIG, "--run-dir", tmp_path, *sum((["--set", o] for o in tiny_overrides), [])]
    first = _invoke("all", "--until", "balance", *common)
    assert first.exit_code == 0, first.output
    for stage in ("ingest", "dedup", "split", "augment", "balance"):
        assert f"[{stage}] running" in first.output
    second = _invoke("all", "--until", "balance", *common)
    assert second.exit_code == 0 and "running" not in second.output and second.output.count("up to date") == 5

    changed = _invoke("all", "--until", "balance", *common, "--set", "data.dedup.threshold=0.95")
    assert "[ingest] up to date" in changed.output and "[dedup] running" in changed.output
    assert "[balance] running" in changed.output

    status = _invoke("status", *common)
    assert status.exit_code == 0 and "done" in status.output and "missing" in status.output  # train not run yet


def test_single_stage_command_reruns_it(tmp_path, tiny_overrides):
    common = ["--config", TINY_CONFIG, "--run-dir", tmp_path, *sum((["--set", o] for o in tiny_overrides), [])]
    assert _invoke("all", "--until", "split", *common).exit_code == 0
    again = _invoke("dedup", *common)
    assert again.exit_code == 0 and "[ingest] up to date" in again.output and "[dedup] running" in again.output


def test_config_errors_exit_2_with_the_fix(tmp_path):
    bad = _invoke("all", "--config", TINY_CONFIG, "--run-dir", tmp_path, "--set", "training.learning_rat=1")
    assert bad.exit_code == 2 and "training.learning_rate" in bad.output
    out = _invoke("config", "show", "--config", TINY_CONFIG, "--preset", "fix-overfitting")
    assert out.exit_code == 0 and "weight_decay: 0.2" in out.output
    explain = _invoke("config", "explain", "data.dedup.threshold")
    assert explain.exit_code == 0 and "0.85" in explain.output and "range" in explain.output
    assert "reruns no stage" not in explain.output
    assert "reruns no stage" in _invoke("config", "explain", "data.dedup.workers").output


def test_cli_start_imports_no_heavy_library():
    code = "import sys, pipeline.cli; print(sorted({'torch', 'transformers', 'trl', 'peft'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_command_that_reads_a_run_takes_run_dir_and_only_train_resumes():
    for command in ("all", "train", "evaluate", "status", "predict", "export", "diagnose"):
        assert "--run-dir" in _invoke(command, "--help").output, command
    assert "--resume" in _invoke("train", "--help").output
    for command in ("ingest", "dedup", "evaluate", "report"):
        assert _invoke(command, "--resume").exit_code == 2  # no such option: it would mean nothing there


def test_errors_are_mapped_to_exit_codes_in_one_place(tmp_path):
    from pipeline.cli import exit_code
    from pipeline.experiments.compare import CompareError
    from pipeline.config import ConfigError
    from pipeline.experiments.diagnose import DiagnoseError
    from pipeline.run.runner import StageError

    assert [exit_code(e("x")) for e in (ConfigError, CompareError, StageError, DiagnoseError, FileNotFoundError)] \
        == [2, 2, 1, 1, 1]
    assert exit_code(KeyError("a bug")) is None  # not mapped: a bug keeps its traceback
    missing = _invoke("export", tmp_path / "out", "--run-dir", tmp_path / "no-run", "--config", TINY_CONFIG)
    assert missing.exit_code == 1 and "error:" in missing.output and "train first" in missing.output
    bad_key = _invoke("status", "--config", TINY_CONFIG, "--set", "training.packing=true")
    assert bad_key.exit_code == 2 and "'training.packing' is not a setting" in " ".join(bad_key.output.split())
