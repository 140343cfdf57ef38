"""The report's facts: its metrics.json (one scorer's figures under stable keys), the kind of run in plain words, the
worst examples, and `Inputs`, everything the document shows, loaded by the report stage from the run directory."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.evaluation import metrics as M
from ..config import TINY_MODEL_ID
from .blocks import Table, ci, num, val

HEADLINE = (("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("precision", "Precision"),
            ("npv", "NPV"), ("f1", "F1"), ("balanced_accuracy", "Balanced accuracy"), ("mcc", "MCC"),
            ("accuracy", "Accuracy"), ("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"),
            ("brier", "Brier (lower is better)"), ("ece", "ECE (lower is better)"),
            ("eval_loss", "Eval loss (lower is better)"))
AT_THRESHOLD = HEADLINE[:8] + (("tp", "True positives"), ("fp", "False positives"), ("tn", "True negatives"),
                               ("fn", "False negatives"))
STABLE_KEYS = ("sensitivity", "specificity", "precision", "f1", "balanced_accuracy", "mcc", "accuracy", "roc_auc",
               "pr_auc", "eval_loss", "brier", "ece", "threshold", "n", "per_lang", "per_source", "baseline", "ci95",
               "threshold_policy", "threshold_stability", "at_0_5", "alarm", "counts")
UPSTREAM = ("ingest", "dedup", "split", "augment", "balance", "train", "evaluate")
PLOTS = {  # file -> caption, in the order the report shows them (training.png sits in the training section)
    "roc.png": "ROC curves on test, model and baseline",
    "pr.png": "Precision-recall curves on test, model and baseline",
    "confusion.png": "Confusion matrix at the chosen threshold",
    "score_hist.png": "Test score histograms per class, with the threshold",
    "calibration.png": "Calibration (reliability) on test",
    "training.png": "Training: train and val loss, learning rate, grad norm",
}
LIST_LIMIT = 50  # conflicts and rejects listed in the report; the full lists stay in the run directory
SMOKE_TEST_ROWS = 200  # below this many test scripts, the figures check the pipeline, not the method


def summarise(m: dict, chosen: dict) -> dict:
    """One scorer's figures under the report's stable keys, from evaluate's metrics and its chosen threshold."""
    keys = [k for k, _ in HEADLINE] + ["n", "n_pos", "n_neg", "tp", "fp", "tn", "fn"]
    return {**{k: m.get(k) for k in keys}, "threshold": chosen.get("threshold"),
            "per_lang": m.get("per_lang", {}), "per_source": m.get("per_source", {}), "ci95": m.get("ci95") or {},
            "roc_auc_language_balanced": m.get("roc_auc_language_balanced"),
            "threshold_policy": chosen.get("policy"), "threshold_target": chosen.get("target"),
            "threshold_met": chosen.get("met"), "threshold_stability": chosen.get("stability"),
            "at_0_5": m.get("at_0.5"), "alarm": M.collapse_alarm({**m, "threshold": chosen.get("threshold")}),
            "confusion": m.get("confusion")}


def worst(preds: list[dict], k: int) -> tuple[list[dict], list[dict]]:
    """The k highest-scoring false positives and the k lowest-scoring false negatives (ties by id)."""
    fps = [p for p in preds if p["label"] == "benign" and p["prediction"] == "malicious"]
    fns = [p for p in preds if p["label"] == "malicious" and p["prediction"] == "benign"]
    return (sorted(fps, key=lambda p: (-p["score"], p["id"]))[:k],
            sorted(fns, key=lambda p: (p["score"], p["id"]))[:k])


def report_metrics(evaluated: dict, chosen: dict, manifests: dict[str, dict]) -> dict:
    """metrics.json less run_kind: the model's, the baseline's and the ensemble's figures, every stage's counts."""
    base, ens = evaluated.get("baseline"), evaluated.get("ensemble")
    return {**summarise(evaluated["model"], chosen),
            "baseline": {**summarise(base, base["threshold"]), "name": base.get("name")} if base else None,
            "ensemble": ({**summarise(ens, ens["threshold"]), "name": ens.get("name"), "weights": ens.get("weights")}
                         if ens else None),
            "per_language_thresholds": evaluated.get("per_language_thresholds"),
            "out_of_source": evaluated.get("out_of_source"),
            "counts": {s: manifests[s].get("counts", {}) for s in UPSTREAM},
            "val_n": evaluated.get("val_n")}


