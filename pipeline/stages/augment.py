"""Augment: label-preserving, language-aware variants of TRAIN scripts only, for both classes alike.

Every script, malicious or benign, gets the same number of attempts with the same transform probabilities. Equal
attempts are not enough: a transform applies less often to short one-liners, which are more often malicious, so on
the shared dev set JavaScript renaming reached 0.36 of benign but 0.15 of malicious originals. `equalise` therefore
drops variants, within each language, until every transform's rate (variants carrying it per original) and the
variant rate itself differ between the labels by at most 0.02, so neither "was transformed" nor "was renamed" says
anything about the label. New identifier names are drawn from the train split's own identifiers, only words both labels use
(see `NameVocabulary`), so the renamed text carries no vocabulary of its own. The manifest records the per-transform
rates per label and language and raises an alarm where two labels differ by more than `RATE_ALARM`.

After augmenting, the leakage check compares the augmented train set with val and test (the only place leakage can
still come from: dedup ran on originals, and a variant can move closer to a held-out script than its parent was).
Variants that are near-copies (>= data.augment.leakage_threshold) of a val/test script are dropped before
equalising; originals that are near-copies are counted and reported (they mean dedup was off or looser), as are
weaker similarities (>= data.augment.leakage_warning).
Each variant's RNG is seeded from (run seed, parent id, variant number): the output does not depend on input order.

Outputs: train.jsonl (originals then variants, each variant with parent_id and transforms), leakage.jsonl (pairs).
"""
from __future__ import annotations

import ast
import hashlib
import json
import random
import warnings
from collections import Counter, defaultdict
from typing import Iterable, Iterator

import numpy as np

from pipeline.run.records import Record, RecordWriter, read_records, text_id
from pipeline.run.runner import StageContext
from pipeline.stages.split import SOURCE_SPLITS
from pipeline.neardup import cross_pairs
from ..transforms import augment_text
from ..transforms.renaming import NameVocabulary, name_vocabulary

RATE_ALARM = 0.05  # largest tolerated gap between two labels' rate of one transform in one language
RATE_ALARM_MIN_ORIGINALS = 20  # below this many originals of a label, one variant moves a rate by more than 0.05


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


def equalise(originals: list[Record], made: list[Record], seed: int, tolerance: float = 0.02) -> list[Record]:
    """Drop variants until, in each language, every transform's rate (variants carrying it per original) and the
    variant rate itself differ between the labels by at most `tolerance`, or half a variant of the smaller label where
    it has under 25 originals (its rate moves in steps of 1/originals: a stricter bound would drop every variant of a
    small language). Greedy: the largest gap first, removing the variant of the label that is
    ahead whose removal shrinks the squared gaps of all its transforms most, so few variants are lost."""
    by_lang: dict[str, list[Record]] = defaultdict(list)
    for v in sorted(made, key=lambda r: r.id):
        by_lang[v.lang].append(v)
    n_orig = Counter((r.lang, r.label) for r in originals)
    keep: set[str] = set()
    for lang, cell in sorted(by_lang.items()):
        labels = sorted(lab for lg, lab in n_orig if lg == lang)
        if len(labels) == 2:  # a language with one label only cannot teach a label shortcut: keep all
            random.Random(f"{seed}:{lang}").shuffle(cell)  # ties between equal candidates go by a seeded draw
            cell = _equalise_language(cell, labels, [n_orig[(lang, lab)] for lab in labels], tolerance)
        keep.update(v.id for v in cell)
    return [v for v in made if v.id in keep]


