"""The runner: caching by fingerprint, early cut-off, status, and atomic publication of stage outputs."""
import json

import pytest

from pipeline.run import runner
from pipeline.config import load_config
from pipeline.run.records import read_records
from pipeline.run.runner import BY_NAME, ConfigView, StageError, run_pipeline, run_stage, statuses

from .conftest import TINY_CONFIG

DATA_STAGES = ["ingest", "dedup", "split", "augment", "balance"]


def _cfg(tiny_overrides, *more):
    return load_config(TINY_CONFIG, overrides=[*tiny_overrides, *more])


def _states(cfg, run_dir):
    return {s.stage.name: s.state for s in statuses(cfg, run_dir)}


def test_second_run_skips_and_a_changed_key_reruns_only_downstream(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides)
    assert run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None) == DATA_STAGES
    assert run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None) == []
    assert _states(cfg, tmp_path)["balance"] == "done" and _states(cfg, tmp_path)["train"] == "missing"

    stricter = _cfg(tiny_overrides, "data.dedup.threshold=0.95")  # keeps planted pairs below 0.95: output changes
    assert [s for s, st in _states(stricter, tmp_path).items() if st == "stale"] == DATA_STAGES[1:]
    ran = run_pipeline(stricter, tmp_path, until="balance", log=lambda m: None)
    assert ran[0] == "dedup" and "ingest" not in ran and ran == DATA_STAGES[1:]


def test_early_cutoff_when_upstream_output_is_unchanged(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="augment", log=lambda m: None)
    nudged = _cfg(tiny_overrides, "data.dedup.threshold=0.86")  # no pair of data/tiny lies in [0.85, 0.86)
    ran = run_pipeline(nudged, tmp_path, until="augment", log=lambda m: None)
    assert ran[0] == "dedup" and "augment" not in ran  # dedup's output is unchanged, so what follows it is cut off


@pytest.mark.parametrize("neutral", ["data.dedup.workers=2", "training.torch_threads=3", "report.dir=elsewhere",
                                     "tracking.project=other"])
def test_changing_an_output_neutral_key_reruns_nothing(tmp_path, tiny_overrides, neutral):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="split", log=lambda m: None)
    changed = _cfg(tiny_overrides, neutral)
    assert _states(changed, tmp_path) == _states(cfg, tmp_path)
    assert {s for s, st in _states(changed, tmp_path).items() if st == "done"} == {"ingest", "dedup", "split"}
    assert run_pipeline(changed, tmp_path, until="split", log=lambda m: None) == []


def test_output_neutral_keys_are_declared_on_the_fields_and_feed_the_sweep():
    from pipeline.config import output_neutral_keys
    from pipeline.experiments.sweep import MACHINE_KEYS

    neutral = set(output_neutral_keys())
    assert {"data.dedup.workers", "training.torch_threads", "report.dir", "tracking.project"} <= neutral
    assert "data.dedup.threshold" not in neutral and neutral <= set(MACHINE_KEYS)


def test_a_stage_sees_only_the_keys_it_declares():
    cfg = load_config(TINY_CONFIG)
    view = ConfigView(cfg, runner.Stage("split", ("dedup",), ("data.split", "data.dedup.threshold", "run.seed"), ""))
    assert view.data.split.val_size == cfg.data.split.val_size  # a declared section
    assert view.data.dedup.threshold == cfg.data.dedup.threshold  # a declared key of an undeclared section
    assert view.get("run.seed") == cfg.run.seed
    for undeclared, named in (("data.dedup.enabled", "data.dedup.enabled"), ("training.learning_rate", "training"),
                              ("model", "model"), ("tracking.project", "tracking")):
        with pytest.raises(StageError, match=f"split reads config key '{named}' but does not declare it"):
            view.get(undeclared)
    train = ConfigView(cfg, BY_NAME["train"])
    assert train.tracking.report_to == cfg.tracking.report_to  # observed for trackers, not hashed
    assert set(train.model_dump()) == {"model", "lora", "training", "run", "tracking"}
    with pytest.raises(StageError):
        train.evaluation.threshold_policy


