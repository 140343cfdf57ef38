"""Evaluate: choose the threshold on VAL, then score TEST once, with the model and with a TF-IDF baseline.

Scores are P(malicious) from the two-label head: one forward pass per batch, no text generation. Every ranking metric
(ROC AUC, PR AUC) is computed from scores, never from hard labels. The threshold comes from validation by
`evaluation.threshold_policy`, is stored in threshold.json (predict and export use it), and metrics are given at it
and at 0.5. The baseline is trained on the same training rows as the model and thresholded by the same policy.

Outputs: predictions.jsonl, val_predictions.jsonl, baseline_predictions.jsonl, threshold.json, metrics.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..records import Record, read_records, write_json
from ..runner import StageContext


def evaluate_scores(y: np.ndarray, s: np.ndarray, threshold: float, records: list[Record], n_boot: int,
                    seed: int) -> dict:
    """Every figure the report shows for one scorer on one labelled set."""
    out = M.binary_metrics(y, s, threshold)
    out["at_0.5"] = M.binary_metrics(y, s, 0.5)
    if n_boot:
        out["ci95"] = {k: list(v) for k, v in M.bootstrap_ci(y, s, threshold, n_boot=n_boot, seed=seed).items()}
    out["per_lang"] = M.per_group_metrics(y, s, [r.lang for r in records], threshold)
    out["per_source"] = M.per_group_metrics(y, s, [source_family(r.source) for r in records], threshold)
    out["alarm"] = M.collapse_alarm(out)
    return out


def source_family(source: str) -> str:
    """'tiny/ps-download-3' -> 'tiny'; 'guarddog/ruleid:x' -> 'guarddog': per-source figures by collection."""
    return source.replace("\\", "/").split("/")[0].split(":")[0] or "unknown"


def write_predictions(path: Path, records: list[Record], scores: np.ndarray, threshold: float) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r, s in zip(records, scores, strict=True):
            f.write(json.dumps({"id": r.id, "lang": r.lang, "source": r.source, "label": r.label,
                                "score": round(float(s), 6),
                                "prediction": "malicious" if s >= threshold else "benign"}) + "\n")


def run(ctx: StageContext) -> dict:
    from ..model.classifier import Classifier

    cfg, seed = ctx.config.evaluation, ctx.config.run.seed
    val = list(read_records(ctx.input("split", "val.jsonl")))
    test_path = ctx.input("split", "test.jsonl")
    test = list(read_records(test_path))
    y_val = np.array([r.y for r in val])
    y_test = np.array([r.y for r in test])

    classifier = Classifier.load(ctx.input("train", "classifier"), device=ctx.config.model.device,
                                 allow_pickle=ctx.config.model.allow_pickle_weights)
    batch = ctx.config.training.per_device_eval_batch_size
    s_val = classifier.score_records(val, batch)
    chosen = M.choose_threshold(y_val, s_val, cfg.threshold_policy, target=cfg.target, fixed=cfg.fixed_threshold,
                                seed=seed)
    s_test = classifier.score_records(test, batch)
    t = chosen["threshold"]
    result = {"model": evaluate_scores(y_test, s_test, t, test, cfg.bootstrap_samples, seed), "threshold": chosen,
              "test_set": str(test_path.relative_to(ctx.run_dir)), "val_n": len(val)}
    write_predictions(ctx.out / "val_predictions.jsonl", val, s_val, t)
    write_predictions(ctx.out / "predictions.jsonl", test, s_test, t)

    if cfg.baseline:
        from ..baseline import TfidfBaseline
        train = list(read_records(ctx.input("balance", "train.jsonl")))
        base = TfidfBaseline(seed=seed).fit([r.text for r in train], np.array([r.y for r in train]))
        b_val = base.predict_proba([r.text for r in val])
        b_chosen = M.choose_threshold(y_val, b_val, cfg.threshold_policy, target=cfg.target,
                                      fixed=cfg.fixed_threshold, seed=seed)
        b_test = base.predict_proba([r.text for r in test])
        result["baseline"] = {**evaluate_scores(y_test, b_test, b_chosen["threshold"], test, cfg.bootstrap_samples,
                                                seed), "threshold": b_chosen, "name": "tfidf-char-ngrams+logreg"}
        write_predictions(ctx.out / "baseline_predictions.jsonl", test, b_test, b_chosen["threshold"])

    write_json(ctx.out / "threshold.json", chosen)
    write_json(ctx.out / "metrics.json", result)
    m = result["model"]
    if m["alarm"]:
        ctx.log(f"[evaluate] ALARM: {m['alarm']}")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ctx.log(f"[evaluate] test n={m['n']} at threshold {t:.3f}: sensitivity {fmt(m['sensitivity'])}, specificity "
            f"{fmt(m['specificity'])}, ROC AUC {fmt(m['roc_auc'])}, eval loss {fmt(m['eval_loss'])}"
            + (f"; baseline ROC AUC {fmt(result['baseline']['roc_auc'])}" if cfg.baseline else ""))
    keys = ("n", "sensitivity", "specificity", "roc_auc", "pr_auc", "eval_loss", "f1", "mcc")
    return {"threshold": t, **{k: m[k] for k in keys},
            **({"baseline_roc_auc": result["baseline"]["roc_auc"]} if cfg.baseline else {})}


def evaluate_external(config, run_dir: Path, paths: list[str], out_dir: Path, log=print) -> dict:
    """`sgpipe evaluate --data PATH`: score any labelled input with the run's model at its stored threshold.

    The input is read and validated exactly as ingest reads (same readers, same limits); rejects are listed. Results
    go to `out_dir`, outside the cached stage graph, so the run's own test metrics are never overwritten.
    """
    from ..model.classifier import open_classifier
    from ..readers import ReaderLimits, Reject, iter_inputs

    records, rejects = [], []
    for item in iter_inputs(paths, ReaderLimits.from_config(config.data.ingest), labelled=True):
        (rejects if isinstance(item, Reject) else records).append(item)
    if len({r.label for r in records}) < 2:
        raise ValueError(f"{paths}: {len(records)} usable labelled scripts ({len(rejects)} rejected) and not both "
                         "labels; evaluation needs malicious and benign examples")
    classifier = open_classifier(run_dir, device=config.model.device, allow_pickle=config.model.allow_pickle_weights)
    if classifier.threshold is None:
        raise ValueError(f"{run_dir / 'evaluate' / 'threshold.json'} is missing: run `sgpipe evaluate` first")
    y = np.array([r.y for r in records])
    scores = classifier.score_records(records, config.training.per_device_eval_batch_size)
    result = {"model": evaluate_scores(y, scores, classifier.threshold, records, config.evaluation.bootstrap_samples,
                                       config.run.seed),
              "threshold": classifier.threshold, "data": paths, "rejected": len(rejects)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.jsonl", records, scores, classifier.threshold)
    write_json(out_dir / "rejected.json", [r.__dict__ for r in rejects])
    write_json(out_dir / "metrics.json", result)
    return result
