"""Split: train / val / test, BEFORE any augmentation, stratified and group-aware, then a leakage check.

Whole groups (`data.split.group_key`) are assigned to one split, so related scripts never straddle splits. Groups are
stratified by (label, language) where that cell is big enough to feed every split, else by label alone. Within a
stratum, groups are shuffled with the run seed and each goes to the split furthest below its target share.
Val serves early stopping, checkpoint and threshold choice; test is read once, by evaluate.

After splitting, exact and near-duplicate pairs across splits are counted (`cross_split_near_duplicates`, expected
0 after dedup): a non-zero figure means the test set can be memorised.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from ..records import Record, TextsOnDisk, read_records, scan_records
from ..runner import StageContext, StageError
from ..similarity import NearDuplicateIndex

SPLITS = ("train", "val", "test")


def group_of(r: Record, key: str) -> str:
    value = {"group": r.group, "source": r.source}.get(key)
    return f"{key}:{value}" if value else f"id:{r.id}"


def assign(records: list[Record], val_size: float, test_size: float, group_key: str, by_lang: bool,
           seed: int) -> dict[str, list[Record]]:
    """Deterministic, stratified, group-aware assignment of records to splits."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[group_of(r, group_key)].append(r)
    # A group's stratum: its majority label (and language when that cell is big enough for every split).
    min_cell = int(round(1 / min(val_size, test_size))) + 1
    label_lang = Counter((r.label, r.lang) for r in records)

    def stratum(members: list[Record]) -> tuple:
        label, lang = Counter((r.label, r.lang) for r in members).most_common(1)[0][0]
        return (label, lang) if by_lang and label_lang[(label, lang)] >= min_cell else (label, "*")

    strata: dict[tuple, list[str]] = defaultdict(list)
    for g in sorted(groups):
        strata[stratum(groups[g])].append(g)
    rng = random.Random(seed)
    shares = {"train": 1 - val_size - test_size, "val": val_size, "test": test_size}
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for key in sorted(strata):
        names = strata[key]
        rng.shuffle(names)
        total = sum(len(groups[g]) for g in names)
        filled = Counter()
        for g in names:
            # The split furthest below its target (ties: test, then val, so small strata still reach them).
            target = min(("test", "val", "train"), key=lambda s: filled[s] - shares[s] * total)
            filled[target] += len(groups[g])
            out[target].extend(groups[g])
    return out


def run(ctx: StageContext) -> dict:
    cfg, dedup = ctx.config.data.split, ctx.config.data.dedup
    source = ctx.input("dedup", "records.jsonl")
    # Pass 1 assigns splits from the records' metadata only; pass 2 streams the texts into the split files.
    light = [Record(**{**r.__dict__, "text": ""}) for r in read_records(source)]
    splits = assign(light, cfg.val_size, cfg.test_size, cfg.group_key, cfg.stratify_by_lang, ctx.config.run.seed)
    for name in SPLITS:
        missing = {"malicious", "benign"} - {r.label for r in splits[name]}
        if missing:
            raise StageError(f"the {name} split has no {'/'.join(sorted(missing))} script ({len(light)} records in "
                             "all): add data, or lower data.split.val_size/test_size, or use data.split.group_key=none")
    split_of = {r.id: name for name, rs in splits.items() for r in rs}
    files = {name: open(ctx.out / f"{name}.jsonl", "w", encoding="utf-8") for name in SPLITS}
    offsets: list[int] = []
    sides: list[str] = []
    try:
        for offset, r in scan_records(source):  # dedup's order, which is deterministic
            files[split_of[r.id]].write(r.to_json() + "\n")
            offsets.append(offset)
            sides.append(split_of[r.id])
    finally:
        for f in files.values():
            f.close()

    # Leakage check: verified near-duplicate pairs whose two scripts sit in different splits (expected 0 after
    # dedup). One index over all texts; exact duplicates cannot cross (one id, one split).
    texts = TextsOnDisk(source, offsets)  # read back on demand: memory stays flat as the corpus grows
    pairs = NearDuplicateIndex(threshold=dedup.threshold, ngram=dedup.ngram_size, num_perm=dedup.num_perm,
                               workers=dedup.workers).fit(texts).pairs() if len(texts) > 1 else []
    near = sum(sides[i] != sides[j] for i, j, _ in pairs)
    if near:
        ctx.log(f"[split] WARNING: {near} near-duplicate pairs cross splits (leakage)")
    ctx.log("[split] " + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS))
    return {"in": len(light), **{s: len(splits[s]) for s in SPLITS},
            "per_label": {s: dict(sorted(Counter(r.label for r in splits[s]).items())) for s in SPLITS},
            "per_lang": {s: dict(sorted(Counter(r.lang for r in splits[s]).items())) for s in SPLITS},
            "groups": len({group_of(r, cfg.group_key) for r in light}),
            "cross_split_exact_duplicates": len(light) - len(split_of), "cross_split_near_duplicates": near}
