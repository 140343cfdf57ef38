"""PNG plots for the report, drawn on matplotlib's Agg canvas (no display, no pyplot global state, no leaked figures).

Each function draws one figure from numbers the report already holds and returns None when the file was written, or
a short reason when the input cannot make a meaningful plot (one class, no loss logged): the report says so instead
of failing. matplotlib is imported inside the functions, so only the report stage pays for importing it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.evaluation import metrics as M

CLASS_COLORS = {"benign": "#4477aa", "malicious": "#cc3311"}
DPI = 110


def _figure(ncols: int = 1, width: float = 5.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: savefig never looks for an interactive backend
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="png", metadata={"Software": None})  # no version string: same inputs, same bytes


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and y.min() != y.max()


def roc(path: Path, y: np.ndarray, scores: dict[str, np.ndarray], auc: dict[str, float | None]) -> str | None:
    """ROC curve of each scorer (model, baseline) on the same labels, with its AUC in the legend."""
    if not _both_classes(y):
        return "the test set holds one class only, so there is no ROC curve"
    fig, (ax,) = _figure()
    for name, s in scores.items():
        points = M.roc_points(y, s)
        ax.plot(points["fpr"], points["tpr"], label=f"{name} (AUC {_fmt(auc.get(name))})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           title="ROC on test", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    _save(fig, path)
    return None


def pr(path: Path, y: np.ndarray, scores: dict[str, np.ndarray], auc: dict[str, float | None]) -> str | None:
    """Precision-recall curve of each scorer; the chance line is the share of malicious scripts."""
    if not _both_classes(y):
        return "the test set holds one class only, so there is no precision-recall curve"
    fig, (ax,) = _figure()
    for name, s in scores.items():
        points = M.pr_points(y, s)
        ax.plot(points["recall"], points["precision"], drawstyle="steps-post",
                label=f"{name} (PR AUC {_fmt(auc.get(name))})")
    prevalence = float(y.mean())
    ax.axhline(prevalence, ls=":", color="grey", label=f"chance (prevalence {prevalence:.2f})")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall on test",
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    _save(fig, path)
    return None


def confusion(path: Path, matrix: list[list[int]], threshold: float) -> str | None:
    """The 2x2 confusion matrix [[tn, fp], [fn, tp]] with counts and row shares written in each cell."""
    m = np.asarray(matrix, dtype=np.int64)
    if m.shape != (2, 2) or m.sum() == 0:
        return "no confusion matrix in evaluate/metrics.json"
    fig, (ax,) = _figure(width=4.4, height=3.8)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{m[i, j]}\n({share[i, j]:.0%} of row)", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks([0, 1], ["benign", "malicious"])
    ax.set_yticks([0, 1], ["benign", "malicious"])
    ax.set(xlabel="predicted", ylabel="actual", title=f"Confusion at threshold {threshold:.3f}")
    _save(fig, path)
    return None


def score_hist(path: Path, y: np.ndarray, s: np.ndarray, threshold: float) -> str | None:
    """Histogram of P(malicious) per actual class, with the decision threshold."""
    if y.size == 0:
        return "no test predictions"
    fig, (ax,) = _figure(width=6.0)
    bins = np.linspace(0.0, 1.0, 26)
    for value, name in ((0, "benign"), (1, "malicious")):
        part = s[y == value]
        if part.size:
            ax.hist(part, bins=bins, alpha=0.6, color=CLASS_COLORS[name], label=f"{name} (n={part.size})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="score P(malicious)", ylabel="scripts", title="Test scores per class", xlim=(0, 1))
    ax.legend(loc="best")
    _save(fig, path)
    return None


def calibration(path: Path, y: np.ndarray, scores: dict[str, np.ndarray]) -> str | None:
    """Reliability curve: fraction malicious against mean score in equal-width score bins (empty bins left out)."""
    if y.size == 0:
        return "no test predictions"
    fig, (ax,) = _figure()
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect calibration")
    for name, s in scores.items():
        curve = M.calibration_curve(y, s)
        kept = [(x, f) for x, f, n in zip(curve["mean_score"], curve["frac_malicious"], curve["count"]) if n]
        ax.plot([x for x, _ in kept], [f for _, f in kept], marker="o", label=name)
    ax.set(xlabel="mean score in bin", ylabel="fraction malicious in bin", title="Calibration on test",
           xlim=(0, 1), ylim=(-0.01, 1.01))
    ax.legend(loc="upper left")
    _save(fig, path)
    return None


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged quantity; entries without a step or with a non-finite value are left out."""
    pairs = [(h["step"], h[key]) for h in history
             if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])
             and isinstance(h.get("step"), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def training(path: Path, history: list[dict]) -> str | None:
    """Train and val loss, learning rate and grad norm against the optimizer step, from the trainer's log history."""
    loss, val = _series(history, "loss"), _series(history, "eval_loss")
    if not loss[0] and not val[0]:
        return "the training log history holds no loss"
    panels = [("loss", [("train loss", loss), ("val loss", val)])]
    for key, title in (("learning_rate", "learning rate"), ("grad_norm", "grad norm")):
        series = _series(history, key)
        if series[0]:
            panels.append((title, [(title, series)]))
    fig, axes = _figure(ncols=len(panels), width=4.2)
    for ax, (title, lines) in zip(axes, panels):
        for label, (steps, values) in lines:
            if steps:
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3, label=label)
        ax.set(xlabel="step", title=title)
        if len(lines) > 1:
            ax.legend()
    _save(fig, path)
    return None
