"""Report: rebuild the run's report from saved artifacts only (nothing is scored again).

Reads evaluate's metrics, predictions and threshold, train's log history, split's test texts (for the worst examples),
dedup's label conflicts, ingest's rejects and every upstream manifest's counts. Writes metrics.json (stable top-level
keys, see STABLE_KEYS), report.md, report.html (self-contained: inline CSS, plots as base64 data URIs, no script, no
external resource) and the PNG plots, and mirrors them into <report.dir>/<run.name>/, swapped in whole so a crash
never leaves half a report there.

Both documents are rendered from one list of blocks (heading, paragraph, table, code, image, alarm), so they say the
same thing. Every string that can come from the data (texts, sources, languages, paths, config values, rejects) goes
through an escaper: html.escape in HTML; in markdown, backslash escapes outside code blocks and, inside them, a fence
longer than any backtick run in the text. A sample is shown as text, never interpreted.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .. import metrics as M
from ..config import TINY_MODEL_ID
from .. import plots
from ..config import nest
from ..records import LABELS, read_json, read_records, write_json
from ..runner import MANIFEST, StageContext, StageError

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


# ------------------------------------------------------------------------------------------- the document model
@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Code:
    text: str


@dataclass
class Image:
    file: str
    caption: str


@dataclass
class Alarm:
    text: str


@dataclass
class Highlight:
    """A code excerpt whose explained lines are marked: 1-based line -> contribution to P(malicious)."""
    text: str
    marks: dict[int, float]


Block = Heading | Para | Table | Code | Image | Alarm | Highlight


def gutter(b: Highlight) -> str:
    """The excerpt with a line-number gutter; marked lines carry '>>' and their contribution (markdown view)."""
    width = len(str(b.text.count("\n") + 1))
    rows = []
    for n, line in enumerate(b.text.split("\n"), 1):
        mark = f">> {b.marks[n]:+.3f}" if n in b.marks else ""
        rows.append(f"{mark:>10} {n:>{width}} | {line}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------------- markdown
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")


def md_text(value) -> str:
    """One line of markdown showing `value` literally: no NULs, no line breaks, every active character escaped."""
    text = re.sub(r"[\r\n]+", " ", str(value).replace("\x00", ""))  # a newline would end a table row or open a block
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text: str) -> str:
    """A fenced code block that `text` cannot close: the fence is longer than any backtick run in it."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    if not text.endswith("\n"):
        text += "\n"
    return f"{fence}\n{text}{fence}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        match b:
            case Heading():
                out.append("#" * b.level + " " + md_text(b.text))
            case Para():
                out.append(md_text(b.text))
            case Alarm():
                out.append("> **ALARM:** " + md_text(b.text))
            case Table():
                out.append(md_table(b.header, b.rows))
            case Code():
                out.append(md_code(b.text))
            case Highlight():
                out.append(md_code(gutter(b)))
            case Image():
                out.append(f"![{md_text(b.caption)}]({b.file})")  # our own file names: nothing to escape
    return "\n\n".join(out) + "\n"


