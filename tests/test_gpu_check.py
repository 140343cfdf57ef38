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


def test_gpu_wheels_strip_keeps_the_needed_build_and_a_consistent_record(tmp_path):
    """`make gpu-wheels` drops other CUDA builds (and unsloth's studio/) from the wheels and rewrites RECORD."""
    import zipfile

    from benchmarks.gpu_wheels import STRIP, strip

    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = ["bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cuda130.so",
             "bitsandbytes/libbitsandbytes_cuda121.so", "bitsandbytes/libbitsandbytes_cpu.so"]
    record = "bitsandbytes-0.50.2.dist-info/RECORD"
    with zipfile.ZipFile(wheel, "w") as z:
        for n in names:
            z.writestr(n, b"x" * 1000)
        z.writestr(record, "".join(f"{n},sha256=abc,1000\n" for n in names) + f"{record},,\n")
    prefix, keep = STRIP["bitsandbytes-"]
    assert strip(wheel, prefix, keep) > 0
    with zipfile.ZipFile(wheel) as z:
        left = set(z.namelist())
        listed = {line.split(",")[0] for line in z.read(record).decode().splitlines()}
    assert left == {"bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cuda130.so", record}
    assert listed == left
