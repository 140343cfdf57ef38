"""Compare runs: the parameters that differ, the metrics side by side, the best run, and how each parameter moved
the metric (a sensitivity analysis: each parameter's values against the metric, the others held).

A run's configuration is read back from the run itself: schema defaults <- its config.yaml (sweep trials have one)
<- the config slices its stage manifests recorded, which are what actually ran. Its metrics come from the train
manifest and log history (validation) and the evaluate manifest (test).

Choosing the best run by a validation metric is the default on purpose: picking among runs by test figures turns
the test split into a selection set, and its numbers then overstate how the chosen run does on new scripts.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import flatten
from pipeline.run.records import read_json
from pipeline.run.rundir import RunDir

TRIAL_FILE = "trial.json"  # a sweep trial's status, changes and error
TRIALS = "trials"  # a sweep directory's folder of trial runs

# name -> (direction, meaning). Validation metrics first: they are the ones to choose by.
METRICS: dict[str, tuple[str, str]] = {
    "val_loss": ("minimize", "validation loss of the final (best) checkpoint, unsmoothed two-label cross-entropy, on "
                             "the split training selected on (training.select_on: val unless set)"),
    "val_roc_auc": ("maximize", "validation ROC AUC of the final checkpoint (on the selection split, as val_loss)"),
    "val_balanced_accuracy": ("maximize", "validation balanced accuracy at 0.5"),
    "val_source_loss": ("minimize", "log loss on the out-of-source validation split (data.split.source_val_size)"),
    "val_source_roc_auc": ("maximize", "ROC AUC on the out-of-source validation split"),
    "test_loss": ("minimize", "test log loss of P(malicious)"),
    "test_roc_auc": ("maximize", "test ROC AUC"),
    "test_sensitivity": ("maximize", "test sensitivity at the chosen threshold"),
    "test_specificity": ("maximize", "test specificity at the chosen threshold"),
    "test_source_roc_auc": ("maximize", "ROC AUC on the out-of-source test split (data.split.source_test_size)"),
    "train_seconds": ("minimize", "wall-clock seconds of the train stage"),
}
# Labels rather than parameters: they differ between any two runs and say nothing about the result.
NOT_PARAMETERS = ("run.name", "report.dir", "tracking.tags")


class CompareError(ValueError):
    """A path that is neither a run nor a sweep, or an unknown metric; the message says which and what to pass."""


# ------------------------------------------------------------------------------------------------ one run
def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def run_metrics(run_dir: Path) -> dict[str, float | None]:
    """Every METRICS figure of a run; None where the run has not got that far (or the figure is undefined)."""
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    run = RunDir(run_dir)
    train = run.counts("train")
    out["train_seconds"] = _number(train.get("train_seconds"))
    out["val_loss"], out["val_roc_auc"] = _number(train.get("val_loss_end")), _number(train.get("val_roc_auc_end"))
    if run.log_history.is_file():
        evals = [h for h in read_json(run.log_history) if "eval_loss" in h]
        if evals:  # the last evaluation is the final one, of the checkpoint the run kept
            for name in ("val_loss", "val_roc_auc", "val_balanced_accuracy"):
                key = "eval_loss" if name == "val_loss" else "eval_" + name.removeprefix("val_")
                out[name] = _number(evals[-1].get(key))
    test = run.counts("evaluate")
    out["test_loss"] = _number(test.get("eval_loss"))
    for name in ("roc_auc", "sensitivity", "specificity"):
        out["test_" + name] = _number(test.get(name))
    for name in ("val_source_loss", "val_source_roc_auc", "test_source_roc_auc"):
        out[name] = _number(test.get(name))
    return out


@dataclass
class RunRow:
    name: str
    path: Path
    status: str  # ok | failed | incomplete
    params: dict[str, Any]  # flat dotted keys -> values
    metrics: dict[str, float | None]
    error: str | None = None
    phase: str | None = None  # baseline | sweep (sweep trials only)


def read_run(path: Path, name: str | None = None) -> RunRow:
    trial = read_json(path / TRIAL_FILE) if (path / TRIAL_FILE).is_file() else {}
    done = RunDir(path).manifest("evaluate") is not None
    status = trial.get("status") or ("ok" if done else "incomplete")
    if status == "ok" and not done:
        status = "incomplete"
    return RunRow(name or path.name, path, status, flatten(RunDir(path).config()), run_metrics(path),
                  trial.get("error"), trial.get("phase"))


def discover(paths: list[Path]) -> list[RunRow]:
    """Runs named directly, and every trial of a sweep directory (one holding trials/)."""
    rows = []
    for path in map(Path, paths):
        if (path / TRIALS).is_dir():
            rows += [read_run(p) for p in sorted((path / TRIALS).iterdir()) if p.is_dir()]
        elif RunDir(path).has_trained() or (path / TRIAL_FILE).is_file():
            rows.append(read_run(path))
        else:
            raise CompareError(f"{path} is neither a run directory (no train/manifest.json) nor a sweep directory "
                               f"(no {TRIALS}/): pass runs/<name> folders or a sweep folder")
    names = [r.name for r in rows]
    for r in rows:  # two runs called the same (e.g. runs/a/x and runs/b/x): name them by their parent too
        if names.count(r.name) > 1:
            r.name = f"{r.path.parent.name}/{r.name}"
    return rows


# ------------------------------------------------------------------------------------------------ comparison
@dataclass
class Comparison:
    rows: list[RunRow]
    varied: list[str]  # parameters whose value differs between runs
    metric: str
    best: RunRow | None
    notes: list[str] = field(default_factory=list)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise CompareError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    return metric


def best_run(rows: list[RunRow], metric: str) -> RunRow | None:
    scored = [r for r in rows if r.status == "ok" and r.metrics.get(metric) is not None]
    if not scored:
        return None
    sign = 1 if METRICS[metric][0] == "minimize" else -1
    return min(scored, key=lambda r: sign * r.metrics[metric])  # ties: the first listed (the baseline in a sweep)


def compare(paths: list[Path], metric: str = "val_loss") -> Comparison:
    rows = discover(paths)
    check_metric(metric)
    keys = sorted({k for r in rows for k in r.params} - set(NOT_PARAMETERS))
    varied = [k for k in keys if len({_shown(r.params.get(k)) for r in rows}) > 1]
    notes = []
    if metric.startswith("test_"):
        notes.append(f"best chosen by {metric}, a test figure: the test split becomes a selection set, so report the "
                     "chosen run's test figures with that caveat, or confirm on fresh data")
    return Comparison(rows, varied, metric, best_run(rows, metric), notes)


def table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["run", "status", *c.varied, *METRICS]
    body = []
    for r in c.rows:
        mark = " (best)" if r is c.best else ""
        body.append([r.name + mark, r.status, *(_shown(r.params.get(k)) for k in c.varied),
                     *(_shown(r.metrics[m]) for m in METRICS)])
    return header, body


def sensitivity(c: Comparison) -> dict[str, list[dict]]:
    """For each varied parameter: per value, the mean, spread (population std, min, max) and count of the metric."""
    import numpy as np

    out = {}
    for key in c.varied:
        groups: dict[str, list[float]] = {}
        raw: dict[str, Any] = {}
        for r in c.rows:
            value = r.metrics.get(c.metric)
            if r.status == "ok" and value is not None:
                label = _shown(r.params.get(key))
                groups.setdefault(label, []).append(value)
                raw[label] = r.params.get(key)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw.values())
        order = sorted(groups, key=(lambda k: raw[k]) if numeric else str)
        out[key] = [{"value": label, "mean": float(np.mean(groups[label])), "std": float(np.std(groups[label])),
                     "min": min(groups[label]), "max": max(groups[label]), "n": len(groups[label])}
                    for label in order]
    return out


# ------------------------------------------------------------------------------------------------ rendering
def to_markdown(c: Comparison) -> str:
    from pipeline.report.markdown import md_table, md_text

    header, body = table(c)
    parts = [md_table(header, body)]
    if c.best is not None:
        direction = "lowest" if METRICS[c.metric][0] == "minimize" else "highest"
        parts.append(md_text(f"Best by {c.metric} ({direction}): {c.best.name} = {_shown(c.best.metrics[c.metric])}"))
    else:
        parts.append(md_text(f"No finished run has {c.metric}."))
    failed = [r for r in c.rows if r.status == "failed"]
    parts += [md_text(f"Failed: {r.name}: {r.error or 'no error recorded'}") for r in failed]
    for key, points in sensitivity(c).items():
        parts.append(md_table([key, f"mean {c.metric}", "std", "min", "max", "runs"],
                              [[p["value"], _shown(p["mean"]), _shown(p["std"]), _shown(p["min"]), _shown(p["max"]),
                                p["n"]] for p in points]))
    parts += [md_text("Note: " + n) for n in c.notes]
    return "\n\n".join(parts) + "\n"


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab or CR) would be run as a formula.
    Plain numbers such as -1 or 1e-05 are left alone: a spreadsheet reads them as numbers, never as formulas."""
    text = _shown(value) if not isinstance(value, str) else value
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def to_csv(c: Comparison) -> str:
    header, body = table(c)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in [*header, "path", "error"]])
    for r, row in zip(c.rows, body):
        writer.writerow([csv_cell(v) for v in [*row, str(r.path), r.error or ""]])
    return buf.getvalue()


