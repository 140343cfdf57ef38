"""Determinism on CPU: two runs of data/tiny with the same config and seed publish byte-identical outputs at every
stage (so identical fingerprints, split membership, classifier weights and test metrics); another run.seed changes
the split and the metrics; and every stage whose output depends on run.seed has it in its fingerprint."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import pipeline
from pipeline.config import load_config
from pipeline.run.records import read_records
from pipeline.run.runner import BY_NAME, STAGE_NAMES, STAGES, run_pipeline

from .conftest import FAST_TRAINING, TINY_CONFIG, TINY_INPUTS

pytestmark = pytest.mark.slow  # two full runs
UNTIL = "evaluate"  # report shows each run's timings: its files differ by design, and nothing reads them
STAGES_RUN = STAGE_NAMES[: STAGE_NAMES.index(UNTIL) + 1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three fresh runs: seed 42 twice, in different folders, and seed 7."""
    out = {}
    for name, seed in (("first", 42), ("second", 42), ("other_seed", 7)):
        run_dir = tmp_path_factory.mktemp(name)
        cfg = load_config(TINY_CONFIG, overrides=[*TINY_INPUTS, *FAST_TRAINING,
                                                  f"run.seed={seed}"])
        assert run_pipeline(cfg, run_dir, until=UNTIL, log=lambda m: None) == list(STAGES_RUN)
        out[name] = run_dir
    return out


def _manifest(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


def _split_ids(run_dir: Path) -> dict[str, list[str]]:
    return {s: [r.id for r in read_records(run_dir / "split" / f"{s}.jsonl")] for s in ("train", "val", "test")}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "evaluate" / "metrics.json").read_text())["model"]


def test_same_seed_gives_identical_outputs_at_every_stage(runs):
    first, second = runs["first"], runs["second"]
    for stage in STAGES_RUN:
        a, b = _manifest(first, stage), _manifest(second, stage)
        assert (a["fingerprint"], a["output_digest"]) == (b["fingerprint"], b["output_digest"]), stage
    weights = "train/classifier/model.safetensors"  # bit-identical on CPU with one torch thread
    assert (first / weights).read_bytes() == (second / weights).read_bytes()
    assert _split_ids(first) == _split_ids(second)
    assert _metrics(first) == _metrics(second)


def test_another_seed_changes_split_and_metrics_but_not_ingest_or_dedup(runs):
    first, other = runs["first"], runs["other_seed"]
    for stage in ("ingest", "dedup"):  # they read no seed: same fingerprint, same output
        assert _manifest(first, stage)["fingerprint"] == _manifest(other, stage)["fingerprint"]
        assert _manifest(first, stage)["output_digest"] == _manifest(other, stage)["output_digest"]
    for stage in STAGES_RUN[2:]:
        assert _manifest(first, stage)["fingerprint"] != _manifest(other, stage)["fingerprint"], stage
    a, b = _split_ids(first), _split_ids(other)
    assert set(a["test"]) != set(b["test"]) and sorted(sum(a.values(), [])) == sorted(sum(b.values(), []))
    assert _metrics(first) != _metrics(other)


def _uses_run_seed(source: str) -> bool:
    """Whether the code reads `<something>.run.seed` (the config's seed)."""
    return any(isinstance(node, ast.Attribute) and node.attr == "seed" and isinstance(node.value, ast.Attribute)
               and node.value.attr == "run" for node in ast.walk(ast.parse(source)))


def test_every_stage_using_the_seed_has_it_in_its_fingerprint():
    """Otherwise a changed seed would be served the output of another seed from the cache."""
    stages_dir = Path(pipeline.__file__).parent / "stages"
    using = {s.name for s in STAGES if _uses_run_seed((stages_dir / f"{s.name}.py").read_text(encoding="utf-8"))}
    assert using  # the check sees the stages that do use it
    assert {name for name in using if "run.seed" not in BY_NAME[name].reads} == set()
