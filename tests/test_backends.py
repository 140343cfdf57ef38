"""The production (CUDA) path's loading decisions, checked on CPU (issue 9 defects 2-4): unsloth is imported before
the libraries it patches, each torchrun rank places a 4-bit model on its own GPU, full fine-tuning keeps fp32
weights. And the tiny model's saved config carries its own tokenizer's special ids (no bos/eos warnings)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.model import backends

ROOT = Path(__file__).resolve().parents[1]


def test_unsloth_is_imported_before_transformers_trl_datasets_and_peft(tmp_path):
    """A fake `unsloth` first on sys.path records which of the patched libraries were already imported."""
    fake = tmp_path / "fake" / "unsloth"
    fake.mkdir(parents=True)
    record = tmp_path / "record.json"
    fake.joinpath("__init__.py").write_text(textwrap.dedent(f"""
        import json, sys
        with open({str(record)!r}, "w") as f:
            json.dump(sorted(m for m in ("transformers", "trl", "datasets", "peft") if m in sys.modules), f)
        raise RuntimeError("fake unsloth: stop here")
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(fake.parent)!r})
        import torch
        torch.cuda.is_available = lambda: True  # a GPU machine, as far as backend choice can tell
        import pipeline.cli  # the path `sgpipe train` takes
        from pipeline.config import load_config
        from pipeline.stages import train

        class Context:
            config = load_config(overrides=["model.backend=auto"])
            log = print

        try:
            train.run(Context())
        except RuntimeError as e:
            assert "fake unsloth" in str(e), e
        else:
            raise SystemExit("unsloth was never imported")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(record.read_text()) == []


def test_4bit_model_goes_to_this_ranks_gpu_under_torchrun(monkeypatch):
    """device_map must name cuda:LOCAL_RANK: torch.cuda.current_device() is 0 on every rank before any is set."""
    import transformers

    seen = {}

    def fake_model(model_id, **kwargs):
        seen.update(kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake_model)
    cfg = ModelConfig(model_id="some/model", backend="hf", load_in_4bit=True)
    backends._load_hf(cfg, device="cuda", dtype=torch.bfloat16)
    assert seen["device_map"] == {"": "cuda:3"}
    assert seen["quantization_config"].bnb_4bit_compute_dtype == torch.bfloat16
    assert backends.placement("cuda") == "cuda:3" and backends.placement("cpu") == "cpu"


def test_full_finetuning_on_cuda_keeps_fp32_weights(monkeypatch):
    """AdamW on bf16 weights has no fp32 master copy: full FT loads fp32 (bf16 autocast does the math); LoRA's frozen
    base may be bf16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    full = ModelConfig(model_id="some/model", finetuning_type="full", load_in_4bit=False)
    lora = ModelConfig(model_id="some/model", finetuning_type="lora", load_in_4bit=True)
    assert backends.weights_dtype(full, "cuda") == torch.float32
    assert backends.weights_dtype(lora, "cuda") == torch.bfloat16
    assert backends.weights_dtype(lora.model_copy(update={"load_in_4bit": False}), "cpu") == torch.float32


def test_predict_prints_no_token_id_warnings(tmp_path):
    """`sgpipe predict` printed two bos/eos_token_id warnings per run. They were about transformers' own default
    `Starcoder2Config()` (built to diff against when it logs a config), not the saved model: its config carries the
    tokenizer's ids. A fresh process, since transformers warns once per process."""
    from pipeline.model.classifier import Classifier
    from tests.model_configs import load_tiny

    model, tokenizer, _ = load_tiny(["echo hi", "rm -rf /tmp/x"] * 4, 64)
    clf = Classifier.save(model, tokenizer, tmp_path / "clf", base_model=None, max_length=64, head_ratio=0.75)
    saved = json.loads((clf / "config.json").read_text())
    assert (saved["bos_token_id"], saved["eos_token_id"]) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert all(0 <= saved[k] < saved["vocab_size"] for k in ("bos_token_id", "eos_token_id", "pad_token_id"))
    script = tmp_path / "x.sh"
    script.write_text("echo hi\n")
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", str(script), "--model", str(clf),
                           "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)[0]["verdict"] in ("malicious", "benign")
    assert "token_id" not in done.stderr, done.stderr


def test_datasketch_is_a_dev_dependency_only():
    """Only benchmarks/bench_dedup.py imports datasketch: a user's install must not need it."""
    import ast
    import re

    text = (ROOT / "pyproject.toml").read_text()  # read as text: tomllib needs Python 3.11, sgpipe supports 3.10
    runtime = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    dev = re.search(r"^dev = \[(.*?)\]", text, re.M).group(1)
    assert "datasketch" not in runtime and "datasketch" in dev
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "datasketch" for n in names), path
