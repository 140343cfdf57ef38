"""Report: rebuild the run's report from saved artifacts only (nothing is scored again).

Reads evaluate's metrics, predictions and threshold, train's log history, split's test texts (for the worst examples),
dedup's label conflicts, ingest's rejects and every upstream manifest's counts. Writes metrics.json (stable top-level
keys, see STABLE_KEYS), report.md, report.html (self-contained: inline CSS, plots as base64 data URIs, no script, no
external resource) and the PNG plots, and mirrors them into <report.dir>/<run.name>/, swapped in whole so a crash
never leaves half a report there.

The engine lives in pipeline/report/: facts.py (metrics.json, the kind of run), document.py and data_story.py (one
list of blocks, so both documents say the same thing), markdown.py and html.py (the renderings, escaping every string
that can come from the data). This module reads the artifacts, explains the worst examples with the run's model,
draws the plots, and writes and mirrors the files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from pipeline.evaluation import plots
from ..config import nest
from pipeline.run.records import LABELS, file_in_the_way, read_json, read_records, write_json
from ..report.data_story import data_alarms
from ..report.document import document
from ..report.facts import (LIST_LIMIT, UPSTREAM, Inputs, headline_table, report_metrics, run_kind,
                            run_kind_sentences, worst)
from ..report.facts import SMOKE_TEST_ROWS, STABLE_KEYS  # noqa: F401  (public names, imported from here)
from ..report.html import to_html
from ..report.markdown import md_code, md_table, to_markdown  # noqa: F401  (md_code: likewise)
from pipeline.run.runner import MANIFEST, StageContext, StageError

def _read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise StageError(f"{path}:{lineno} is not valid JSON ({e}): rerun the stage that wrote it "
                                     "with --force") from None
    return rows


def _optional(ctx: StageContext, stage: str, name: str) -> Path | None:
    return ctx.input(stage, name) if (ctx.run_dir / stage / name).exists() else None


def _labels(preds: list[dict], path: Path) -> np.ndarray:
    try:
        return np.array([LABELS.index(p["label"]) for p in preds], dtype=np.int64)
    except (KeyError, ValueError):
        raise StageError(f"{path}: every row needs a label in {LABELS}: rerun `sgpipe evaluate`") from None

def _texts(path: Path, ids: set[str]) -> dict[str, str]:
    """Texts of the wanted ids only: a large test set is streamed, not held."""
    return {r.id: r.text for r in read_records(path) if r.id in ids} if ids else {}

# ------------------------------------------------------------------------------------------------------- stage
def draw_plots(out: Path, metrics: dict, preds: list[dict], y: np.ndarray, base_scores: np.ndarray | None,
               history: list[dict]) -> dict[str, str | None]:
    s = np.array([p["score"] for p in preds], dtype=np.float64)
    scores = {"model": s} if base_scores is None else {"model": s, "baseline": base_scores}
    base = metrics["baseline"] or {}
    roc_auc = {"model": metrics["roc_auc"], "baseline": base.get("roc_auc")}
    pr_auc = {"model": metrics["pr_auc"], "baseline": base.get("pr_auc")}
    return {
        "roc.png": plots.roc(out / "roc.png", y, scores, roc_auc),
        "pr.png": plots.pr(out / "pr.png", y, scores, pr_auc),
        "confusion.png": plots.confusion(out / "confusion.png", metrics["confusion"] or [], metrics["threshold"]),
        "score_hist.png": plots.score_hist(out / "score_hist.png", y, s, metrics["threshold"]),
        "calibration.png": plots.calibration(out / "calibration.png", y, scores),
        "training.png": plots.training(out / "training.png", history),
    }


OWNER_FILE = "run_dir.txt"  # in a report folder: the run directory whose report it is


def report_folder(base: str, name: str, run_dir: Path) -> Path:
    """<report.dir>/<run.name>/, or <run.name>-<8 hex digits of the run directory>/ when that folder holds the report
    of another run directory: two runs sharing a run.name never overwrite each other's report."""
    root = Path(base).resolve()
    blocker = file_in_the_way(root)
    if blocker is not None:
        raise StageError(f"report.dir {base}: {blocker} is a file, not a folder; set report.dir to a folder, e.g. "
                         "--set report.dir=reports")
    owner = str(run_dir.resolve())
    folder = root / name
    marker = folder / OWNER_FILE
    if marker.is_file() and marker.read_text(encoding="utf-8", errors="replace").strip() != owner:
        folder = root / f"{name}-{hashlib.sha256(owner.encode()).hexdigest()[:8]}"
    return folder


