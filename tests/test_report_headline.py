"""The report's headline says what kind of run it is (model, size, rows, interval widths), calls a small test split
a smoke check, and says when the model's and the baseline's intervals overlap."""
from __future__ import annotations

import json

from pipeline.config import load_config
from pipeline.run.runner import run_stage
from pipeline.stages.report import SMOKE_TEST_ROWS, run_kind, run_kind_sentences

from .conftest import TINY_CONFIG
from .test_report import make_run

MANIFESTS = {"train": {"counts": {"train_rows": 842, "trainable_parameters": 920_000}}}
ENV = {"model": {"total_params": 921_344, "trainable_params": 920_000}}


def _metrics(n: int, ours, theirs) -> dict:
    return {"n": n, "roc_auc": sum(ours) / 2, "ci95": {"roc_auc": ours},
            "baseline": {"roc_auc": sum(theirs) / 2, "ci95": {"roc_auc": theirs}, "name": "tfidf"}}


def test_report_headline_names_the_run_and_calls_a_small_test_split_a_smoke_check(tmp_path):
    cfg, run_dir = make_run(tmp_path)  # the schema default: a pretrained model, 26 test scripts
    logs = []
    run_stage(cfg, run_dir, "report", log=logs.append)
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    kind = metrics["run_kind"]
    assert kind["pretrained"] and kind["model_id"] == "bigcode/starcoder2-3b" and kind["test_rows"] == 26
    lo, hi = metrics["ci95"]["roc_auc"]
    assert kind["roc_auc_ci_width"] == round(hi - lo, 4) and kind["smoke_check"]
    md = (run_dir / "report" / "report.md").read_text()
    headline = md.split("## Headline")[1].split("\n## ")[0]
    assert "pretrained bigcode/starcoder2-3b, lora fine-tuning; 26 test scripts" in headline
    assert "smoke check of the pipeline, not a measure of the method" in headline
    assert any("smoke check" in line for line in logs)  # the demo's terminal says it too


def test_tiny_model_large_test_split_and_separated_intervals():
    cfg = load_config(TINY_CONFIG)
    m = _metrics(SMOKE_TEST_ROWS, [0.95, 0.99], [0.80, 0.90])
    kind = run_kind(cfg, MANIFESTS, ENV, m)
    assert not kind["pretrained"] and kind["parameters"] == 921_344 and kind["train_rows"] == 842
    assert kind["smoke_check"] is False and kind["intervals_overlap"] is False
    text = " ".join(run_kind_sentences(kind, m))
    assert "random init" in text and "921,344 parameters, 920,000 trained" in text and "842 training rows" in text
    assert "smoke check" not in text and "lies above the baseline's" in text


def test_overlapping_intervals_cannot_be_told_apart():
    cfg = load_config(TINY_CONFIG)
    m = _metrics(190, [0.80, 0.92], [0.88, 0.97])
    kind = run_kind(cfg, MANIFESTS, None, m)
    assert kind["intervals_overlap"] is True and kind["smoke_check"] is True and kind["parameters"] is None
    assert "cannot be told apart" in " ".join(run_kind_sentences(kind, m))


def test_no_baseline_or_no_intervals_claims_nothing_about_overlap():
    cfg = load_config(TINY_CONFIG)
    m = {**_metrics(300, [0.8, 0.9], [0.8, 0.9]), "baseline": None}
    kind = run_kind(cfg, MANIFESTS, ENV, m)
    assert kind["intervals_overlap"] is None and kind["baseline_roc_auc_ci_width"] is None
    text = " ".join(run_kind_sentences(kind, m))
    assert "overlap" not in text and "told apart" not in text


def test_a_served_ensemble_gets_a_headline_column_and_a_sentence():
    """With evaluation.ensemble, predict serves the ensemble: the headline must show its figures, not only the model's
    and the baseline's, and say how to serve the model alone."""
    from pipeline.report.facts import HEADLINE, headline_table

    figures = {key: 0.5 for key, _ in HEADLINE}
    m = {**figures, **_metrics(300, [0.8, 0.9], [0.85, 0.95]), "ci95": {}}
    m["baseline"] = {**figures, **m["baseline"], "roc_auc": 0.9}
    alone = headline_table(m)
    assert alone.header[-1] == "baseline 95% CI"
    m["ensemble"] = {**figures, "roc_auc": 0.937, "threshold": 0.571}
    served = headline_table(m)
    assert served.header[-1] == "ensemble (served)"
    row = next(r for r in served.rows if r[0] == "ROC AUC")
    assert row[-1] == "0.937" and len(row) == len(served.header)
    kind = run_kind(load_config(TINY_CONFIG), MANIFESTS, ENV, m)
    text = " ".join(run_kind_sentences(kind, m))
    assert "predict serves the model stacked with the baseline" in text and "0.937" in text and "0.571" in text
    assert "evaluation.ensemble=none" in text
