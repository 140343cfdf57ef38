"""Stacking of the model's and the TF-IDF baseline's scores: a logistic regression on their logits, fit on VAL.

The two scorers err on different scripts (the baseline reads character n-grams, the model reads tokens in order), so
a weighted sum of their log-odds often beats both. Two weights and an intercept are all that is learnt, so the
~10% validation split is enough, and the test split stays untouched. The threshold of the ensemble must not be
chosen on scores the stacker was fit on: `fit` also returns out-of-fold val scores (k-fold cross-fitting), on which
evaluate picks the threshold by the usual policy.

Saved as JSON (three numbers and a format tag): loading reads no pickle, so a file from elsewhere cannot run code.
A run evaluated with the ensemble keeps the pair in evaluate/ (ensemble.json beside the baseline's baseline.npz);
`sgpipe export` copies the pair into the export, so predict serves the same ensemble from the run and from its
export, on the PyTorch and on the ONNX path alike (`with_ensemble`). The baseline is scored with numpy alone
(baseline.SavedBaseline), so the ONNX path still imports neither torch nor sklearn.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pipeline.run.records import atomic_write
from pipeline.run.rundir import RunDir

FORMAT = "sgpipe-stacked-ensemble/1"
STACK_FILE, BASELINE_FILE = "ensemble.json", "baseline.npz"  # the pair evaluate writes and export copies
_EPS = 1e-6


def log_odds(p) -> np.ndarray:
    """Probabilities as log-odds, clipped to [_EPS, 1 - _EPS] so a score of exactly 0 or 1 stays finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _features(model_scores, baseline_scores) -> np.ndarray:
    """The two scores as log-odds, one row per script."""
    return log_odds(np.column_stack([model_scores, baseline_scores]))