def _equalise_language(cell: list[Record], labels: list[str], n: list[int], tolerance: float) -> list[Record]:
    names = sorted({t for v in cell for t in v.transforms})
    feats = np.array([[1.0] + [float(t in v.transforms) for t in names] for v in cell]).reshape(len(cell), -1)
    side = np.array([labels.index(v.label) for v in cell])
    alive = np.ones(len(cell), dtype=bool)
    per = np.array([1.0 / n[0], 1.0 / n[1]])
    tol = max(tolerance, 0.5 / min(n))  # the smaller label's rate moves in steps of 1/n: match it to half a step
    while alive.any():
        rates = [feats[alive & (side == k)].sum(0) * per[k] for k in (0, 1)]
        gap = rates[0] - rates[1]  # > 0: label 0 ahead
        worst = int(np.argmax(np.abs(gap)))
        if abs(gap[worst]) <= tol + 1e-9:
            break
        ahead = 0 if gap[worst] > 0 else 1
        lead = gap if ahead == 0 else -gap
        cand = np.flatnonzero(alive & (side == ahead) & (feats[:, worst] > 0))
        score = feats[cand] @ (2 * lead - per[ahead])  # the drop in the sum of squared gaps, times n
        alive[cand[int(np.argmax(score))]] = False
    return [v for v, a in zip(cell, alive) if a]


def transform_rates(originals: list[Record], made: list[Record]) -> dict:
    """{lang: {transform or "any": {label: variants carrying it per original}}}, and the per-label original counts."""
    n_orig = Counter((r.lang, r.label) for r in originals)
    hits: Counter = Counter()
    for v in made:
        hits[(v.lang, "any", v.label)] += 1
        for t in v.transforms:
            hits[(v.lang, t, v.label)] += 1
    names = sorted({t for _, t, _ in hits})
    out: dict = {}
    for lang in sorted({lang for lang, _ in n_orig}):
        labels = sorted(lab for lg, lab in n_orig if lg == lang)
        out[lang] = {"originals": {lab: n_orig[(lang, lab)] for lab in labels},
                     **{t: {lab: round(hits[(lang, t, lab)] / n_orig[(lang, lab)], 4) for lab in labels}
                        for t in names}}
    return out


def rate_gaps(rates: dict, limit: float = RATE_ALARM, min_originals: int = RATE_ALARM_MIN_ORIGINALS) -> list[dict]:
    """Every (language, transform) whose rates differ between labels by more than `limit`, where each label has at
    least `min_originals` originals in that language (largest gap first)."""
    gaps = []
    for lang, cells in rates.items():
        if len(cells["originals"]) < 2 or min(cells["originals"].values()) < min_originals:
            continue
        for name, per_label in cells.items():
            if name != "originals" and max(per_label.values()) - min(per_label.values()) > limit:
                gaps.append({"lang": lang, "transform": name, "rates": per_label,
                             "gap": round(max(per_label.values()) - min(per_label.values()), 4)})
    return sorted(gaps, key=lambda g: -g["gap"])


def leakage(train: list[Record], held: dict[str, list[Record]], warn: float, dedup) -> list[dict]:
    """Pairs (train row, val/test script) with Jaccard >= `warn`, using dedup's shingles and MinHash settings."""
    names = [(name, r) for name, rows in held.items() for r in rows]
    if not train or not names:
        return []
    pairs = cross_pairs([r.text for r in train], [r.text for _, r in names], threshold=warn,
                        ngram=dedup.ngram_size, num_perm=dedup.num_perm, workers=dedup.workers)
    return [{"train_id": train[i].id, "variant": train[i].parent_id is not None, "split": names[j][0],
             "held_id": names[j][1].id, "jaccard": round(sim, 4)} for i, j, sim in pairs]


def leakage_summary(pairs: list[dict], kept: set[str], threshold: float) -> dict:
    """Counts of the pairs that remain in the written train set, at the leak threshold and at the warning one."""
    live = [p for p in pairs if p["train_id"] in kept]
    out = {}
    for level, rows in (("leaks", [p for p in live if p["jaccard"] >= threshold]),
                        ("warnings", [p for p in live if p["jaccard"] < threshold])):
        out[level] = {"pairs": len(rows), "held_out_scripts": len({(p["split"], p["held_id"]) for p in rows}),
                      "per_split": dict(sorted(Counter(p["split"] for p in rows).items())),
                      "from_variants": sum(p["variant"] for p in rows)}
    return out


