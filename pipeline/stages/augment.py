"""Augment: label-preserving, language-aware variants of TRAIN scripts only, for both classes alike.

Every script, malicious or benign, gets the same number of attempts with the same transform probabilities, so no
transform can become a shortcut for a label (the failure of augmenting malicious samples only: "obfuscated =
malicious"). Equal attempts are not enough: transforms apply less often to short one-liners, which are more often
malicious, so on the shared dev set 84% of benign but 64% of malicious scripts got a variant. `equalise` therefore
keeps, within each language, the same variant rate for both labels (the lower one), so "has been transformed" says
nothing about the label. The manifest records the variant rate and transform counts per label, so that is checkable.
Each variant's RNG is seeded from (run seed, parent id, variant number): the output does not depend on input order.

Outputs: train.jsonl (originals then variants, each variant with parent_id and transforms).
"""
from __future__ import annotations

import ast
import hashlib
import random
import warnings
from collections import Counter, defaultdict
from typing import Iterable, Iterator

from ..records import Record, read_records, text_id
from ..runner import StageContext
from ..transforms import augment_text


def _parses(text: str) -> bool:
    """Python syntax check: parses only, never compiles to bytecode or runs anything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def variants(records: Iterable[Record], split: str, transforms: list[str], n: int, p: float, seed: int,
             stats: Counter) -> Iterator[Record]:
    """Yield new variants of `records`. Refuses any split but train: augmenting val/test would leak."""
    if split != "train":
        raise ValueError(f"augmentation applies to the train split only, not {split!r}")
    seen: set[str] = set()
    for r in records:
        seen.add(r.id)
        python_ok = r.lang == "python" and _parses(r.text)
        for k in range(n):
            digest = hashlib.sha256(f"{seed}:{r.id}:{k}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:8], "big"))
            text, applied = augment_text(r.text, r.lang, transforms, rng, p)
            vid = text_id(text)
            if not applied or vid in seen:
                stats[f"unchanged_or_duplicate:{r.label}"] += 1
                continue
            if python_ok and not _parses(text):  # a transform must never break valid Python
                stats[f"python_parse_failures:{r.label}"] += 1
                continue
            seen.add(vid)
            stats[f"variants:{r.label}"] += 1
            for t in applied:
                stats[f"transform:{t}:{r.label}"] += 1
            yield Record(id=vid, text=text, label=r.label, lang=r.lang, source=r.source, group=r.group,
                         parent_id=r.id, transforms=list(applied))


def equalise(originals: list[Record], made: list[Record], seed: int) -> list[Record]:
    """Subsample variants so that, per language, variants/originals is the same for both labels (the lower rate)."""
    n_orig = Counter((r.lang, r.label) for r in originals)
    by_cell: dict[tuple, list[Record]] = defaultdict(list)
    for v in made:
        by_cell[(v.lang, v.label)].append(v)
    keep: set[str] = set()
    for lang in sorted({lang for lang, _ in n_orig}):
        labels = [lab for (lg, lab) in n_orig if lg == lang]
        rate = min(len(by_cell[(lang, lab)]) / n_orig[(lang, lab)] for lab in labels) if len(labels) > 1 else None
        for lab in labels:
            cell = sorted(by_cell[(lang, lab)], key=lambda r: r.id)
            if rate is not None:  # a language with one label only cannot teach a label shortcut: keep all
                random.Random(f"{seed}:{lang}:{lab}").shuffle(cell)
                cell = cell[: int(round(rate * n_orig[(lang, lab)]))]
            keep.update(v.id for v in cell)
    return [v for v in made if v.id in keep]


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.augment
    originals = list(read_records(ctx.input("split", "train.jsonl")))
    stats: Counter = Counter()
    made: list[Record] = []
    generated = 0
    if cfg.enabled and cfg.variants_per_sample:
        made = list(variants(originals, "train", cfg.transforms, cfg.variants_per_sample, cfg.probability,
                             ctx.config.run.seed, stats))
        generated = len(made)
        made = equalise(originals, made, ctx.config.run.seed)
        stats = _recount(made, stats)
    with open(ctx.out / "train.jsonl", "w", encoding="utf-8") as f:
        for r in originals + made:
            f.write(r.to_json() + "\n")
    per_label = Counter(r.label for r in originals)
    by_transform: dict[str, dict[str, int]] = defaultdict(dict)
    for key, n in stats.items():
        if key.startswith("transform:"):
            _, name, label = key.split(":")
            by_transform[name][label] = n
    rate = {lab: round(stats[f"variants:{lab}"] / per_label[lab], 4) for lab in sorted(per_label)}
    ctx.log(f"[augment] {len(originals)} train scripts -> {len(made)} variants; variant rate per label {rate}")
    return {"in": len(originals), "variants": len(made), "out": len(originals) + len(made),
            "variants_dropped_to_equalise": generated - len(made),
            "variants_per_label": {lab: stats[f"variants:{lab}"] for lab in sorted(per_label)},
            "variant_rate_per_label": rate, "transforms_per_label": dict(sorted(by_transform.items())),
            "python_parse_failures": sum(n for k, n in stats.items() if k.startswith("python_parse_failures")),
            "unchanged_or_duplicate": sum(n for k, n in stats.items() if k.startswith("unchanged_or_duplicate"))}


def _recount(made: list[Record], stats: Counter) -> Counter:
    """Variant and transform counts of the variants kept (failure counts are kept from generation)."""
    out = Counter({k: n for k, n in stats.items() if not k.startswith(("variants:", "transform:"))})
    for v in made:
        out[f"variants:{v.label}"] += 1
        for t in v.transforms:
            out[f"transform:{t}:{v.label}"] += 1
    return out