def sensitivity_plots(c: Comparison, out_dir: Path) -> list[Path]:
    """One PNG per varied parameter: each run's metric as a dot, the mean per value with a +-1 std bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    for key, points in sensitivity(c).items():
        if not points:
            continue
        fig = Figure(figsize=(5.5, 4.0), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)  # Agg explicitly: no display, no pyplot state
        ax = fig.subplots()
        xs = list(range(len(points)))
        for x, p in zip(xs, points):
            values = [r.metrics[c.metric] for r in c.rows if r.status == "ok" and r.metrics.get(c.metric) is not None
                      and _shown(r.params.get(key)) == p["value"]]
            ax.scatter([x] * len(values), values, color="#999999", s=14, zorder=2)
        ax.errorbar(xs, [p["mean"] for p in points], yerr=[p["std"] for p in points], marker="o", capsize=4,
                    color="#4477aa", zorder=3, label="mean +- std")
        ax.set_xticks(xs, [p["value"][:24] for p in points])
        ax.set(xlabel=key, ylabel=c.metric, title=f"{c.metric} by {key}")
        ax.legend(loc="best")
        path = out_dir / f"sensitivity_{key}.png"
        fig.savefig(path, format="png", metadata={"Software": None})
        written.append(path)
    return written


def write(c: Comparison, out_dir: Path) -> dict[str, Path]:
    """comparison.md, comparison.csv, best.json and the sensitivity plots, in out_dir."""
    from pipeline.run.records import atomic_write, write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "comparison.md", "csv": out_dir / "comparison.csv", "best": out_dir / "best.json"}
    with atomic_write(files["markdown"]) as f:
        f.write(to_markdown(c))
    with atomic_write(files["csv"]) as f:
        f.write(to_csv(c))
    best = c.best
    write_json(files["best"], {"metric": c.metric, "direction": METRICS[c.metric][0],
                               "run": best.name if best else None, "path": str(best.path) if best else None,
                               "value": best.metrics[c.metric] if best else None,
                               "params": {k: best.params.get(k) for k in c.varied} if best else None,
                               "notes": c.notes})
    for i, path in enumerate(sensitivity_plots(c, out_dir)):
        files[f"plot{i}"] = path
    return files
