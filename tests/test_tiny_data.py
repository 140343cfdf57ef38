"""data/tiny: the committed files are exactly what data/tiny/build_tiny.py writes; families stay inside one split,
so test holds families train never saw; dedup keeps every family script; shallow cues do not tell the labels apart."""
from __future__ import annotations

import importlib.util
import json
import re
from collections import defaultdict

import pytest
from sklearn.metrics import roc_auc_score

from pipeline.config import load_config
from pipeline.run.records import read_records
from pipeline.run.runner import run_pipeline

from .conftest import FULL_TINY_DATA, ROOT, TINY_CONFIG, TINY_DATA

COMMENT = re.compile(r"^\s*(#(?!!)|//|REM |')", re.MULTILINE | re.IGNORECASE)
DOC_IP = re.compile(r"\b(192\.0\.2|198\.51\.100|203\.0\.113)\.")


def _builder():
    spec = importlib.util.spec_from_file_location("build_tiny", ROOT / "data" / "tiny" / "build_tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # builds the scripts' text in memory; writes nothing until main()
    return module


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_committed_files_are_what_the_builder_writes():
    build = _builder()
    outputs = build.outputs()
    assert set(outputs) == {TINY_DATA, FULL_TINY_DATA}
    for path, scripts in outputs.items():
        assert path.read_text(encoding="utf-8") == build.jsonl(scripts), f"{path}: rerun data/tiny/build_tiny.py"
    assert len(outputs[FULL_TINY_DATA]) >= 600 and set(outputs[TINY_DATA]) < set(outputs[FULL_TINY_DATA])


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny-split")
    cfg = load_config(TINY_CONFIG, overrides=[f"data.ingest.inputs=[{FULL_TINY_DATA}]", "data.dedup.workers=1"])
    run_pipeline(cfg, run_dir, until="split", log=lambda m: None)
    return run_dir


def test_families_stay_in_one_split_and_test_holds_unseen_families(split_run):
    where = defaultdict(set)
    for split in ("train", "val", "test"):
        for r in read_records(split_run / "split" / f"{split}.jsonl"):
            if r.group:
                where[r.group].add(split)
    assert all(len(splits) == 1 for splits in where.values()), {g: s for g, s in where.items() if len(s) > 1}
    test_families = {g for g, s in where.items() if s == {"test"} and g.startswith("fam-")}
    assert len(test_families) >= 8  # both labels' behaviours the model never trained on


def test_dedup_keeps_every_family_script(split_run):
    kept = [r for r in read_records(split_run / "dedup" / "records.jsonl") if (r.group or "").startswith("fam-")]
    assert len(kept) == sum(1 for r in _rows(FULL_TINY_DATA) if r.get("group", "").startswith("fam-"))


def test_shallow_cues_do_not_separate_the_family_labels():
    rows = [r for r in _rows(FULL_TINY_DATA) if r.get("group", "").startswith("fam-")]
    y = [r["label"] == "malicious" for r in rows]
    cues = {"chars": len, "lines": lambda t: t.count("\n"), "comment": lambda t: bool(COMMENT.search(t)),
            "documentation IP": lambda t: bool(DOC_IP.search(t)), "plain http": lambda t: "http://" in t}
    for name, cue in cues.items():
        auc = roc_auc_score(y, [cue(r["text"]) for r in rows])
        assert 0.35 < auc < 0.65, f"{name} alone separates the labels (ROC AUC {auc:.2f})"