# -------------------------------------------------------------------------------------------------------- HTML
CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 0.6rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
.alarm { background: #fde8e8; border: 2px solid #c00; padding: 0.8rem; font-weight: 600; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 100%; }
mark { background: #f6b0b0; } mark.neg { background: #b0c8f6; }
"""


# Defence in depth: even if some string escaped escaping, the page may run no script and load nothing from outside.
CSP = ('<meta http-equiv="Content-Security-Policy" '
       "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">")


def esc(value) -> str:
    return html.escape(str(value).replace("\x00", ""), quote=True)


def to_html(blocks: list[Block], title: str, images: dict[str, bytes]) -> str:
    out = []
    for b in blocks:
        match b:
            case Heading():
                out.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
            case Para():
                out.append(f"<p>{esc(b.text)}</p>")
            case Alarm():
                out.append(f'<div class="alarm">ALARM: {esc(b.text)}</div>')
            case Table():
                head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
                body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in b.rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            case Code():
                out.append(f"<pre><code>{esc(b.text)}</code></pre>")
            case Highlight():
                lines = [f'<mark{"" if b.marks[n] >= 0 else " class=neg"} title="{b.marks[n]:+.4f}">{esc(line)}</mark>'
                         if n in b.marks else esc(line) for n, line in enumerate(b.text.split("\n"), 1)]
                out.append("<pre><code>" + "\n".join(lines) + "</code></pre>")
            case Image():
                data = base64.b64encode(images[b.file]).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(b.caption)}">'
                           f"<figcaption>{esc(b.caption)}</figcaption></figure>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' + CSP +
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")


# ------------------------------------------------------------------------------------------------- formatting
def _m(value) -> str:
    """A metric: three decimals, n/a when undefined."""
    return "n/a" if value is None else (str(value) if isinstance(value, int) else f"{value:.3f}")


def _v(value) -> str:
    """Any other figure: ints as they are, floats to 4 significant digits, dicts as 'key n, key n'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_v(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(_v(v) for v in value) or "none"
    return str(value)


def _ci(interval) -> str:
    if not interval or interval[0] is None:
        return ""
    return f"{interval[0]:.3f} to {interval[1]:.3f}"


def _get(d, *keys):
    """d[k1][k2]... or None when any level is missing (hand-made or older manifests lack some counts)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


# ------------------------------------------------------------------------------------------------ the artifacts
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


def summarise(m: dict, chosen: dict) -> dict:
    """One scorer's figures under the report's stable keys, from evaluate's metrics and its chosen threshold."""
    keys = [k for k, _ in HEADLINE] + ["n", "n_pos", "n_neg", "tp", "fp", "tn", "fn"]
    return {**{k: m.get(k) for k in keys}, "threshold": chosen.get("threshold"),
            "per_lang": m.get("per_lang", {}), "per_source": m.get("per_source", {}), "ci95": m.get("ci95") or {},
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


def _texts(path: Path, ids: set[str]) -> dict[str, str]:
    """Texts of the wanted ids only: a large test set is streamed, not held."""
    return {r.id: r.text for r in read_records(path) if r.id in ids} if ids else {}


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


# ----------------------------------------------------------------------------------------------- the sections
def headline_table(m: dict) -> Table:
    base = m["baseline"]
    header = ["metric", "model", "model 95% CI"] + (["baseline", "baseline 95% CI"] if base else [])
    rows = []
    for key, label in HEADLINE:
        row = [label, _m(m[key]), _ci(m["ci95"].get(key))]
        if base:
            row += [_m(base[key]), _ci(base["ci95"].get(key))]
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
    rows = f"{_v(k['train_rows'])} training rows (after augment and balance), " if k["train_rows"] else ""
    out = [f"This run: {model}, {k['finetuning_type']} fine-tuning{size}; {rows}{_v(k['test_rows'])} test scripts; "
           f"ROC AUC 95% interval width {_v(k['roc_auc_ci_width'])}"
           + (f" (baseline {_v(k['baseline_roc_auc_ci_width'])})." if m["baseline"] else ".")]
    if k["smoke_check"]:
        out.append(f"With {_v(k['test_rows'])} test scripts (under {SMOKE_TEST_ROWS}), these figures are a smoke "
                   "check of the pipeline, not a measure of the method: measure on your own data.")
    if k["intervals_overlap"] is True:
        out.append(f"The model's and the baseline's ROC AUC intervals overlap ({_ci(m['ci95'].get('roc_auc'))} and "
                   f"{_ci(m['baseline']['ci95'].get('roc_auc'))}): on this test set they cannot be told apart.")
    elif k["intervals_overlap"] is False:
        side = "above" if m["roc_auc"] > m["baseline"]["roc_auc"] else "below"
        out.append(f"The model's ROC AUC interval ({_ci(m['ci95'].get('roc_auc'))}) lies {side} the baseline's "
                   f"({_ci(m['baseline']['ci95'].get('roc_auc'))}), without overlap.")
    return out


def _headline(a: Inputs) -> list[Block]:
    m = a.metrics
    base = f"; baseline: {m['baseline']['name']}" if m["baseline"] else "; no baseline was run"
    kind = [Para(s) for s in run_kind_sentences(m["run_kind"], m)] if m.get("run_kind") else []
    return [Heading("Headline (test set)"), *kind,
            Para(f"{_v(m['n'])} test scripts ({_v(m['n_pos'])} malicious, {_v(m['n_neg'])} benign), model at "
                 f"threshold {_m(m['threshold'])} ({m['threshold_policy']}){base}. Intervals: stratified percentile "
                 "bootstrap on test, where evaluate computed them."),
            headline_table(m)]


def _threshold(a: Inputs) -> list[Block]:
    m, base = a.metrics, a.metrics["baseline"]
    st = m["threshold_stability"] or {}
    rows = [["threshold", _m(m["threshold"])], ["policy", m["threshold_policy"]]]
    if m["threshold_target"] is not None:
        rows += [["target", _v(m["threshold_target"])], ["target met on val", _v(m["threshold_met"])]]
    rows += [["bootstrap stability on val (p5 / p50 / p95)",
              f"{_m(st.get('p5'))} / {_m(st.get('p50'))} / {_m(st.get('p95'))} ({_v(st.get('n_boot'))} resamples)"],
             ["val scripts", _v(m["val_n"])]]
    if base:
        rows.append(["baseline threshold", _m(base["threshold"])])
    at_half = m["at_0_5"] or {}
    return [Heading("Threshold"),
            Para("Chosen on the validation split, never on test. A wide p5-p95 range means a small or noisy val set "
                 "and a threshold that will move between runs."),
            Table(["item", "value"], rows),
            Heading("Metrics at the chosen threshold and at 0.5", 3),
            Table(["metric", f"at {_m(m['threshold'])}", "at 0.5"],
                  [[label, _m(m[k]), _m(at_half.get(k))] for k, label in AT_THRESHOLD])]


def _confusion(a: Inputs) -> list[Block]:
    c = a.metrics["confusion"]
    if not c:
        return [Heading("Confusion matrix"), Para("evaluate/metrics.json holds no confusion matrix.")]
    (tn, fp), (fn, tp) = c
    return [Heading("Confusion matrix"),
            Table(["", "predicted benign", "predicted malicious"],
                  [["actual benign", tn, fp], ["actual malicious", fn, tp]])]


def _groups(title: str, groups: dict, base_groups: dict | None) -> list[Block]:
    if not groups:
        return [Heading(title), Para("none")]
    header = ["group", "n", "malicious", "sensitivity", "specificity", "ROC AUC"]
    header += ["baseline ROC AUC"] if base_groups is not None else []
    rows = []
    for name, g in groups.items():
        row = [name, _v(g.get("n")), _v(g.get("n_pos")), _m(g.get("sensitivity")), _m(g.get("specificity")),
               _m(g.get("roc_auc"))]
        rows.append(row + ([_m(_get(base_groups, name, "roc_auc"))] if base_groups is not None else []))
    return [Heading(title), Table(header, rows)]


def _side_by_side(a: Inputs) -> list[Block]:
    """ROC AUC of model, baseline and ensemble, overall and per language (evaluation.ensemble: tfidf)."""
    m, base, ens = a.metrics, a.metrics["baseline"], a.metrics.get("ensemble")
    if not ens:
        return []
    rows = [["all", _v(m["n"]), _m(m["roc_auc"]), _m(base["roc_auc"] if base else None), _m(ens["roc_auc"])]]
    for lang, g in m["per_lang"].items():
        rows.append([lang, _v(g.get("n")), _m(g.get("roc_auc")), _m(_get(base or {}, "per_lang", lang, "roc_auc")),
                     _m(_get(ens, "per_lang", lang, "roc_auc"))])
    w = ens.get("weights") or {}
    return [Heading("Model, baseline and ensemble (test ROC AUC)"),
            Para(f"{ens.get('name')}: P = sigmoid({_m(w.get('model_weight'))} x logit(model) + "
                 f"{_m(w.get('baseline_weight'))} x logit(baseline) + {_m(w.get('intercept'))}); ensemble threshold "
                 f"{_m(ens['threshold'])} from out-of-fold val scores, sensitivity {_m(ens['sensitivity'])}, "
                 f"specificity {_m(ens['specificity'])} on test."),
            Table(["language", "n", "model", "baseline", "ensemble"], rows)]


def _language_thresholds(a: Inputs) -> list[Block]:
    """Per-language thresholds fit on val beside the global one, with test figures at each."""
    plt = a.metrics.get("per_language_thresholds")
    if not plt:
        return []
    m, at = a.metrics, plt.get("test") or {}
    rows = []
    for lang, t in plt["thresholds"].items():
        st = t.get("stability") or {}
        rows.append([lang, _v(t["n_val"]), _m(t["threshold"]), t["source"],
                     f"{_m(st.get('p5'))}-{_m(st.get('p95'))}" if st else "",
                     _m(_get(m, "per_lang", lang, "sensitivity")), _m(_get(m, "per_lang", lang, "specificity")),
                     _m(_get(at, "per_lang", lang, "sensitivity")), _m(_get(at, "per_lang", lang, "specificity"))])
    rows.append(["all", _v(m["val_n"]), _m(plt["global_threshold"]), "global", "", _m(m["sensitivity"]),
                 _m(m["specificity"]), _m(at.get("sensitivity")), _m(at.get("specificity"))])
    return [Heading("Per-language thresholds"),
            Para(f"Chosen on val by the same policy where a language has at least {_v(plt['min_count'])} val scripts "
                 "(and 10% of each label); elsewhere the global threshold. Test figures at the global threshold, then "
                 "at the per-language ones. predict uses the global threshold."),
            Table(["language", "val n", "threshold", "from", "val bootstrap p5-p95", "sensitivity (global)",
                   "specificity (global)", "sensitivity (per language)", "specificity (per language)"], rows)]


def _plot(a: Inputs, file: str) -> Block:
    reason = a.plots.get(file)
    return Image(file, PLOTS[file]) if reason is None else Para(f"{file} was not drawn: {reason}.")


def _data_story(a: Inputs) -> list[Block]:
    c = a.metrics["counts"]
    ingest, dedup, split, augment, balance = (c.get(s, {}) for s in ("ingest", "dedup", "split", "augment", "balance"))
    out: list[Block] = [Heading("Data")]

    out += [Heading("Ingest", 3),
            Table(["item", "value"],
                  [["inputs", _v(_get(a.manifests, "ingest", "config", "data.ingest", "inputs"))],
                   ["read", _v(ingest.get("in"))], ["accepted", _v(ingest.get("accepted"))],
                   ["rejected", _v(ingest.get("rejected"))], ["accepted per label", _v(ingest.get("per_label"))],
                   ["accepted per language", _v(ingest.get("per_lang"))]])]
    reasons = ingest.get("rejected_by_reason") or {}
    if reasons:
        out.append(Table(["reject reason", "records"], [[r, n] for r, n in reasons.items()]))
    if a.rejected:
        out += [Para(f"First {len(a.rejected)} rejects (all in ingest/rejected.jsonl):"),
                Table(["location", "reason", "detail"],
                      [[r.get("location"), r.get("reason"), r.get("detail")] for r in a.rejected])]

    out += [Heading("Dedup", 3),
            Table(["item", "value"],
                  [["in", _v(dedup.get("in"))], ["exact duplicates removed", _v(dedup.get("exact_duplicates"))],
                   ["near duplicates removed", _v(dedup.get("near_duplicates"))],
                   ["verified near-duplicate pairs", _v(dedup.get("verified_pairs"))],
                   ["label conflicts (clusters)", _v(dedup.get("conflicts"))],
                   ["records dropped in conflicts", _v(dedup.get("conflict_records_dropped"))],
                   ["out", _v(dedup.get("out"))], ["out per label", _v(dedup.get("per_label"))]])]

    per_label = split.get("per_label") or {}
    out += [Heading("Split", 3),
            Table(["split", "scripts", "benign", "malicious"],
                  [[s, _v(split.get(s)), _v(_get(per_label, s, "benign") or 0),
                    _v(_get(per_label, s, "malicious") or 0)]
                   for s in ("train", "val", "test")]),
            Table(["item", "value"],
                  [["groups", _v(split.get("groups"))],
                   ["cross-split exact duplicates", _v(split.get("cross_split_exact_duplicates"))]])]
    out += _leakage(augment)

    variants, rates = augment.get("variants_per_label") or {}, augment.get("variant_rate_per_label") or {}
    out += [Heading("Augment (train only)", 3),
            Table(["label", "train scripts", "variants", "variant rate"],
                  [[lab, _v(_get(per_label, "train", lab)), _v(variants.get(lab)), _v(rates.get(lab))]
                   for lab in sorted(set(variants) | set(rates))]),
            Para(f"{_v(augment.get('variants'))} variants in all; {_v(augment.get('unchanged_or_duplicate'))} attempts "
                 f"unchanged or duplicate; {_v(augment.get('python_parse_failures'))} Python variants dropped because "
                 "they no longer parsed. Similar rates per label mean no transform is a cue for one label.")]
    by_transform = augment.get("transforms_per_label") or {}
    if by_transform:
        out.append(Table(["transform", "benign", "malicious"],
                         [[t, _v(n.get("benign", 0)), _v(n.get("malicious", 0))] for t, n in by_transform.items()]))

    out += _transform_rates(augment)

    before, after = balance.get("before") or {}, balance.get("after") or {}
    labels = sorted(set(before.get("per_label") or {}) | set(after.get("per_label") or {}))
    out += [Heading("Balance (train only)", 3),
            Para(f"Method {_v(balance.get('method'))}: {_v(balance.get('in'))} rows in, {_v(balance.get('out'))} out."),
            Table(["label", "before", "after", "transformed share before", "transformed share after"],
                  [[lab, _v(_get(before, "per_label", lab)), _v(_get(after, "per_label", lab)),
                    _v(_get(before, "transformed_fraction", lab)), _v(_get(after, "transformed_fraction", lab))]
                   for lab in labels])]

    out += [Heading("Stages", 3),
            Table(["stage", "seconds", "fingerprint", "started"],
                  [[s, _v(_get(a.manifests, s, "seconds")), (_get(a.manifests, s, "fingerprint") or "")[:12],
                    _v(_get(a.manifests, s, "started_at"))] for s in UPSTREAM])]
    return out


def _leakage(augment: dict) -> list[Block]:
    """The leakage check (run after augment: augmented train against val and test)."""
    leak = augment.get("leakage")
    if not leak:
        return []
    rows = [[f"{name} (Jaccard >= {_v(leak.get(key))})", _v(_get(leak, name, "pairs")),
             _v(_get(leak, name, "held_out_scripts")), _v(_get(leak, name, "from_variants")),
             _v(_get(leak, name, "per_split"))] for name, key in (("leaks", "threshold"), ("warnings", "warning"))]
    out: list[Block] = [Heading("Leakage: augmented train against val/test", 4),
                        Table(["level", "pairs", "val/test scripts", "pairs from variants", "per split"], rows),
                        Para(f"{_v(augment.get('variants_dropped_for_leakage'))} variants were dropped as near-copies "
                             "of a val/test script; the pairs that remain are in augment/leakage.jsonl.")]
    if _get(leak, "leaks", "pairs"):
        out.append(Para("Warning: scripts in val/test have near-copies in train, so test figures overstate how the "
                        "model does on new scripts. Keep data.dedup enabled, lower data.dedup.threshold or group "
                        "related scripts (data.split.group_key)."))
    return out


def _transform_rates(augment: dict) -> list[Block]:
    """Variants per original, per language, transform and label: equal rates mean no transform is a label cue."""
    rates = augment.get("transform_rates") or {}
    rows = []
    for lang, cells in rates.items():
        labels = sorted(cells.get("originals", {}))
        for name, per_label in cells.items():
            if name != "originals" and len(labels) > 1:
                rows.append([lang, name] + [_v(per_label.get(lab)) for lab in LABELS]
                            + [_v(round(max(per_label.values()) - min(per_label.values()), 4))])
    return [Table(["language", "transform", *[f"{lab} rate" for lab in LABELS], "gap"], rows)] if rows else []


def _data_alarms(a: Inputs) -> list[Block]:
    """Alarms raised by the data stages, shown at the top of the report beside the model's."""
    augment = a.metrics["counts"].get("augment", {})
    out: list[Block] = [Alarm(f"augment: {g['lang']} {g['transform']} is applied at different rates per label "
                              f"({g['rates']}): the model can read the transform as a label cue")
                        for g in augment.get("transform_rate_gaps") or []]
    leaks = _get(augment, "leakage", "leaks", "held_out_scripts")
    if leaks:
        out.append(Alarm(f"leakage: {leaks} val/test scripts have a near-copy in the augmented train set "
                         "(see Data / Leakage)"))
    return out


def _training(a: Inputs) -> list[Block]:
    t = a.metrics["counts"].get("train", {})
    evals = sum(1 for h in a.history if "eval_loss" in h)
    rows = [["steps", _v(t.get("steps"))], ["epochs", _v(t.get("epochs"))], ["train rows", _v(t.get("train_rows"))],
            ["val rows", _v(t.get("val_rows"))], ["train loss (mean)", _v(t.get("train_loss"))],
            ["val loss at start", _v(t.get("val_loss_start"))], ["val loss at end", _v(t.get("val_loss_end"))],
            ["val ROC AUC at end", _v(t.get("val_roc_auc_end"))], ["best checkpoint", _v(t.get("best_checkpoint"))],
            ["resumed from", _v(t.get("resumed_from"))], ["backend", _v(t.get("backend"))],
            ["device", _v(t.get("device"))], ["trainable parameters", _v(t.get("trainable_parameters"))],
            ["seconds", _v(t.get("train_seconds"))],
            ["log history", f"{len(a.history)} entries, {evals} evaluations"]]
    return [Heading("Training"), Table(["item", "value"], rows), _plot(a, "training.png")]


def _conflicts(a: Inputs) -> list[Block]:
    total = _get(a.metrics, "counts", "dedup", "conflicts")
    out: list[Block] = [Heading("Label conflicts")]
    if not a.conflicts:
        return out + [Para("No near-duplicate cluster held both labels.")]
    shown = f"the first {len(a.conflicts)} of {_v(total)}" if total and total > len(a.conflicts) else "all of them"
    out.append(Para(f"Near-duplicate clusters holding both labels ({shown}; the full list is dedup/conflicts.jsonl):"))
    out.append(Table(["ids", "votes", "resolution", "sources"],
                     [[", ".join(i[:12] for i in c.get("ids", [])), _v(c.get("votes")), c.get("resolution"),
                       _v(c.get("sources"))] for c in a.conflicts]))
    return out


def _examples(a: Inputs, title: str, rows: list[dict], what: str) -> list[Block]:
    out: list[Block] = [Heading(title, 3)]
    if not rows:
        return out + [Para(f"None: no {what} at the chosen threshold.")]
    for i, p in enumerate(rows, 1):
        out.append(Para(f"{what.capitalize()} {i}: score {p['score']:.4f}, language {p.get('lang')}, source "
                        f"{p.get('source')}, id {p['id'][:12]}"))
        text = p["text"]
        if text is None:
            out.append(Para("Text not found in split/test.jsonl (evaluate scored another file)."))
            continue
        e = p.get("explanation")
        marks = {u.line: u.contribution for u in e.lines if u.line == u.line_end} if e else {}
        out.append(Highlight(text[:a.excerpt_chars], marks) if e else Code(text[:a.excerpt_chars]))
        if len(text) > a.excerpt_chars:
            out.append(Para(f"(first {a.excerpt_chars} of {len(text)} characters)"))
        if e and e.lines:
            out.append(Table(["line", "contribution", "text"],
                             [[u.line if u.line == u.line_end else f"{u.line}-{u.line_end}", f"{u.contribution:+.4f}",
                               u.text] for u in e.lines]))
    return out


def _faithfulness(a: Inputs) -> list[Block]:
    out: list[Block] = [Heading("Explanations: faithfulness")]
    if a.explain_note:
        out.append(Para(a.explain_note))
    if not a.faithfulness:
        return out + ([] if a.explain_note else [Para("Not measured (report.faithfulness_scripts is 0).")])
    out.append(Para("Worst examples mark their top lines: the lines whose removal lowers P(malicious) most "
                    "(occlusion through predict's own prompt, truncation and scoring; `sgpipe explain`). Are they the "
                    "lines that matter? On true positives of the test split, the mean drop in P(malicious) when each "
                    "script's top-k lines are removed, beside removing k random lines (fixed seed); a script counts "
                    "for k when it has more than k non-blank lines the model read."))
    return out + [Table(["k", "scripts", "mean drop, top-k lines", "mean drop, k random lines"],
                        [[r["k"], r["n"], _m(r["top_drop"]), _m(r["random_drop"])] for r in a.faithfulness])]


def document(a: Inputs) -> list[Block]:
    """The whole report, top to bottom."""
    m = a.metrics
    blocks: list[Block] = [Heading(f"sgpipe report: {a.run_name}", 1)]
    if m["alarm"]:
        blocks.append(Alarm(m["alarm"]))
    blocks += _data_alarms(a)
    blocks += _headline(a) + _threshold(a) + _confusion(a)
    blocks += _groups("Per language", m["per_lang"], m["baseline"]["per_lang"] if m["baseline"] else None)
    blocks += _groups("Per source", m["per_source"], m["baseline"]["per_source"] if m["baseline"] else None)
    blocks += _side_by_side(a) + _language_thresholds(a)
    blocks += [Heading("Plots")] + [_plot(a, f) for f in PLOTS if f != "training.png"]
    blocks += _data_story(a) + _training(a) + _conflicts(a)
    blocks += [Heading("Worst examples")]
    blocks += _examples(a, "False positives (benign scripts with the highest scores)", a.false_positives,
                        "false positive")
    blocks += _examples(a, "False negatives (malicious scripts with the lowest scores)", a.false_negatives,
                        "false negative")
    blocks += _faithfulness(a)
    blocks += [Heading("Resolved configuration"), Code(a.config_yaml)]
    return blocks


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
    for path in (root, *root.parents):
        if path.exists() and not path.is_dir():
            raise StageError(f"report.dir {base}: {path} is a file, not a folder; set report.dir to a folder, e.g. "
                             "--set report.dir=reports")
        if path.exists():
            break
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
    cfg, name = ctx.config.report, ctx.config.run.name
    if name in (".", ".."):
        raise StageError(f"run.name {name!r} would name the report folder itself: choose another run.name")
    evaluated = read_json(ctx.input("evaluate", "metrics.json"))
    chosen = read_json(ctx.input("evaluate", "threshold.json"))
    preds_path = ctx.input("evaluate", "predictions.jsonl")
    preds = _read_jsonl(preds_path)
    y = _labels(preds, preds_path)
    base_path = _optional(ctx, "evaluate", "baseline_predictions.jsonl")
    base_scores = None
    if base_path is not None:
        base_preds = _read_jsonl(base_path)
        if [p["id"] for p in base_preds] != [p["id"] for p in preds]:
            raise StageError(f"{base_path} and {preds_path} list different scripts: rerun `sgpipe evaluate --force`")
        base_scores = np.array([p["score"] for p in base_preds], dtype=np.float64)
    history = read_json(ctx.input("train", "log_history.json"))
    manifests = {s: ctx.manifest(s) for s in UPSTREAM}

    base = evaluated.get("baseline")
    metrics = {**summarise(evaluated["model"], chosen),
               "baseline": {**summarise(base, base["threshold"]), "name": base.get("name")} if base else None,
               "ensemble": ({**summarise(evaluated["ensemble"], evaluated["ensemble"]["threshold"]),
                             "name": evaluated["ensemble"].get("name"), "weights": evaluated["ensemble"].get("weights")}
                            if evaluated.get("ensemble") else None),
               "per_language_thresholds": evaluated.get("per_language_thresholds"),
               "counts": {s: manifests[s].get("counts", {}) for s in UPSTREAM},
               "val_n": evaluated.get("val_n")}
    env_path = _optional(ctx, "train", "environment.json")
    metrics["run_kind"] = run_kind(ctx.config, manifests, read_json(env_path) if env_path else None, metrics)
    write_json(ctx.out / "metrics.json", metrics)

    fps, fns = worst(preds, cfg.worst_examples)
    tps = [p for p in preds if p["label"] == "malicious" and p["prediction"] == "malicious"][:cfg.faithfulness_scripts]
    texts = _texts(ctx.input("split", "test.jsonl"), {p["id"] for p in fps + fns + tps})
    explained, faithful, note = _explanations(ctx, fps + fns, tps, texts, chosen.get("threshold"))
    rejected_path = _optional(ctx, "ingest", "rejected.jsonl")
    inputs = Inputs(
        run_name=name, metrics=metrics, manifests=manifests, history=history,
        conflicts=_read_jsonl(ctx.input("dedup", "conflicts.jsonl"), LIST_LIMIT),
        rejected=_read_jsonl(rejected_path, LIST_LIMIT) if rejected_path else [],
        false_positives=[{**p, "text": texts.get(p["id"]), "explanation": explained.get(p["id"])} for p in fps],
        false_negatives=[{**p, "text": texts.get(p["id"]), "explanation": explained.get(p["id"])} for p in fns],
        faithfulness=faithful, explain_note=note,
        excerpt_chars=cfg.excerpt_chars,
        config_yaml=yaml.safe_dump(ran_config(ctx, manifests), sort_keys=False, allow_unicode=True),
        plots=draw_plots(ctx.out, metrics, preds, y, base_scores, history))
    if faithful is not None:
        write_json(ctx.out / "faithfulness.json", faithful)
    blocks = document(inputs)
    (ctx.out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    images = {f: (ctx.out / f).read_bytes() for f, reason in inputs.plots.items() if reason is None}
    (ctx.out / "report.html").write_text(to_html(blocks, f"sgpipe report: {name}", images), encoding="utf-8")

    report_dir = report_folder(cfg.dir, name, ctx.run_dir)
    (ctx.out / OWNER_FILE).write_text(str(ctx.run_dir.resolve()) + "\n", encoding="utf-8")
    mirror(ctx.out, report_dir)
    files = sorted(p.name for p in ctx.out.iterdir() if p.name != MANIFEST)
    skipped = {f: r for f, r in inputs.plots.items() if r is not None}
    if metrics["alarm"]:
        ctx.log(f"[report] ALARM: {metrics['alarm']}")
    for f, reason in skipped.items():
        ctx.log(f"[report] {f} skipped: {reason}")
    ctx.log(f"[report] {report_dir / 'report.html'} (and report.md, metrics.json, {len(images)} plots)")
    headline = headline_table(metrics)
    ctx.log(md_table(headline.header, headline.rows))
    for sentence in run_kind_sentences(metrics["run_kind"], metrics):
        ctx.log(f"[report] {sentence}")
    return {"report_dir": str(report_dir), "files": files, "alarm": bool(metrics["alarm"]),
            "roc_auc": metrics["roc_auc"], "baseline_roc_auc": base.get("roc_auc") if base else None,
            "plots_skipped": sorted(skipped)}
