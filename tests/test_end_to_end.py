"""One real pipeline run on data/tiny (CPU, tiny model, a few epochs), shared by the tests of what it produced:
training lowers validation loss, evaluation uses val for the threshold and test for metrics, predict and export
agree with the pipeline, and the CLI gates exit with the right codes."""
import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config
from pipeline.run.records import read_records
from pipeline.run.runner import run_pipeline

from .conftest import FAST_TRAINING, TINY_CONFIG, TINY_INPUTS

# Four epochs rather than a dozen steps: the report and predict tests want a model that has learnt something.
FAST = [*FAST_TRAINING, "training.max_steps=-1", "training.num_epochs=4", "training.eval_steps=6",
        "training.save_steps=6", "evaluation.bootstrap_samples=100", "evaluation.ensemble=tfidf",
        "evaluation.per_language_min_count=10"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_overrides_module):
    run_dir = tmp_path_factory.mktemp("e2e")
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides_module, *FAST,
                                              f"report.dir={run_dir / 'reports'}"])
    ran = run_pipeline(cfg, run_dir, log=lambda m: None)
    assert ran == ["ingest", "dedup", "split", "augment", "balance", "train", "evaluate", "report"]
    return run_dir, cfg


@pytest.fixture(scope="module")
def tiny_overrides_module():
    return list(TINY_INPUTS)


def _manifest(run_dir, stage):
    return json.loads((run_dir / stage / "manifest.json").read_text())


def test_training_lowers_validation_loss_and_keeps_every_row(run):
    run_dir, _ = run
    c = _manifest(run_dir, "train")["counts"]
    assert c["val_loss_end"] < c["val_loss_start"]
    assert c["train_rows"] == len(list(read_records(run_dir / "balance" / "train.jsonl")))
    history = json.loads((run_dir / "train" / "log_history.json").read_text())
    assert any("eval_roc_auc" in h for h in history) and any("grad_norm" in h for h in history)


