"""Evaluate: choose the threshold on VAL, then score TEST once, with the model and with a TF-IDF baseline.

Scores are P(malicious) from the two-label head: one forward pass per batch, no text generation. Every ranking metric
(ROC AUC, PR AUC) is computed from scores, never from hard labels. The threshold comes from validation by
`evaluation.threshold_policy`, is stored in threshold.json (predict and export use it), and metrics are given at it
and at 0.5. The baseline is trained on the same training rows as the model and thresholded by the same policy.

With `evaluation.ensemble: tfidf` the model's and the baseline's scores are also stacked (pipeline/evaluation/ensemble.py: fit
on val, threshold on out-of-fold val scores); the fitted baseline (baseline.npz, no pickle) and the stacker
(ensemble.json) are saved for predict. With `evaluation.per_language_thresholds` a threshold per language is chosen
on val too (languages with too few val scripts keep the global one) and test figures at them are reported.

Outputs: predictions.jsonl, val_predictions.jsonl, baseline_predictions.jsonl, threshold.json, metrics.json; with the
ensemble also ensemble_predictions.jsonl, ensemble.json, baseline.npz.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.evaluation import metrics as M
from pipeline.run.records import Record, read_records, write_json
from pipeline.run.runner import StageContext


def evaluate_scores(y: np.ndarray, s: np.ndarray, threshold: float, records: list[Record], n_boot: int,
                    seed: int) -> dict:
    """Every figure the report shows for one scorer on one labelled set."""
    out = M.binary_metrics(y, s, threshold)
    out["at_0.5"] = M.binary_metrics(y, s, 0.5)
    if n_boot:
        out["ci95"] = {k: list(v) for k, v in M.bootstrap_ci(y, s, threshold, n_boot=n_boot, seed=seed).items()}
    out["per_lang"] = M.per_group_metrics(y, s, [r.lang for r in records], threshold)
    out["roc_auc_language_balanced"] = M.language_balanced_roc_auc(y, s, [r.lang for r in records])
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
        from pipeline.evaluation.baseline import TfidfBaseline
        train = list(read_records(ctx.input("balance", "train.jsonl")))
        base = TfidfBaseline(seed=seed).fit([r.text for r in train], np.array([r.y for r in train]))
        b_val = base.predict_proba([r.text for r in val])
        b_chosen = M.choose_threshold(y_val, b_val, cfg.threshold_policy, target=cfg.target,
                                      fixed=cfg.fixed_threshold, seed=seed)
        b_test = base.predict_proba([r.text for r in test])
        result["baseline"] = {**evaluate_scores(y_test, b_test, b_chosen["threshold"], test, cfg.bootstrap_samples,
                                                seed), "threshold": b_chosen, "name": "tfidf-char-ngrams+logreg"}
        write_predictions(ctx.out / "baseline_predictions.jsonl", test, b_test, b_chosen["threshold"])
        if cfg.ensemble == "tfidf":
            base.save(ctx.out / "baseline.npz")
            result["ensemble"] = _ensemble(ctx, (y_val, s_val, b_val), (y_test, s_test, b_test), test)
    held = _out_of_source(ctx, classifier, t, (base, b_chosen["threshold"]) if cfg.baseline else None)
    if held:
        result["out_of_source"] = held
    if cfg.per_language_thresholds:
        result["per_language_thresholds"] = _per_language(cfg, seed, (y_val, s_val, val), (y_test, s_test, test), t)

    write_json(ctx.out / "threshold.json", chosen)
    write_json(ctx.out / "metrics.json", result)
    m = result["model"]
    if m["alarm"]:
        ctx.log(f"[evaluate] ALARM: {m['alarm']}")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ctx.log(f"[evaluate] test n={m['n']} at threshold {t:.3f}: sensitivity {fmt(m['sensitivity'])}, specificity "
            f"{fmt(m['specificity'])}, ROC AUC {fmt(m['roc_auc'])}, eval loss {fmt(m['eval_loss'])}"
            + (f"; baseline ROC AUC {fmt(result['baseline']['roc_auc'])}" if cfg.baseline else "")
            + (f"; ensemble ROC AUC {fmt(result['ensemble']['roc_auc'])}" if "ensemble" in result else ""))
    keys = ("n", "sensitivity", "specificity", "roc_auc", "pr_auc", "eval_loss", "f1", "mcc")
    for name, figures in held.items():
        ctx.log(f"[evaluate] {name} (out-of-source) n={figures['model']['n']}: ROC AUC "
                f"{fmt(figures['model']['roc_auc'])}" + (f"; baseline {fmt(figures['baseline']['roc_auc'])}"
                                                          if "baseline" in figures else ""))
    return {"threshold": t, **{k: m[k] for k in keys}, **_out_of_source_counts(held),
            **({"baseline_roc_auc": result["baseline"]["roc_auc"]} if cfg.baseline else {}),
            **({"ensemble_roc_auc": result["ensemble"]["roc_auc"]} if "ensemble" in result else {})}


def _out_of_source(ctx: StageContext, classifier, threshold: float, baseline: tuple | None) -> dict:
    """The model (and the baseline) on split's out-of-source splits, where the run has them: val_source and
    test_source hold whole sources that train, val and test never saw (data.split.source_*_size). Each scorer keeps
    the threshold it chose on val, so these figures say how the run as it stands does on unseen sources."""
    from pipeline.stages.split import SOURCE_SPLITS

    cfg, seed, out = ctx.config.evaluation, ctx.config.run.seed, {}
    for name in SOURCE_SPLITS:
        path = ctx.run_dir / "split" / f"{name}.jsonl"
        records = list(read_records(path)) if path.is_file() else []
        if not records:
            continue
        y = np.array([r.y for r in records])
        scores = classifier.score_records(records, ctx.config.training.per_device_eval_batch_size)
        out[name] = {"model": evaluate_scores(y, scores, threshold, records, cfg.bootstrap_samples, seed)}
        write_predictions(ctx.out / f"{name}_predictions.jsonl", records, scores, threshold)
        if baseline is not None:
            base, b_threshold = baseline
            b = base.predict_proba([r.text for r in records])
            out[name]["baseline"] = {**evaluate_scores(y, b, b_threshold, records, cfg.bootstrap_samples, seed),
                                     "threshold": b_threshold}
    return out


def _out_of_source_counts(held: dict) -> dict:
    """The manifest's out-of-source figures (what compare and sweep read): <split>_roc_auc, <split>_loss, and the
    baseline's ROC AUC."""
    counts = {}
    for name, figures in held.items():
        counts[f"{name}_roc_auc"] = figures["model"]["roc_auc"]
        counts[f"{name}_loss"] = figures["model"]["eval_loss"]
        if "baseline" in figures:
            counts[f"{name}_baseline_roc_auc"] = figures["baseline"]["roc_auc"]
    return counts