@dataclass
class Inputs:
    """Everything the report shows, loaded from the run directory."""
    run_name: str
    metrics: dict  # the report's metrics.json
    manifests: dict[str, dict]
    history: list[dict]
    conflicts: list[dict]  # the first LIST_LIMIT
    rejected: list[dict]  # the first LIST_LIMIT
    false_positives: list[dict]  # prediction rows, each with its "text" (None when not in split/test.jsonl)
    false_negatives: list[dict]
    excerpt_chars: int
    config_yaml: str
    plots: dict[str, str | None]  # file -> None when drawn, else why it was skipped
    faithfulness: list[dict] | None = None  # explain.faithfulness rows; None when not measured
    explain_note: str | None = None  # why examples are not explained, when they are not


def headline_table(m: dict) -> Table:
    """Model and baseline with their intervals; with evaluation.ensemble, the ensemble too, marked as what predict
    serves (its figures at its own val-chosen threshold)."""
    base, ens = m["baseline"], m.get("ensemble")
    header = (["metric", "model", "model 95% CI"] + (["baseline", "baseline 95% CI"] if base else [])
              + (["ensemble (served)"] if ens else []))
    rows = []
    for key, label in HEADLINE:
        row = [label, num(m[key]), ci(m["ci95"].get(key))]
        if base:
            row += [num(base[key]), ci(base["ci95"].get(key))]
        if ens:
            row.append(num(ens.get(key)))
        rows.append(row)
    return Table(header, rows)


def _interval_width(interval) -> float | None:
    return None if not interval or interval[0] is None else round(interval[1] - interval[0], 4)


def run_kind(config, manifests: dict[str, dict], environment: dict | None, m: dict) -> dict:
    """What kind of run this is, for the headline and metrics.json["run_kind"]: which model (random-init tiny or
    pretrained), how big, on how many rows, and whether its test split can tell the model from the baseline."""
    train = manifests["train"].get("counts", {})
    info = (environment or {}).get("model") or {}
    base = m["baseline"]
    ours, theirs = m["ci95"].get("roc_auc"), base["ci95"].get("roc_auc") if base else None
    both = bool(ours and theirs and ours[0] is not None and theirs[0] is not None)
    return {"model_id": config.model.model_id, "pretrained": config.model.model_id != TINY_MODEL_ID,
            "finetuning_type": config.model.finetuning_type, "parameters": info.get("total_params"),
            "trainable_parameters": info.get("trainable_params", train.get("trainable_parameters")),
            "train_rows": train.get("train_rows"), "test_rows": m["n"],
            "roc_auc_ci_width": _interval_width(ours), "baseline_roc_auc_ci_width": _interval_width(theirs),
            "smoke_check": (m["n"] or 0) < SMOKE_TEST_ROWS,
            "intervals_overlap": (ours[0] <= theirs[1] and theirs[0] <= ours[1]) if both else None}


def _count(n) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"


def run_kind_sentences(k: dict, m: dict) -> list[str]:
    """The headline's plain words: the kind of run, then what its figures can and cannot say."""
    model = (f"pretrained {k['model_id']}" if k["pretrained"] else
             "the built-in tiny StarCoder2, random init (no pretraining: it learns scripts from this data alone)")
    size = "".join(f", {_count(n)} {what}" for n, what in ((k["parameters"], "parameters"),
                                                          (k["trainable_parameters"], "trained")) if n)
    rows = f"{val(k['train_rows'])} training rows (after augment and balance), " if k["train_rows"] else ""
    out = [f"This run: {model}, {k['finetuning_type']} fine-tuning{size}; {rows}{val(k['test_rows'])} test scripts; "
           f"ROC AUC 95% interval width {val(k['roc_auc_ci_width'])}"
           + (f" (baseline {val(k['baseline_roc_auc_ci_width'])})." if m["baseline"] else ".")]
    if k["smoke_check"]:
        out.append(f"With {val(k['test_rows'])} test scripts (under {SMOKE_TEST_ROWS}), these figures are a smoke "
                   "check of the pipeline, not a measure of the method: measure on your own data.")
    if k["intervals_overlap"] is True:
        out.append(f"The model's and the baseline's ROC AUC intervals overlap ({ci(m['ci95'].get('roc_auc'))} and "
                   f"{ci(m['baseline']['ci95'].get('roc_auc'))}): on this test set they cannot be told apart.")
    elif k["intervals_overlap"] is False:
        side = "above" if m["roc_auc"] > m["baseline"]["roc_auc"] else "below"
        out.append(f"The model's ROC AUC interval ({ci(m['ci95'].get('roc_auc'))}) lies {side} the baseline's "
                   f"({ci(m['baseline']['ci95'].get('roc_auc'))}), without overlap.")
    if m.get("ensemble"):
        out.append(f"predict serves the model stacked with the baseline (evaluation.ensemble): test ROC AUC "
                   f"{num(m['ensemble'].get('roc_auc'))} at its own threshold ({num(m['ensemble'].get('threshold'))}, "
                   "chosen on val); --set evaluation.ensemble=none serves the model alone.")
    return out