def mirror(src: Path, dst: Path) -> None:
    """Copy a finished report to dst, swapped in whole: readers see the old report or the new one, never half."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    stamp = f"{os.getpid()}-{time.time_ns()}"
    tmp, old = dst.with_name(f".{dst.name}.tmp-{stamp}"), dst.with_name(f".{dst.name}.old-{stamp}")
    try:
        shutil.copytree(src, tmp)
        if dst.exists() or dst.is_symlink():
            os.replace(dst, old)
        os.replace(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists() or old.is_symlink():
        old.unlink()


def ran_config(ctx: StageContext, manifests: dict) -> dict:
    """The config that made this report: the slices each stage's manifest recorded (after an early cut-off, the
    ones that produced the cached output), plus the report's own; not the live config, whose other keys never ran."""
    slices = {}
    for manifest in manifests.values():
        slices.update(manifest.get("config") or {})
    slices.update({key: ctx.config.slice(key) for key in ctx.stage.reads})
    return nest(slices)


def _explanations(ctx: StageContext, examples: list[dict], tps: list[dict], texts: dict[str, str],
                  threshold: float | None) -> tuple[dict, list[dict] | None, str | None]:
    """(id -> Explanation of each worst example, faithfulness rows, why nothing was explained) with the run's model."""
    from ..explain import ClassifierScorer, explain_text, faithfulness

    cfg = ctx.config.report
    if not cfg.explain_lines and not cfg.faithfulness_scripts:
        return {}, None, "Explanations are off (report.explain_lines and report.faithfulness_scripts are 0)."
    classifier_dir = ctx.run_dir / "train" / "classifier"
    if not classifier_dir.is_dir():
        return {}, None, f"No explanations: {classifier_dir} is missing."
    from ..model.classifier import Classifier

    classifier = Classifier.load(classifier_dir, device=ctx.config.model.device,
                                 allow_pickle=ctx.config.model.allow_pickle_weights)
    scorer = ClassifierScorer(classifier, ctx.config.training.per_device_eval_batch_size)
    t = 0.5 if threshold is None else threshold
    explained = {}
    for p in examples if cfg.explain_lines else []:
        if texts.get(p["id"]) is not None:
            e = explain_text(texts[p["id"]], p.get("lang") or "unknown", scorer, t, p.get("source") or "")
            e.lines = e.lines[:cfg.explain_lines]
            explained[p["id"]] = e
    chosen = [p for p in tps if texts.get(p["id"]) is not None]
    faithful = faithfulness([texts[p["id"]] for p in chosen], [p.get("lang") or "unknown" for p in chosen], scorer,
                            seed=ctx.config.run.seed) if cfg.faithfulness_scripts else None
    return explained, faithful, None


def run(ctx: StageContext) -> dict:
    name = ctx.config.run.name
    if name in (".", ".."):
        raise StageError(f"run.name {name!r} would name the report folder itself: choose another run.name")
    evaluated = read_json(ctx.input("evaluate", "metrics.json"))
    chosen = read_json(ctx.input("evaluate", "threshold.json"))
    preds, y, base_scores = _read_scores(ctx)
    history = read_json(ctx.input("train", "log_history.json"))
    manifests = {s: ctx.manifest(s) for s in UPSTREAM}
    metrics = _metrics(ctx, evaluated, chosen, manifests)
    write_json(ctx.out / "metrics.json", metrics)

    inputs = _gather(ctx, metrics, manifests, preds, history, chosen.get("threshold"))
    inputs.plots = draw_plots(ctx.out, metrics, preds, y, base_scores, history)
    if inputs.faithfulness is not None:
        write_json(ctx.out / "faithfulness.json", inputs.faithfulness)
    images = _render(ctx.out, inputs)
    report_dir = _publish(ctx, name)

    files = sorted(p.name for p in ctx.out.iterdir() if p.name != MANIFEST)
    skipped = {f: r for f, r in inputs.plots.items() if r is not None}
    _log_summary(ctx, metrics, [alarm.text for alarm in data_alarms(inputs)], skipped, report_dir, len(images))
    base = evaluated.get("baseline")
    return {"report_dir": str(report_dir), "files": files, "alarm": bool(metrics["alarm"]),
            "roc_auc": metrics["roc_auc"], "baseline_roc_auc": base.get("roc_auc") if base else None,
            "plots_skipped": sorted(skipped)}