def _ensemble(ctx: StageContext, val: tuple, test: tuple, test_records: list[Record]) -> dict:
    """Stack model and baseline on val (pipeline/evaluation/ensemble.py), threshold on out-of-fold val scores, score test once."""
    from pipeline.evaluation.ensemble import StackedEnsemble

    cfg, seed = ctx.config.evaluation, ctx.config.run.seed
    (y_val, s_val, b_val), (y_test, s_test, b_test) = val, test
    stack = StackedEnsemble()
    e_val = stack.fit(y_val, s_val, b_val, seed=seed)
    chosen = M.choose_threshold(y_val, e_val, cfg.threshold_policy, target=cfg.target, fixed=cfg.fixed_threshold,
                                seed=seed)
    e_test = stack.predict(s_test, b_test)
    stack.save(ctx.out / "ensemble.json", threshold=chosen["threshold"])
    write_predictions(ctx.out / "ensemble_predictions.jsonl", test_records, e_test, chosen["threshold"])
    return {**evaluate_scores(y_test, e_test, chosen["threshold"], test_records, cfg.bootstrap_samples, seed),
            "threshold": chosen, "name": "stacked model+tfidf (logreg on log-odds, fit on val)",
            "weights": stack.to_json()}


def _per_language(cfg, seed: int, val: tuple, test: tuple, global_threshold: float) -> dict:
    """Per-language thresholds fit on val (fallback: the global one) and the test figures at them."""
    (y_val, s_val, val_records), (y_test, s_test, test_records) = val, test
    thresholds = M.per_group_thresholds(y_val, s_val, [r.lang for r in val_records], global_threshold,
                                        cfg.per_language_min_count, cfg.threshold_policy, target=cfg.target,
                                        fixed=cfg.fixed_threshold, seed=seed)
    at = M.metrics_at_group_thresholds(y_test, s_test, [r.lang for r in test_records], thresholds, global_threshold)
    return {"thresholds": thresholds, "global_threshold": global_threshold, "min_count": cfg.per_language_min_count,
            "test": at}


