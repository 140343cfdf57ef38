"""Balance: over- and under-sampling of the training split (train only), on row indices.

hybrid (default): oversample the minority up to `oversample_ratio` x majority by repeating rows, then undersample the
majority until minority/majority = `target_ratio`. Repeats are drawn from originals and variants alike, never new
variants: generating extra variants for the minority only would make "transformed" a cue for the minority label,
the very shortcut augment avoids. Undersampling drops repeated rows first, then keeps variants and real scripts so
that the majority's transformed share equals the minority's (random within each kind). The old random undersampler
dropped 115 of 630 benign originals on the dev set while keeping 367 of 473 benign variants. Dropping variants only
(all originals kept) would leave the majority with fewer transformed rows than the minority, "transformed" a label cue
again; `method: oversample` (or `none` with training.class_weights) keeps every real script without that cost. The
manifest shows the transformed fraction and the distinct originals per label before and after.

per_language: the same resampling within each language. Balanced over the whole split only, a language whose
scripts are mostly of one label (on the shared dev set 22% of JavaScript is malicious, 58% of bash) stays so, and
the model learns the language itself as a prior on the label: a cue that moves every score of that language on data
whose shares differ, and scores that are not on one scale across languages. A language with under MIN_LANGUAGE_ROWS
rows of a label is kept as it is (listed in the manifest).

Outputs: train.jsonl.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from pipeline.run.records import Record, RecordHead, RecordWriter, record_lines
from pipeline.run.runner import StageContext, StageError

REPEAT, VARIANT, ORIGINAL = 0, 1, 2  # undersampling drops the lowest kind first


def row_kinds(records: list[Record] | list[RecordHead]) -> np.ndarray:
    """Each row's kind: a repeat of a row met before (same id), a variant (has a parent), or an original."""
    seen: set[str] = set()
    kinds = np.empty(len(records), dtype=np.int64)
    for k, r in enumerate(records):
        kinds[k] = REPEAT if r.id in seen else VARIANT if r.parent_id else ORIGINAL
        seen.add(r.id)
    return kinds


