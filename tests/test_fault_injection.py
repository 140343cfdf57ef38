"""Interrupted runs. A SIGKILL in the middle of every stage, each followed by `sgpipe all` again, must end with exactly
the outputs of an uninterrupted run of the same seed; a full disk fails the stage with a clear error and leaves the
earlier outputs in place and trusted.

The kills are real: `sgpipe all` runs in a child process, `python -m tests.test_fault_injection POINT ARGS...`, which
is the CLI plus one `os.kill(getpid(), SIGKILL)` planted at a point inside one stage's work (the 60th record written,
the 7th training step, ...), counted only while that stage runs. Nothing in the package knows about it. Watching from
the parent for a stage's temporary folder instead would be racy: the data stages of data/tiny take milliseconds.
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config
from pipeline.run.records import RecordWriter, read_records
from pipeline.run.runner import STAGE_NAMES, StageError, run_pipeline, run_stage, statuses

from .conftest import FAST_TRAINING, ROOT, TINY_CONFIG, TINY_INPUTS

pytestmark = pytest.mark.slow  # a subprocess per kill
FAST = [*FAST_TRAINING, *TINY_INPUTS]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled",
             "PYTHONUNBUFFERED": "1"}  # unbuffered: what the child printed before its kill is not lost

# point -> (stage during which calls are counted, function to wrap, does this call kill the process once it returns)
# Every record a data stage writes, serialised or copied as read, goes through RecordWriter.write_line.
WRITE_LINE = "pipeline.run.records:RecordWriter.write_line"
KILL_POINTS = {
    "ingest": ("ingest", WRITE_LINE, lambda n, args: n == 60),  # 60 of 190 records written
    "dedup": ("dedup", WRITE_LINE, lambda n, args: n == 60),
    "split": ("split", WRITE_LINE, lambda n, args: n == 60),  # lines copied as dedup wrote them
    "augment": ("augment", WRITE_LINE, lambda n, args: n == 60),
    "balance": ("balance", WRITE_LINE, lambda n, args: n == 60),
    "train": ("train", "pipeline.model.trainer:VerdictTrainer.training_step", lambda n, args: n == 7),  # ckpt 4 saved
    "evaluate": ("evaluate", "pipeline.stages.evaluate:write_predictions", lambda n, args: n == 2),  # metrics not yet
    "report": ("report", "pipeline.stages.report:draw_plots", lambda n, args: n == 1),  # plots drawn, no html yet
    # between the two renames of publication: the old output moved aside, the new one not yet in place
    "split-publish": ("split", "os:replace", lambda n, args: Path(args[0]).name == "split"),
}


def _child(point: str, argv: list[str]) -> None:
    """The CLI with a SIGKILL planted at `point` (this runs in the child process only)."""
    from pipeline import cli
    from pipeline.run import runner

    stage, target, kills = KILL_POINTS[point]
    module, _, attribute = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = attribute.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    running = {"stage": None, "calls": 0}

    def planted(*args, **kwargs):
        result = original(*args, **kwargs)
        if running["stage"] == stage:
            running["calls"] += 1
            if kills(running["calls"], args):
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, planted)
    run_stage_ = runner.run_stage

    def tracked(config, run_dir, stage_name, *args, **kwargs):
        running["stage"], running["calls"] = stage_name, 0
        return run_stage_(config, run_dir, stage_name, *args, **kwargs)

    runner.run_stage = tracked
    sys.argv = ["sgpipe", *argv]
    cli.main()


def _args(command: str, run_dir: Path, reports: Path) -> list[str]:
    return [command, "--config", str(TINY_CONFIG), "--run-dir", str(run_dir),
            *sum((["--set", o] for o in [*FAST, f"report.dir={reports}"]), [])]


def _sgpipe(args: list[str], point: str | None = None) -> subprocess.CompletedProcess:
    head = ["-m", "tests.test_fault_injection", point] if point else ["-m", "pipeline.cli"]
    return subprocess.run([sys.executable, *head, *args], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True,
                          timeout=600)


def _states(cfg, run_dir: Path) -> dict[str, str]:
    return {s.stage.name: s.state for s in statuses(cfg, run_dir)}


def _manifest(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


@pytest.fixture
def reference(tmp_path):
    """An uninterrupted `sgpipe all`, running beside the test (a second core halves the wait): (run dir, process)."""
    run_dir = tmp_path / "reference"
    with open(tmp_path / "reference.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *_args("all", run_dir, tmp_path / "reports")],
                                   cwd=ROOT, env=CHILD_ENV, stdout=log, stderr=subprocess.STDOUT)
    yield run_dir, process
    if process.poll() is None:  # the test failed before waiting for it
        process.kill()
        process.wait()


def test_sigkill_in_every_stage_then_rerun_gives_the_uninterrupted_outputs(tmp_path, reference):
    reports = tmp_path / "reports"  # shared: report.dir is in the report stage's fingerprint
    (reference_dir, reference_process), run_dir = reference, tmp_path / "run"
    cfg = load_config(TINY_CONFIG, overrides=[*FAST, f"report.dir={reports}"])

    # Kill stage k; the next run (which kills stage k+1) must redo stage k and trust everything before it.
    for i, stage in enumerate(STAGE_NAMES):
        killed = _sgpipe(_args("all", run_dir, reports), point=stage)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        assert all(f"[{s}] up to date" in killed.stdout for s in STAGE_NAMES[:max(i - 1, 0)])
        if i:
            assert f"[{STAGE_NAMES[i - 1]}] running" in killed.stdout  # the half-done stage was redone, not trusted
        states = _states(cfg, run_dir)
        assert [states[s] for s in STAGE_NAMES[:i]] == ["done"] * i and states[stage] == "missing", states
        assert not (run_dir / stage).exists()
        written = [p for p in (run_dir / ".tmp").glob(f"{stage}-*/**/*") if p.is_file()]
        if stage == "train":  # the model is written at the end; until then the checkpoints are in .work
            assert (run_dir / ".work" / "train" / "checkpoints" / "checkpoint-4").is_dir()
        else:
            assert written and not any(p.name == "manifest.json" for p in written), written
    finished = _sgpipe(_args("all", run_dir, reports))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "[report] running" in finished.stdout and not list((run_dir / ".tmp").iterdir())

    # Killed between the two renames that replace a previous output: that output is gone, never half-trusted.
    killed = _sgpipe(_args("split", run_dir, reports), point="split-publish")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (run_dir / "split").exists() and list((run_dir / ".tmp").glob("split-*-old/manifest.json"))
    states = _states(cfg, run_dir)
    assert states["split"] == "missing" and all(states[s] == "stale" for s in STAGE_NAMES[3:]), states
    rerun = _sgpipe(_args("all", run_dir, reports))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[split] running" in rerun.stdout and all(f"[{s}] up to date" in rerun.stdout for s in STAGE_NAMES[3:])

    assert reference_process.wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert set(_states(cfg, run_dir).values()) == {"done"}
    for split in ("train", "val", "test"):
        assert [r.id for r in read_records(run_dir / "split" / f"{split}.jsonl")] == \
            [r.id for r in read_records(reference_dir / "split" / f"{split}.jsonl")]
    metrics = "evaluate/metrics.json"
    assert (run_dir / metrics).read_text() == (reference_dir / metrics).read_text()
    for stage in STAGE_NAMES:  # report's own files show the run's timings, so only its inputs can be compared
        ours, theirs = _manifest(run_dir, stage), _manifest(reference_dir, stage)
        assert ours["fingerprint"] == theirs["fingerprint"], stage
        if stage != "report":
            assert ours["output_digest"] == theirs["output_digest"], stage  # train: bit-identical weights


def test_disk_full_fails_the_stage_clearly_and_keeps_earlier_outputs(tmp_path, tiny_overrides, monkeypatch):
    cfg = load_config(TINY_CONFIG, overrides=tiny_overrides)
    run_pipeline(cfg, tmp_path, until="augment", log=lambda m: None)
    before = {p.name: p.read_bytes() for p in (tmp_path / "split").iterdir()}

    write_line, written = RecordWriter.write_line, []

    def fills_the_disk(writer, line):  # every stage writes its records through write_line: the 11th finds it full
        if len(written) == 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(line)
        return write_line(writer, line)

    monkeypatch.setattr(RecordWriter, "write_line", fills_the_disk)
    with pytest.raises(StageError) as failed:
        run_stage(cfg, tmp_path, "split", log=lambda m: None)
    assert str(failed.value).startswith("split: the disk holding") and str(tmp_path.resolve()) in str(failed.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "split").iterdir()} == before
    assert not [p for p in (tmp_path / ".tmp").rglob("*") if p.is_file()]  # the partial files were removed

    out = CliRunner().invoke(app, ["split", "--config", str(TINY_CONFIG), "--run-dir", str(tmp_path),
                                   *sum((["--set", o] for o in tiny_overrides), [])])
    message = " ".join(out.output.split())  # the console wraps long lines
    assert out.exit_code == 1 and "error: split: the disk holding" in message and "No space left" in message
    assert str(tmp_path.resolve()) in message and "Traceback" not in out.output

    monkeypatch.undo()  # space freed: the earlier outputs are still trusted, nothing reruns
    assert _states(cfg, tmp_path)["augment"] == "done"
    assert run_pipeline(cfg, tmp_path, until="augment", log=lambda m: None) == []


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2:])
