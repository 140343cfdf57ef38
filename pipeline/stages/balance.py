"""Balance: over- and under-sampling of the training split (train only), with imbalanced-learn on row indices.

hybrid (default): oversample the minority up to `oversample_ratio` x majority by repeating rows, then undersample the
majority until minority/majority = `target_ratio`. Repeats are drawn from originals and variants alike, never new
variants: generating extra variants for the minority only would make "transformed" a cue for the minority label,
the very shortcut augment avoids. The manifest shows the transformed fraction per label before and after.

Outputs: train.jsonl.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..records import Record, read_records, write_records
from ..runner import StageContext, StageError


def resample(labels: list[str], method: str, oversample_ratio: float, target_ratio: float, seed: int) -> np.ndarray:
    """Row indices of the balanced set (sorted, repeats allowed)."""
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    idx = np.arange(len(labels)).reshape(-1, 1)
    y = np.asarray(labels)

    def ratio() -> float:
        counts = Counter(y.tolist())
        return min(counts.values()) / max(counts.values())

    if method in ("oversample", "hybrid") and ratio() < oversample_ratio:
        idx, y = RandomOverSampler(sampling_strategy=oversample_ratio, random_state=seed).fit_resample(idx, y)
    if method in ("undersample", "hybrid") and ratio() < target_ratio:
        idx, y = RandomUnderSampler(sampling_strategy=target_ratio, random_state=seed).fit_resample(idx, y)
    return np.sort(idx.ravel())


def _describe(records: list[Record]) -> dict:
    per_label = Counter(r.label for r in records)
    return {"n": len(records), "per_label": dict(sorted(per_label.items())),
            "per_lang": {f"{lab}/{lang}": n for (lab, lang), n in sorted(Counter((r.label, r.lang) for r in records).items())},
            "transformed_fraction": {lab: round(sum(1 for r in records if r.label == lab and r.transforms) / n, 4)
                                     for lab, n in sorted(per_label.items())}}


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.balance
    records = list(read_records(ctx.input("augment", "train.jsonl")))
    if len({r.label for r in records}) < 2:
        raise StageError("the training split holds one label only: nothing to balance or learn. Add data of the "
                         "other label.")
    rows = resample([r.label for r in records], cfg.method, cfg.oversample_ratio, cfg.target_ratio,
                    ctx.config.run.seed)
    balanced = [records[i] for i in rows]
    write_records(ctx.out / "train.jsonl", balanced)
    before, after = _describe(records), _describe(balanced)
    ctx.log(f"[balance] {cfg.method}: {before['per_label']} -> {after['per_label']}")
    return {"method": cfg.method, "in": len(records), "out": len(balanced), "before": before, "after": after}
