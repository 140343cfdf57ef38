"""Shared fixtures and overrides. Tests run with one torch thread: two xdist workers share 2 cores, and 2 threads per
process ran 7x slower than 1 when the other core was busy (measured on the 2-core CI machine)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# The 190 hand-written scripts (data/tiny/small.jsonl, written by data/tiny/build_tiny.py beside the full
# scripts.jsonl the demo runs on): enough for every stage and planted case, and keeps the suite fast.
TINY_DATA = ROOT / "data" / "tiny" / "small.jsonl"
FULL_TINY_DATA = ROOT / "data" / "tiny" / "scripts.jsonl"
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"
# The committed dataset by absolute path (tests run from any cwd), hashed by one process.
TINY_INPUTS = [f"data.ingest.inputs=[{TINY_DATA}]", "data.dedup.workers=1"]
# The one set of fast-training overrides: a dozen optimizer steps, an evaluation and checkpoint every 4 (a fixed
# interval: configs/tiny.yaml evaluates once an epoch), one torch thread and few bootstrap resamples. A test that needs
# more says what it changes after these (last wins).
FAST_TRAINING = ["training.max_steps=12", "training.eval_per_epoch=0", "training.eval_steps=4", "training.save_steps=4",
                 "training.torch_threads=1", "evaluation.bootstrap_samples=50"]
# No TF-IDF baseline, for tests of training that need no evaluation figures: configs/tiny.yaml stacks an ensemble on
# the baseline, so it goes off with it (a baseline-less ensemble is a config error).
NO_BASELINE = ["evaluation.baseline=false", "evaluation.ensemble=none"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import sys
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    yield


@pytest.fixture
def tiny_overrides() -> list[str]:
    """Point the tiny config at the committed dataset by absolute path (tests run from any cwd)."""
    return list(TINY_INPUTS)