def run(ctx: StageContext) -> dict:
    cfg, seed = ctx.config.data.augment, ctx.config.run.seed
    originals = list(read_records(ctx.input("split", "train.jsonl")))
    held = {s: list(read_records(ctx.input("split", f"{s}.jsonl"))) for s in ("val", "test")}
    for s in SOURCE_SPLITS:  # the out-of-source splits, where the run has them, are held out too
        if (ctx.run_dir / "split" / f"{s}.jsonl").is_file():
            held[s] = list(read_records(ctx.input("split", f"{s}.jsonl")))
    stats: Counter = Counter()
    made: list[Record] = []
    generated = 0
    vocabulary = None
    if cfg.enabled and cfg.variants_per_sample:
        vocabulary = NameVocabulary.from_scripts((r.text, r.lang, r.label) for r in originals)
        with name_vocabulary(vocabulary):
            made = list(variants(originals, "train", cfg.drawn_transforms(), cfg.variants_per_sample, cfg.probability,
                                 seed, stats))
        generated = len(made)
    pairs = leakage(originals + made, held, cfg.leakage_warning, ctx.config.data.dedup)
    leaking = {p["train_id"] for p in pairs if p["variant"] and p["jaccard"] >= cfg.leakage_threshold}
    made = equalise(originals, [v for v in made if v.id not in leaking], seed)
    stats = _recount(made, stats)
    with RecordWriter.open(ctx.out / "train.jsonl") as out:
        for r in originals + made:
            out.write(r)
    kept = {r.id for r in originals + made}
    with open(ctx.out / "leakage.jsonl", "w", encoding="utf-8") as f:
        for p in pairs:
            if p["train_id"] in kept:
                f.write(json.dumps(p) + "\n")
    return _summary(ctx, originals, made, stats, generated, len(leaking), vocabulary,
                    leakage_summary(pairs, kept, cfg.leakage_threshold))


def _summary(ctx: StageContext, originals: list[Record], made: list[Record], stats: Counter, generated: int,
             dropped_for_leakage: int, vocabulary: NameVocabulary | None, leaks: dict) -> dict:
    cfg = ctx.config.data.augment
    per_label = Counter(r.label for r in originals)
    by_transform: dict[str, dict[str, int]] = defaultdict(dict)
    for key, n in stats.items():
        if key.startswith("transform:"):
            _, name, label = key.split(":")
            by_transform[name][label] = n
    rate = {lab: round(stats[f"variants:{lab}"] / per_label[lab], 4) for lab in sorted(per_label)}
    rates = transform_rates(originals, made)
    gaps = rate_gaps(rates)
    ctx.log(f"[augment] {len(originals)} train scripts -> {len(made)} variants; variant rate per label {rate}")
    for g in gaps:
        ctx.log(f"[augment] ALARM: {g['lang']} {g['transform']} rate differs by label: {g['rates']}")
    if leaks["leaks"]["pairs"]:
        ctx.log(f"[augment] WARNING: {leaks['leaks']['held_out_scripts']} val/test scripts have a near-copy "
                f"(Jaccard >= {cfg.leakage_threshold}) in train (leakage)")
    return {"in": len(originals), "variants": len(made), "out": len(originals) + len(made),
            "variants_dropped_to_equalise": generated - dropped_for_leakage - len(made),
            "variants_dropped_for_leakage": dropped_for_leakage,
            "variants_per_label": {lab: stats[f"variants:{lab}"] for lab in sorted(per_label)},
            "variant_rate_per_label": rate, "transforms_per_label": dict(sorted(by_transform.items())),
            "transform_rates": rates, "transform_rate_gaps": gaps,
            "name_vocabulary": vocabulary.to_json() if vocabulary else None,
            "leakage": {"threshold": cfg.leakage_threshold, "warning": cfg.leakage_warning, **leaks},
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
