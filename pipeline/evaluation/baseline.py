"""The cheap baseline the report shows beside the LLM: TF-IDF over character n-grams + logistic regression.

If a fine-tuned LLM cannot beat this, the data has shortcuts or the fine-tune failed; either way the reader must see
it. Character n-grams within word boundaries ("char_wb") catch the tokens that matter in scripts (`iex`, `-enc`,
`FromBase64String`, `/dev/tcp/`) without a language-specific tokenizer.

Saved models hold no pickle: the vocabulary, idf weights and the linear model are written to one .npz file (loaded
with allow_pickle=False) and the sklearn objects are rebuilt from them, so loading a file from elsewhere cannot run
code. `SavedBaseline` scores such a file with numpy alone (what predict serves with an ensemble: importing sklearn
costs ~2 s, the ONNX fast path starts in well under one), so sklearn is imported only where a baseline is fitted.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.run.records import atomic_write

FORMAT = "sgpipe-tfidf-baseline/1"


class TfidfBaseline:
    """TF-IDF (char_wb n-grams, sublinear tf) + class-balanced logistic regression; scores are P(malicious).

    Texts are cut to their first `max_chars` characters (huge minified files would otherwise dominate fit time) and
    lowercased by default, so random-case obfuscation (`InVoKe-ExPrEsSiOn`) maps to the same n-grams.
    Deterministic: liblinear with a fixed `seed`, and the vectorizer has no randomness.
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 5), max_features: int = 200_000, min_df: int = 2,
                 C: float = 4.0, lowercase: bool = True, max_chars: int = 20_000, max_iter: int = 1000,
                 seed: int = 0):
        self.params = {"ngram_range": list(ngram_range), "max_features": max_features, "min_df": min_df, "C": C,
                       "lowercase": lowercase, "max_chars": max_chars, "max_iter": max_iter, "seed": seed}
        self.pipeline = None  # sklearn's Pipeline(tfidf, logreg) once fitted or loaded

    def _vectorizer(self, min_df: int, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        return TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(p["ngram_range"]), lowercase=p["lowercase"],
                               sublinear_tf=True, max_features=None if vocabulary else p["max_features"],
                               min_df=min_df, vocabulary=vocabulary, dtype=np.float64)

    def _logreg(self):
        from sklearn.linear_model import LogisticRegression

        p = self.params
        return LogisticRegression(solver="liblinear", C=p["C"], class_weight="balanced", max_iter=p["max_iter"],
                                  random_state=p["seed"])

    def _cut(self, texts: Sequence[str]) -> list[str]:
        return [t[: self.params["max_chars"]] for t in texts]

    def fit(self, texts: Sequence[str], y: Sequence[int]) -> "TfidfBaseline":
        """Fit on texts with labels y (1 = malicious, 0 = benign; see `Record.y`)."""
        y = np.asarray(y).astype(np.int64)
        if len(texts) != y.size:
            raise ValueError(f"TfidfBaseline.fit: {len(texts)} texts but {y.size} labels")
        if set(np.unique(y).tolist()) != {0, 1}:
            raise ValueError(f"TfidfBaseline.fit: labels must contain both 0 (benign) and 1 (malicious), got "
                             f"{sorted(set(y.tolist()))}; check the train split")
        # min_df=2 drops n-grams seen in a single script (mostly random strings); tiny sets cannot afford it
        min_df = self.params["min_df"] if len(texts) >= 10 * self.params["min_df"] else 1
        from sklearn.pipeline import Pipeline

        self.pipeline = Pipeline([("tfidf", self._vectorizer(min_df)), ("logreg", self._logreg())])
        self.pipeline.fit(self._cut(texts), y)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(malicious) for each text, shape (n,)."""
        if self.pipeline is None:
            raise RuntimeError("TfidfBaseline: call fit() or TfidfBaseline.load(path) before predict_proba()")
        return self.pipeline.predict_proba(self._cut(texts))[:, 1]

    def save(self, path: str | Path) -> None:
        """Write vocabulary, idf and the linear model to one .npz (no pickle), atomically."""
        if self.pipeline is None:
            raise RuntimeError("TfidfBaseline: nothing to save; call fit() first")
        vec, lr = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["logreg"]
        terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)  # term at its column index
        # JSON (ASCII-escaped) rather than a numpy string array: numpy strips trailing NULs and n-grams may have them
        meta = json.dumps({"format": FORMAT, "params": self.params, "vocabulary": terms}, ensure_ascii=True)
        with atomic_write(path, "wb") as f:
            np.savez_compressed(f, meta=np.array(meta), idf=vec.idf_, coef=lr.coef_, intercept=lr.intercept_)

    @classmethod
    def load(cls, path: str | Path) -> "TfidfBaseline":
        """Rebuild a model written by `save`; predictions are identical to the saved model's."""
        from sklearn.pipeline import Pipeline

        meta, idf, coef, intercept = read_saved(path)
        p = meta["params"]
        model = cls(ngram_range=tuple(p["ngram_range"]), max_features=p["max_features"], min_df=p["min_df"], C=p["C"],
                    lowercase=p["lowercase"], max_chars=p["max_chars"], max_iter=p["max_iter"], seed=p["seed"])
        vec = model._vectorizer(1, vocabulary={t: i for i, t in enumerate(meta["vocabulary"])})
        vec.idf_ = idf  # the setter builds the fitted TfidfTransformer around the stored weights
        lr = model._logreg()
        lr.classes_, lr.coef_, lr.intercept_ = np.array([0, 1]), coef, intercept
        lr.n_features_in_ = coef.shape[1]
        model.pipeline = Pipeline([("tfidf", vec), ("logreg", lr)])
        return model