def _read_scores(ctx: StageContext) -> tuple[list[dict], np.ndarray, np.ndarray | None]:
    """evaluate's predictions, their labels as 0/1, and the baseline's scores of the same scripts (None if not run)."""
    preds_path = ctx.input("evaluate", "predictions.jsonl")
    preds = _read_jsonl(preds_path)
    y = _labels(preds, preds_path)
    base_path = _optional(ctx, "evaluate", "baseline_predictions.jsonl")
    if base_path is None:
        return preds, y, None
    base_preds = _read_jsonl(base_path)
    if [p["id"] for p in base_preds] != [p["id"] for p in preds]:
        raise StageError(f"{base_path} and {preds_path} list different scripts: rerun `sgpipe evaluate --force`")
    return preds, y, np.array([p["score"] for p in base_preds], dtype=np.float64)


def _metrics(ctx: StageContext, evaluated: dict, chosen: dict, manifests: dict[str, dict]) -> dict:
    """metrics.json: evaluate's figures under the report's stable keys, and the kind of run."""
    metrics = report_metrics(evaluated, chosen, manifests)
    env_path = _optional(ctx, "train", "environment.json")
    metrics["run_kind"] = run_kind(ctx.config, manifests, read_json(env_path) if env_path else None, metrics)
    return metrics


def _gather(ctx: StageContext, metrics: dict, manifests: dict[str, dict], preds: list[dict], history: list[dict],
            threshold: float | None) -> Inputs:
    """Everything the document shows but the plots: the worst examples with their texts and explanations, the first
    conflicts and rejects, and the config that ran."""
    cfg = ctx.config.report
    fps, fns = worst(preds, cfg.worst_examples)
    tps = [p for p in preds if p["label"] == "malicious" and p["prediction"] == "malicious"][:cfg.faithfulness_scripts]
    texts = _texts(ctx.input("split", "test.jsonl"), {p["id"] for p in fps + fns + tps})
    explained, faithful, note = _explanations(ctx, fps + fns, tps, texts, threshold)
    rejected_path = _optional(ctx, "ingest", "rejected.jsonl")

    def shown(rows: list[dict]) -> list[dict]:
        return [{**p, "text": texts.get(p["id"]), "explanation": explained.get(p["id"])} for p in rows]

    return Inputs(
        run_name=ctx.config.run.name, metrics=metrics, manifests=manifests, history=history,
        conflicts=_read_jsonl(ctx.input("dedup", "conflicts.jsonl"), LIST_LIMIT),
        rejected=_read_jsonl(rejected_path, LIST_LIMIT) if rejected_path else [],
        false_positives=shown(fps), false_negatives=shown(fns), faithfulness=faithful, explain_note=note,
        excerpt_chars=cfg.excerpt_chars,
        config_yaml=yaml.safe_dump(ran_config(ctx, manifests), sort_keys=False, allow_unicode=True),
        plots={})  # drawn next, by draw_plots


def _render(out: Path, inputs: Inputs) -> dict[str, bytes]:
    """report.md and report.html from one list of blocks; returns the plots the page embeds."""
    blocks = document(inputs)
    (out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    images = {f: (out / f).read_bytes() for f, reason in inputs.plots.items() if reason is None}
    (out / "report.html").write_text(to_html(blocks, f"sgpipe report: {inputs.run_name}", images), encoding="utf-8")
    return images


def _publish(ctx: StageContext, name: str) -> Path:
    """Mirror the finished report into its folder under report.dir, marked with the run directory that owns it."""
    report_dir = report_folder(ctx.config.report.dir, name, ctx.run_dir)
    (ctx.out / OWNER_FILE).write_text(str(ctx.run_dir.resolve()) + "\n", encoding="utf-8")
    mirror(ctx.out, report_dir)
    return report_dir


def _log_summary(ctx: StageContext, metrics: dict, data_alarm_texts: list[str], skipped: dict[str, str],
                 report_dir: Path, n_plots: int) -> None:
    """The console's part of the report: every alarm that opens it (the model's, then the data stages'), skipped
    plots, where the files are, the headline."""
    for alarm in ([metrics["alarm"]] if metrics["alarm"] else []) + data_alarm_texts:
        ctx.log(f"[report] ALARM: {alarm}")
    for f, reason in skipped.items():
        ctx.log(f"[report] {f} skipped: {reason}")
    ctx.log(f"[report] {report_dir / 'report.html'} (and report.md, metrics.json, {n_plots} plots)")
    headline = headline_table(metrics)
    ctx.log(md_table(headline.header, headline.rows))
    for sentence in run_kind_sentences(metrics["run_kind"], metrics):
        ctx.log(f"[report] {sentence}")