class StackedEnsemble:
    """P(malicious) = sigmoid(a * logit(model) + b * logit(baseline) + c)."""

    def __init__(self, coef: tuple[float, float] = (1.0, 1.0), intercept: float = 0.0, C: float = 1.0):
        self.coef, self.intercept, self.C = tuple(float(c) for c in coef), float(intercept), C

    def _logreg(self, seed: int):
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=self.C, class_weight="balanced", max_iter=1000, random_state=seed)

    def fit(self, y, model_scores, baseline_scores, folds: int = 5, seed: int = 0) -> np.ndarray:
        """Fit on val; return out-of-fold val scores (each script scored by a stacker that did not see it)."""
        from sklearn.model_selection import StratifiedKFold

        y, x = np.asarray(y).astype(np.int64), _features(model_scores, baseline_scores)
        if set(np.unique(y).tolist()) != {0, 1}:
            raise ValueError("StackedEnsemble.fit: the validation split needs both labels to fit the ensemble")
        k = int(min(folds, np.bincount(y).min()))
        oof = np.empty(len(y), dtype=np.float64)
        if k >= 2:
            for train, held in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
                oof[held] = self._logreg(seed).fit(x[train], y[train]).predict_proba(x[held])[:, 1]
        lr = self._logreg(seed).fit(x, y)
        self.coef, self.intercept = (float(lr.coef_[0, 0]), float(lr.coef_[0, 1])), float(lr.intercept_[0])
        return oof if k >= 2 else self.predict(model_scores, baseline_scores)

    def predict(self, model_scores, baseline_scores) -> np.ndarray:
        z = _features(model_scores, baseline_scores) @ np.array(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict:
        return {"format": FORMAT, "model_weight": self.coef[0], "baseline_weight": self.coef[1],
                "intercept": self.intercept, "features": "log-odds of P(malicious)"}

    def save(self, path: str | Path, threshold: float | None = None) -> None:
        """Write the weights (and the threshold chosen for the ensemble on val, which predict uses)."""
        with atomic_write(path, "w") as f:
            json.dump({**self.to_json(), "threshold": threshold}, f, indent=2)

    @classmethod
    def load(cls, path: str | Path) -> "StackedEnsemble":
        try:
            return cls(*_read_stack(path)[:2])
        except ValueError as e:
            raise ValueError(f"{e}; rerun `sgpipe evaluate --force`") from None


def _read_stack(path: str | Path) -> tuple[tuple[float, float], float, float | None]:
    """((model weight, baseline weight), intercept, threshold) of an ensemble.json; ValueError naming it if damaged."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        found = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{path}: format {found!r} is not {FORMAT!r}")
    try:
        weights = (float(d["model_weight"]), float(d["baseline_weight"]))
        threshold = None if d.get("threshold") is None else float(d["threshold"])
        return weights, float(d["intercept"]), threshold
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is damaged (bad or missing {e})") from None


class EnsembleScorer:
    """A classifier stacked with the run's baseline, scoring like a Classifier (`score_records`, `threshold`), so
    predict serves the ensemble a run was evaluated with."""

    def __init__(self, classifier, baseline, stack: StackedEnsemble, threshold: float | None):
        self.classifier, self.baseline, self.stack, self.threshold = classifier, baseline, stack, threshold

    # The baseline reads every line, whatever the model's truncation cut: an explanation of the ensemble attributes
    # to every line (explain.ClassifierScorer.read_mask reads this).
    reads_whole_text = True

    def score_records(self, records, batch_size: int = 16) -> np.ndarray:
        model = self.classifier.score_records(records, batch_size)
        return self.stack.predict(model, self.baseline.predict_proba([r.text for r in records]))

    def score(self, texts, langs, batch_size: int = 16) -> np.ndarray:
        """P(malicious) of the ensemble per script: what predict serves, and so what explain explains."""
        model = self.classifier.score(list(texts), list(langs), batch_size)
        return self.stack.predict(model, self.baseline.predict_proba(list(texts)))


def _fix(folder: Path, is_run: bool) -> str:
    run = folder.parent
    return (f"rerun `sgpipe evaluate --force --run-dir {run}` to write both again (add `--set "
            "evaluation.ensemble=none` to serve the model alone)" if is_run else
            f"export again from its run directory (`sgpipe export {folder} --run-dir RUN`)")


def load_ensemble(folder: str | Path, is_run: bool = True):
    """(baseline, stack, threshold) from `folder` holding ensemble.json and baseline.npz; None when it holds
    neither. One without the other, or a damaged one, raises an error naming the file and the fix: serving the model
    alone in its place would change every score and verdict without a word."""
    from pipeline.evaluation.baseline import SavedBaseline

    folder = Path(folder)
    stack_file, baseline_file = folder / STACK_FILE, folder / BASELINE_FILE
    present = [f for f in (stack_file, baseline_file) if f.exists()]
    if not present:
        return None
    if len(present) == 1:
        (missing,) = {stack_file, baseline_file} - set(present)
        raise FileNotFoundError(f"{missing} is missing beside {present[0]} (the stacked ensemble needs both the "
                                f"stacker and the TF-IDF baseline). Fix: {_fix(folder, is_run)}")
    try:
        weights, intercept, threshold = _read_stack(stack_file)
        return SavedBaseline(baseline_file), StackedEnsemble(weights, intercept), threshold
    except ValueError as e:
        raise ValueError(f"{e}. Fix: {_fix(folder, is_run)}") from None


def ensemble_folder(path: str | Path) -> tuple[Path, bool]:
    """Where a run directory (its evaluate/) or an export (its own folder) keeps the ensemble pair; whether a run."""
    evaluated = RunDir(path).stage("evaluate")
    return (evaluated, True) if evaluated.is_dir() else (Path(path), False)


def with_ensemble(classifier, path: str | Path):
    """`classifier` stacked with the baseline when `path` (a run directory or an export) carries an ensemble
    (evaluation.ensemble=tfidf: ensemble.json and baseline.npz); else `classifier` itself."""
    loaded = load_ensemble(*ensemble_folder(path))
    return classifier if loaded is None else EnsembleScorer(classifier, *loaded)


def copy_ensemble(folder: str | Path, out: str | Path, present: bool) -> None:
    """Copy the ensemble pair of `folder` (a run's evaluate/, checked by `load_ensemble` first) into an export; when
    the run has none, remove any pair an earlier export left in `out`, which would stack this model with another
    run's baseline."""
    for name in (STACK_FILE, BASELINE_FILE):
        if present:
            shutil.copy(Path(folder) / name, Path(out) / name)
        else:
            (Path(out) / name).unlink(missing_ok=True)