def test_evaluate_thresholds_on_val_and_scores_test(run):
    run_dir, _ = run
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    test_ids = [r.id for r in read_records(run_dir / "split" / "test.jsonl")]
    val_ids = [r.id for r in read_records(run_dir / "split" / "val.jsonl")]
    preds = [json.loads(l) for l in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == test_ids and metrics["model"]["n"] == len(test_ids)
    assert metrics["val_n"] == len(val_ids) and metrics["threshold"]["policy"] == "youden"
    t = metrics["threshold"]["threshold"]
    assert all((p["prediction"] == "malicious") == (p["score"] >= t) for p in preds)
    assert metrics["baseline"]["roc_auc"] is not None and 0 <= metrics["model"]["roc_auc"] <= 1


def test_predict_matches_the_pipeline(run, tmp_path):
    run_dir, _ = run
    served = "ensemble_predictions.jsonl" if (run_dir / "evaluate" / "ensemble.json").exists() else "predictions.jsonl"
    preds = {json.loads(l)["id"]: json.loads(l) for l in (run_dir / "evaluate" / served).read_text().splitlines()}
    test = list(read_records(run_dir / "split" / "test.jsonl"))
    folder = tmp_path / "scan"
    folder.mkdir()
    ext = {"powershell": "ps1", "python": "py", "bash": "sh", "javascript": "js", "batch": "bat", "vbscript": "vbs"}
    for i, r in enumerate(test[:6]):
        (folder / f"s{i}.{ext.get(r.lang, 'txt')}").write_text(r.text)
    (folder / "zz-binary.bin").write_bytes(b"\x00\x01\x02binary\x00")
    out = CliRunner().invoke(app, ["predict", str(folder), "--run-dir", str(run_dir), "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(l) for l in out.output.splitlines() if l.startswith("{")]
    assert len(rows) == 7 and rows[-1]["error"].startswith("binary")
    for i, r in enumerate(test[:6]):
        if rows[i]["lang"] == r.lang:  # same prompt => same score as evaluate's
            assert rows[i]["score"] == pytest.approx(preds[r.id]["score"], abs=1e-5)


def test_explain_explains_the_score_predict_serves(run, tmp_path):
    """The run has an ensemble (evaluation.ensemble=tfidf): explain and predict --explain explain the ensemble's
    score, and the baseline reads every line, so no line is called unread."""
    run_dir, _ = run
    assert (run_dir / "evaluate" / "ensemble.json").exists()
    script = max(read_records(run_dir / "split" / "test.jsonl"), key=lambda r: r.text.count("\n"))
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"text": script.text, "lang": script.lang}) + "\n")
    predicted = CliRunner().invoke(app, ["predict", str(path), "--run-dir", str(run_dir), "--format", "json",
                                         "--explain", "2"])
    assert predicted.exit_code == 0, predicted.output
    row = json.loads(predicted.output)[0]
    explained = CliRunner().invoke(app, ["explain", str(path), "--run-dir", str(run_dir), "--format", "json"])
    assert explained.exit_code == 0, explained.output
    (doc,) = json.loads(explained.output)
    assert doc["score"] == pytest.approx(row["score"], abs=1e-6) and not doc["unread"]
    assert [u["line"] for u in row["lines"]] == [u["line"] for u in doc["lines"][:2]]


@pytest.fixture
def gate_inputs(run, tmp_path):
    """The highest- and the lowest-scoring test scripts, each in its own file, and a threshold between their scores:
    the gate is exercised both ways even when the tiny model calls every test script one class at its own
    threshold."""
    run_dir, _ = run
    scores = {json.loads(l)["id"]: json.loads(l)["score"]
              for l in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()}
    test = sorted(read_records(run_dir / "split" / "test.jsonl"), key=lambda r: scores[r.id])
    low, high = test[0], test[-1]
    assert scores[high.id] > scores[low.id], "every test script got the same score: nothing to gate on"
    files = []
    for name, r in (("high", high), ("low", low)):
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text(json.dumps({"text": r.text, "lang": r.lang}) + "\n")
    return (*files, (scores[high.id] + scores[low.id]) / 2)


def test_fail_on_malicious_gates_the_exit_code(run, gate_inputs):
    run_dir, _ = run
    high, low, threshold = gate_inputs
    gate = ["--run-dir", str(run_dir), "--fail-on-malicious", "--format", "csv", "--threshold", str(threshold)]
    flagged = CliRunner().invoke(app, ["predict", str(high), *gate])
    assert flagged.exit_code == 1 and "1 input(s) judged malicious" in flagged.output, flagged.output
    assert CliRunner().invoke(app, ["predict", str(low), *gate]).exit_code == 0
    ungated = CliRunner().invoke(app, ["predict", str(high), *gate[:2], "--threshold", str(threshold)])
    assert ungated.exit_code == 0, ungated.output  # without the flag a malicious verdict is not a failure


def test_export_loads_with_auto_class_and_agrees(run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from pipeline.model.classifier import Classifier, open_classifier

    run_dir, _ = run
    out = CliRunner().invoke(app, ["export", str(tmp_path / "export"), "--run-dir", str(run_dir)])
    assert out.exit_code == 0, out.output
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "export").config.num_labels == 2
    test = list(read_records(run_dir / "split" / "test.jsonl"))[:8]
    exported = open_classifier(tmp_path / "export")
    pipeline = Classifier.load(run_dir / "train" / "classifier")
    assert exported.threshold == pytest.approx(json.loads((run_dir / "evaluate" / "threshold.json").read_text())["threshold"])
    np.testing.assert_allclose(exported.score_records(test), pipeline.score_records(test), atol=1e-4)


def test_report_is_built_from_the_run(run):
    run_dir, cfg = run
    report = run_dir / "reports" / cfg.run.name
    metrics = json.loads((report / "metrics.json").read_text())
    own = json.loads((run_dir / "evaluate" / "metrics.json").read_text())["model"]
    assert metrics["roc_auc"] == own["roc_auc"] and metrics["baseline"]["roc_auc"] is not None
    assert (report / "report.html").exists() and (report / "roc.png").exists() and (report / "training.png").exists()


def test_ensemble_and_per_language_thresholds_are_fit_on_val_and_saved_without_pickle(run):
    from pipeline.evaluation.baseline import TfidfBaseline
    from pipeline.evaluation.ensemble import StackedEnsemble

    run_dir, _ = run
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    test = list(read_records(run_dir / "split" / "test.jsonl"))
    base = TfidfBaseline.load(run_dir / "evaluate" / "baseline.npz")  # the fitted baseline, reloaded from npz
    stored = [json.loads(l)["score"] for l in (run_dir / "evaluate" / "baseline_predictions.jsonl").read_text().splitlines()]
    assert np.allclose(base.predict_proba([r.text for r in test]), stored, atol=1e-6)
    model = [json.loads(l)["score"] for l in (run_dir / "evaluate" / "predictions.jsonl").read_text().splitlines()]
    ens = [json.loads(l)["score"] for l in (run_dir / "evaluate" / "ensemble_predictions.jsonl").read_text().splitlines()]
    assert np.allclose(StackedEnsemble.load(run_dir / "evaluate" / "ensemble.json").predict(model, stored), ens,
                       atol=1e-5)
    assert metrics["ensemble"]["roc_auc"] is not None and set(metrics["ensemble"]["per_lang"]) == \
        set(metrics["model"]["per_lang"])
    plt = metrics["per_language_thresholds"]
    assert plt["global_threshold"] == metrics["threshold"]["threshold"] and plt["test"]["n"] == len(test)
    assert set(plt["thresholds"]) == {r.lang for r in read_records(run_dir / "split" / "val.jsonl")}
    md = (run_dir / "report" / "report.md").read_text()
    assert "Model, baseline and ensemble" in md and "Per-language thresholds" in md


def test_evaluate_on_external_data(run, tmp_path):
    run_dir, cfg = run
    out = CliRunner().invoke(app, ["evaluate", "--config", str(TINY_CONFIG), "--run-dir", str(run_dir),
                                   "--data", str(run_dir / "split" / "test.jsonl")])
    assert out.exit_code == 0, out.output
    ext = json.loads(next((run_dir / "evaluations").glob("*/metrics.json")).read_text())
    own = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert ext["model"]["roc_auc"] == pytest.approx(own["model"]["roc_auc"], abs=1e-6)
    # the baseline and the ensemble on the user's data, per language and per source, as the report shows on test
    for scorer in ("baseline", "ensemble"):
        assert ext[scorer]["roc_auc"] == pytest.approx(own[scorer]["roc_auc"], abs=1e-6)
        assert ext[scorer]["per_lang"].keys() == own[scorer]["per_lang"].keys() and ext[scorer]["per_source"]


def _predict_scores(model_dir, files) -> tuple[list[float], list[str]]:
    out = CliRunner().invoke(app, ["predict", *map(str, files), "--run-dir", str(model_dir), "--format", "jsonl",
                                   "--config", str(TINY_CONFIG)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return [r["score"] for r in rows], [r["verdict"] for r in rows]


@pytest.mark.parametrize("fmt", ["hf", "onnx"])
def test_an_export_serves_the_runs_ensemble_from_a_fresh_path(run, tmp_path, fmt):
    """The run was evaluated with evaluation.ensemble=tfidf: its export carries the baseline and the stacker, and
    predict on the export (moved elsewhere: nothing points back to the run) gives predict's scores and verdicts on
    the run directory, on the PyTorch path (hf) and the ONNX fast path (onnx) alike."""
    import shutil

    from pipeline.evaluation.ensemble import EnsembleScorer, with_ensemble
    from pipeline.model.classifier import open_classifier
    from pipeline.predict import open_scorer

    run_dir, _ = run
    done = CliRunner().invoke(app, ["export", str(tmp_path / "export"), "--run-dir", str(run_dir), "--format", fmt])
    assert done.exit_code == 0 and "stacked TF-IDF ensemble" in done.output, done.output
    fresh = tmp_path / "elsewhere" / "model"
    shutil.move(tmp_path / "export", fresh)
    assert {"ensemble.json", "baseline.npz", "threshold.json"} <= {p.name for p in fresh.iterdir()}
    test = list(read_records(run_dir / "split" / "test.jsonl"))[:12]
    files = []
    for i, r in enumerate(test):
        files.append(tmp_path / f"{i}.txt")
        files[-1].write_text(r.text, encoding="utf-8")
    served = open_scorer(fresh, device="cpu")
    assert type(served).__name__ == ("OnnxClassifier" if fmt == "onnx" else "Classifier")
    assert isinstance(with_ensemble(served, fresh), EnsembleScorer)
    export_scores, export_verdicts = _predict_scores(fresh, files)
    # the run scored by the same engine: ONNX Runtime (predict's fast path on the run) or PyTorch
    if fmt == "onnx":
        run_scores, run_verdicts = _predict_scores(run_dir, files)
    else:
        on_run = with_ensemble(open_classifier(run_dir, device="cpu"), run_dir)
        run_scores = list(on_run.score([r.text for r in test], [r.lang for r in test]))
        run_verdicts = ["malicious" if s >= on_run.threshold else "benign" for s in run_scores]
    np.testing.assert_allclose(export_scores, run_scores, rtol=0, atol=1e-6)
    assert export_verdicts == run_verdicts
    stored = {json.loads(l)["id"]: json.loads(l)["score"]
              for l in (run_dir / "evaluate" / "ensemble_predictions.jsonl").read_text().splitlines()}
    np.testing.assert_allclose(export_scores, [stored[r.id] for r in test], rtol=0, atol=1e-4)  # the report's scores