def _external_baseline(config, run_dir: Path, records: list[Record], y: np.ndarray, scores: np.ndarray,
                       out_dir: Path) -> dict:
    """The run's baseline (and ensemble) on external data, at the thresholds evaluate chose on val.

    The fitted baseline is read from evaluate/baseline.npz when the run saved one (ensemble runs), else re-fit on the
    run's balanced training rows exactly as evaluate fit it (deterministic). Nothing when the run had no baseline."""
    from pipeline.evaluation.baseline import TfidfBaseline

    own_path = run_dir / "evaluate" / "metrics.json"
    own = json.loads(own_path.read_text(encoding="utf-8")) if own_path.exists() else {}
    if not own.get("baseline"):
        return {}
    saved = run_dir / "evaluate" / "baseline.npz"
    if saved.exists():
        base = TfidfBaseline.load(saved)
    else:
        train = list(read_records(run_dir / "balance" / "train.jsonl"))
        base = TfidfBaseline(seed=config.run.seed).fit([r.text for r in train], np.array([r.y for r in train]))
    n_boot, seed = config.evaluation.bootstrap_samples, config.run.seed
    b = base.predict_proba([r.text for r in records])
    t_base = own["baseline"]["threshold"]["threshold"]
    out = {"baseline": {**evaluate_scores(y, b, t_base, records, n_boot, seed), "threshold": t_base,
                        "name": own["baseline"].get("name")}}
    write_predictions(out_dir / "baseline_predictions.jsonl", records, b, t_base)
    if own.get("ensemble") and (run_dir / "evaluate" / "ensemble.json").exists():
        from pipeline.evaluation.ensemble import StackedEnsemble
        e = StackedEnsemble.load(run_dir / "evaluate" / "ensemble.json").predict(scores, b)
        t_ens = own["ensemble"]["threshold"]["threshold"]
        out["ensemble"] = {**evaluate_scores(y, e, t_ens, records, n_boot, seed), "threshold": t_ens,
                           "name": own["ensemble"].get("name")}
        write_predictions(out_dir / "ensemble_predictions.jsonl", records, e, t_ens)
    return out


def evaluate_external(config, run_dir: Path, paths: list[str], out_dir: Path, log=print) -> dict:
    """`sgpipe evaluate --data PATH`: score any labelled input with the run's model at its stored threshold.

    The input is read and validated exactly as ingest reads (same readers, same limits); rejects are listed. Results
    go to `out_dir`, outside the cached stage graph, so the run's own test metrics are never overwritten. Like the
    report on test, they hold per-language and per-source figures, and the run's baseline (and ensemble, if the
    run has one) on the same data at their own val-chosen thresholds.
    """
    from ..model.classifier import open_classifier
    from pipeline.inputs.readers import ReaderLimits, Reject, iter_inputs

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
    result.update(_external_baseline(config, run_dir, records, y, scores, out_dir))
    write_predictions(out_dir / "predictions.jsonl", records, scores, classifier.threshold)
    write_json(out_dir / "rejected.json", [r.__dict__ for r in rejects])
    write_json(out_dir / "metrics.json", result)
    return result