def out_of_fold_scores(texts: Sequence[str], y: Sequence[int], groups: Sequence[str], *, folds: int = 5,
                       seed: int = 0) -> np.ndarray:
    """P(malicious) for each text from a TfidfBaseline that never saw its group: `folds` fits, each on the other folds.

    A group (an original script with its augmented variants and oversampled copies) sits in one fold, so no text is
    scored by a model fit on itself or on a variant of itself. Groups go to folds by a permutation seeded with `seed`.
    A fold whose training part lacks a class is not fit: its texts get the training rows' malicious share.
    """
    y = np.asarray(y).astype(np.int64)
    distinct = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = {distinct[i]: k % folds for k, i in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    out = np.full(len(texts), float(y.mean()))
    for k in range(folds):
        held, fit = fold == k, fold != k
        if held.any() and len(set(y[fit].tolist())) == 2:
            model = TfidfBaseline(seed=seed).fit([t for t, f in zip(texts, fit) if f], y[fit])
            out[held] = model.predict_proba([t for t, h in zip(texts, held) if h])
    return out


def read_saved(path: str | Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(meta, idf, coef, intercept) of a file written by `TfidfBaseline.save`. A missing file raises
    FileNotFoundError, a damaged or foreign one ValueError; both name the file."""
    try:
        with open(path, "rb") as f:  # np.load would read other bytes as a pickle and advise loading it unsafely
            if f.read(4) != b"PK\x03\x04":
                raise ValueError(f"{path} is damaged (not an .npz archive)")
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}; "
                                 "re-fit and save the baseline with this version of sgpipe")
            idf, coef, intercept = z["idf"], z["coef"], z["intercept"]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:  # truncated, not an npz
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise e if str(path) in str(e) else ValueError(f"{path} is damaged ({e})") from None
    if not (idf.shape == (len(meta["vocabulary"]),) and coef.shape == (1, idf.size) and intercept.shape == (1,)):
        raise ValueError(f"{path} is damaged: {idf.size} idf weights and {coef.shape} coefficients for a vocabulary "
                         f"of {len(meta['vocabulary'])}")
    return meta, idf, coef, intercept


class SavedBaseline:
    """A baseline saved by `TfidfBaseline.save`, scored with numpy alone: the same P(malicious) as the sklearn
    pipeline `TfidfBaseline.load` rebuilds (tests/test_baseline.py), without sklearn's ~2 s import."""

    _white_spaces = re.compile(r"\s\s+")  # as sklearn's vectorizer: runs of whitespace become one space

    def __init__(self, path: str | Path):
        meta, self.idf, coef, intercept = read_saved(path)
        p = meta["params"]
        (self.min_n, self.max_n), self.lowercase, self.max_chars = p["ngram_range"], p["lowercase"], p["max_chars"]
        self.index = {term: i for i, term in enumerate(meta["vocabulary"])}
        self.coef, self.intercept = coef[0].astype(np.float64), float(intercept[0])
        self._word_columns: dict[str, list[int]] = {}  # words recur across and within scripts: analysed once

    def _columns(self, word: str) -> list[int]:
        """Vocabulary columns of one word's n-grams (sklearn's `char_wb`: padded with one space, a word shorter than
        n counted once, at the first n that covers it), with repeats."""
        cached = self._word_columns.get(word)
        if cached is None:
            padded, grams = f" {word} ", []
            for n in range(self.min_n, self.max_n + 1):
                grams.extend(padded[i:i + n] for i in range(max(1, len(padded) - n + 1)))
                if len(padded) <= n:
                    break
            cached = [self.index[g] for g in grams if g in self.index]
            if len(self._word_columns) > 500_000:  # a bound on memory over a very long predict
                self._word_columns.clear()
            self._word_columns[word] = cached
        return cached

    def decision(self, text: str) -> float:
        """Log-odds of P(malicious): sublinear tf times idf, l2-normalised, through the linear model. A script's
        n-gram counts are the sums of its words' (char_wb n-grams never cross a word boundary)."""
        text = text[: self.max_chars]
        text = self._white_spaces.sub(" ", text.lower() if self.lowercase else text)
        counts: Counter = Counter()
        for word, times in Counter(text.split()).items():
            for col in self._columns(word):
                counts[col] += times
        if not counts:
            return self.intercept
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))) * self.idf[cols]
        return float(values @ self.coef[cols] / np.sqrt(values @ values) + self.intercept)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(malicious) for each text, shape (n,)."""
        return np.array([1.0 / (1.0 + np.exp(-self.decision(t))) for t in texts], dtype=np.float64)
