"""The GPU proof script, rehearsed on CPU so CI exercises it: a variant runs in its own process through every stage
to evaluate, then predict, and the JSON says it ran, how fast, and that predict's scores equal evaluate's."""
from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_cpu_rehearsal_runs_the_script_and_writes_its_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--cpu-rehearsal", "--steps", "2", "--variants", "hf_lora",
         "--work", str(tmp_path / "work"), "--out", str(out), "--set", "model.max_length=128",
         "--set", "data.augment.enabled=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "cpu-rehearsal" and report["before_wheels"]["torch"]
    result = report["variants"]["hf_lora"]
    assert result["ran"] and result["steps"] == 2 and result["backend"] == "hf" and result["device"] == "cpu"
    assert result["train_samples_per_second"] > 0 and result["peak_memory_mib"] > 0
    assert result["predict_vs_evaluate"]["equal_to_1e-3"] and result["predict_vs_evaluate"]["scripts"] > 0
    assert result["val"]["loss_start"] is not None and result["test"]["n"] > 0