def undersample(idx: np.ndarray, y: np.ndarray, kinds: np.ndarray, target_ratio: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop majority rows until minority/majority >= target_ratio: repeats first, then variants or originals so that
    the majority keeps the minority's transformed share (variants, repeats included, per row): "was transformed"
    stays as common in both labels (augment's no-shortcut promise) and as many real scripts survive as that allows."""
    counts = Counter(y.tolist())
    minority, majority = min(counts, key=lambda k: (counts[k], k)), max(counts, key=lambda k: (counts[k], k))
    keep_n = int(counts[minority] / target_ratio)
    rows = np.flatnonzero(y == majority)
    if len(rows) <= keep_n:
        return idx, y
    kind = kinds[idx[rows]].copy()
    _, first_at = np.unique(idx[rows], return_index=True)
    repeated = np.ones(len(rows), dtype=bool)
    repeated[first_at] = False
    kind[repeated] = REPEAT  # a second copy of one row (oversampling) is a repeat, whatever its row is
    minority_share = float(np.mean(kinds[idx[y == minority]] == VARIANT))
    n_orig, n_var = int(np.sum(kind == ORIGINAL)), int(np.sum(kind == VARIANT))
    keep_var = min(n_var, max(int(round(minority_share * keep_n)), keep_n - n_orig))
    keep_orig = min(n_orig, keep_n - keep_var)
    rng = np.random.default_rng(seed)
    chosen = [rows[kind == k][rng.permutation(int(np.sum(kind == k)))[:n]]
              for k, n in ((VARIANT, keep_var), (ORIGINAL, keep_orig))]
    keep = np.ones(len(y), dtype=bool)
    keep[rows] = False
    keep[np.concatenate(chosen)] = True
    return idx[keep], y[keep]


def resample(labels: list[str], method: str, oversample_ratio: float, target_ratio: float, seed: int,
             kinds: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the balanced set (sorted, repeats allowed). `kinds` (see `row_kinds`; default: all
    originals) decides which majority rows undersampling drops first."""
    from imblearn.over_sampling import RandomOverSampler

    idx = np.arange(len(labels))
    y = np.asarray(labels)
    kinds = np.full(len(labels), ORIGINAL) if kinds is None else np.asarray(kinds)

    def ratio() -> float:
        counts = Counter(y.tolist())
        return min(counts.values()) / max(counts.values())

    def rows_to_add() -> int:  # imblearn's own count, which it refuses when it is 0 (a ratio just under the goal)
        counts = Counter(y.tolist())
        return int(max(counts.values()) * oversample_ratio - min(counts.values()))

    if method in ("oversample", "hybrid") and rows_to_add() > 0:
        over, y = RandomOverSampler(sampling_strategy=oversample_ratio, random_state=seed).fit_resample(
            idx.reshape(-1, 1), y)
        idx = over.ravel()
    if method in ("undersample", "hybrid") and ratio() < target_ratio:
        idx, y = undersample(idx, y, kinds, target_ratio, seed)
    return np.sort(idx)


def _describe(records: list[Record] | list[RecordHead]) -> dict:
    per_label = Counter(r.label for r in records)
    return {"n": len(records), "per_label": dict(sorted(per_label.items())),
            "per_lang": {f"{lab}/{lang}": n for (lab, lang), n in sorted(Counter((r.label, r.lang) for r in records).items())},
            "transformed_fraction": {lab: round(sum(1 for r in records if r.label == lab and r.transforms) / n, 4)
                                     for lab, n in sorted(per_label.items())},
            "distinct_originals": {lab: len({r.id for r in records if r.label == lab and not r.parent_id})
                                   for lab in sorted(per_label)}}


# Per language, a label with fewer rows than this in a language leaves that language as it is: balancing it would
# repeat each of those few scripts many times over (3 malicious VBScript scripts in the dev set's train split: x7).
MIN_LANGUAGE_ROWS = 10


def balanced_rows(labels: list[str], langs: list[str], kinds: np.ndarray, method: str, oversample_ratio: float,
                  target_ratio: float, seed: int, per_language: bool) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """(row indices of the balanced set, sorted; the languages kept as they are, with their label counts).

    Per language, each language is resampled on its own, with its own seed (seed + its rank among the languages),
    except one with fewer than MIN_LANGUAGE_ROWS rows of a label, which is kept as it is."""
    if not per_language:
        return resample(labels, method, oversample_ratio, target_ratio, seed, kinds=kinds), {}
    rows, kept = [], {}
    labels, langs = np.asarray(labels), np.asarray(langs)
    for rank, lang in enumerate(sorted(set(langs.tolist()))):
        idx = np.flatnonzero(langs == lang)
        counts = Counter(labels[idx].tolist())
        if len(counts) < 2 or min(counts.values()) < MIN_LANGUAGE_ROWS:
            kept[lang] = dict(sorted(counts.items()))
            rows.append(idx)
        else:
            rows.append(idx[resample(labels[idx].tolist(), method, oversample_ratio, target_ratio, seed + rank,
                                     kinds=kinds[idx])])
    return np.sort(np.concatenate(rows)), kept


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.balance
    # Balancing reads no text: each row's head, and its line to copy once per time it is drawn.
    lines = [line for _, line in record_lines(ctx.input("augment", "train.jsonl"))]
    records = [RecordHead.of_line(line) for line in lines]
    if len({r.label for r in records}) < 2:
        raise StageError("the training split holds one label only: nothing to balance or learn. Add data of the "
                         "other label.")
    rows, kept = balanced_rows([r.label for r in records], [r.lang for r in records], row_kinds(records),
                               cfg.method, cfg.oversample_ratio, cfg.target_ratio, ctx.config.run.seed,
                               cfg.per_language)
    if kept:
        ctx.log(f"[balance] per language: kept as they are (a label under {MIN_LANGUAGE_ROWS} rows): "
                + ", ".join(f"{lang} {counts}" for lang, counts in kept.items()))
    balanced = [records[i] for i in rows]
    with RecordWriter.open(ctx.out / "train.jsonl") as out:
        for i in rows:
            out.write_line(lines[i])
    before, after = _describe(records), _describe(balanced)
    ctx.log(f"[balance] {cfg.method}{' per language' if cfg.per_language else ''}: {before['per_label']} -> "
            f"{after['per_label']}")
    return {"method": cfg.method, "per_language": cfg.per_language, "languages_kept_as_they_are": kept,
            "in": len(records), "out": len(balanced), "before": before, "after": after}