def test_forced_rerun_of_one_stage(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="split", log=lambda m: None)
    manifest = tmp_path / "dedup" / "manifest.json"
    before, before_ns = json.loads(manifest.read_text()), manifest.stat().st_mtime_ns
    assert run_pipeline(cfg, tmp_path, until="dedup", force={"dedup"}, log=lambda m: None) == ["dedup"]
    after = json.loads(manifest.read_text())
    assert manifest.stat().st_mtime_ns > before_ns  # republished...
    assert after["output_digest"] == before["output_digest"]  # ...with the same deterministic output
    assert _states(cfg, tmp_path)["split"] == "done"  # so what follows stays valid (early cut-off)


def test_crashing_stage_leaves_previous_output_trusted_and_no_partial_output(tmp_path, tiny_overrides, monkeypatch):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="split", log=lambda m: None)
    train_before = (tmp_path / "split" / "train.jsonl").read_bytes()

    import pipeline.stages.split as split_stage

    def crash(ctx):
        (ctx.out / "train.jsonl").write_text("half a line")
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(split_stage, "run", crash)
    with pytest.raises(RuntimeError):
        run_stage(cfg, tmp_path, "split", log=lambda m: None)
    assert (tmp_path / "split" / "train.jsonl").read_bytes() == train_before
    assert _states(cfg, tmp_path)["split"] == "done"
    assert not any((tmp_path / ".tmp").iterdir())


def test_stage_without_manifest_is_not_trusted(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="dedup", log=lambda m: None)
    (tmp_path / "dedup" / "manifest.json").unlink()  # e.g. a copy interrupted by hand
    assert _states(cfg, tmp_path)["dedup"] == "missing" and _states(cfg, tmp_path)["split"] == "missing"
    assert run_pipeline(cfg, tmp_path, until="dedup", log=lambda m: None) == ["dedup"]


def test_stage_needs_its_upstream(tmp_path, tiny_overrides):
    with pytest.raises(StageError, match="needs ingest"):
        run_stage(_cfg(tiny_overrides), tmp_path, "dedup", log=lambda m: None)


def test_manifest_contract(tmp_path, tiny_overrides):
    cfg = _cfg(tiny_overrides)
    run_pipeline(cfg, tmp_path, until="dedup", log=lambda m: None)
    m = json.loads((tmp_path / "dedup" / "manifest.json").read_text())
    assert {"stage", "fingerprint", "inputs", "config", "counts", "seconds", "versions", "output_digest"} <= set(m)
    assert m["config"]["data.dedup"]["threshold"] == 0.85
    assert m["inputs"]["ingest"] == json.loads((tmp_path / "ingest" / "manifest.json").read_text())["fingerprint"]
    c = m["counts"]
    assert c["in"] == c["exact_duplicates"] + c["near_duplicates"] + c["conflict_records_dropped"] + c["out"]
    assert c["out"] == len(list(read_records(tmp_path / "dedup" / "records.jsonl")))


def test_changed_input_file_reruns_ingest(tmp_path, tiny_overrides):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "echo hi", "label": "benign"}\n{"text": "rm -rf /", "label": "malicious"}\n')
    cfg = load_config(TINY_CONFIG, inputs=[str(data)])
    run_pipeline(cfg, tmp_path / "run", until="ingest", log=lambda m: None)
    with open(data, "a") as f:
        f.write('{"text": "ls -la", "label": "benign"}\n')
    assert run_pipeline(cfg, tmp_path / "run", until="ingest", log=lambda m: None) == ["ingest"]
    assert json.loads((tmp_path / "run" / "ingest" / "manifest.json").read_text())["counts"]["accepted"] == 3


def test_every_config_key_is_read_by_some_stage():
    from pipeline.config import all_keys

    declared = [k for s in runner.STAGES for k in s.reads + s.observes]
    unread = [k for k in all_keys(leaves_only=True) if not any(k == d or k.startswith(d + ".") for d in declared)]
    assert unread == []
