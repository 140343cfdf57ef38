"""Stacking of the model's and the TF-IDF baseline's scores: a logistic regression on their logits, fit on VAL.

The two scorers err on different scripts (the baseline reads character n-grams, the model reads tokens in order), so
a weighted sum of their log-odds often beats both. Two weights and an intercept are all that is learnt, so the
~10% validation split is enough, and the test split stays untouched. The threshold of the ensemble must not be
chosen on scores the stacker was fit on: `fit` also returns out-of-fold val scores (k-fold cross-fitting), on which
evaluate picks the threshold by the usual policy.

Saved as JSON (three numbers and a format tag): loading reads no pickle, so a file from elsewhere cannot run code.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.run.records import atomic_write

FORMAT = "sgpipe-stacked-ensemble/1"
_EPS = 1e-6


def _features(model_scores, baseline_scores) -> np.ndarray:
    """The two scores as log-odds, one row per script."""
    s = np.clip(np.column_stack([model_scores, baseline_scores]).astype(np.float64), _EPS, 1 - _EPS)
    return np.log(s / (1 - s))


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
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if d.get("format") != FORMAT:
            raise ValueError(f"{path}: format {d.get('format')!r} is not {FORMAT!r}; rerun `sgpipe evaluate --force`")
        return cls((d["model_weight"], d["baseline_weight"]), d["intercept"])


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


def with_ensemble(classifier, run_dir: str | Path):
    """`classifier` stacked with the baseline when `run_dir` is a run evaluated with evaluation.ensemble=tfidf
    (evaluate/ensemble.json and evaluate/baseline.npz present); else `classifier` itself."""
    folder = Path(run_dir) / "evaluate"
    if not ((folder / "ensemble.json").exists() and (folder / "baseline.npz").exists()):
        return classifier
    from pipeline.evaluation.baseline import TfidfBaseline

    threshold = json.loads((folder / "ensemble.json").read_text(encoding="utf-8")).get("threshold")
    return EnsembleScorer(classifier, TfidfBaseline.load(folder / "baseline.npz"),
                          StackedEnsemble.load(folder / "ensemble.json"), threshold)
