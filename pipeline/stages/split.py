"""Split: train / val / test, BEFORE any augmentation, stratified and group-aware.

Whole groups (`data.split.group_key`) are assigned to one split, so related scripts never straddle splits. Groups are
stratified by (label, language) where that cell is big enough to feed every split, else by label alone. Within a
stratum, groups are shuffled with the run seed and each goes to the split furthest below its target share.
Val serves early stopping, checkpoint and threshold choice; test is read once, by evaluate.

Split does not look for near-duplicates: dedup already removed them with the same shingles, so a recount here was 0
by construction and cost as much as dedup. The leakage check runs where leakage can still arise, after augment
(augmented train against val and test). `cross_split_exact_duplicates` counts ids that sit in more than one split
(0 unless one id carries two groups, e.g. dedup off).
"""
from __future__ import annotations

import random
from array import array
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from pipeline.run.records import Record, RecordHead, RecordWriter, id_digest, record_lines
from pipeline.run.runner import StageContext, StageError

SPLITS = ("train", "val", "test")


@dataclass
class SplitKeys:
    """What the assignment reads of each record, as columns: 16 bytes a record (about 200 while they are read and
    ranked), where a Record without its text took ~700."""
    cell: np.ndarray  # int64, index into `cells`: the record's (label, lang)
    cells: list[tuple[str, str]]
    group: np.ndarray  # int64: the rank of the record's group name among all group names, sorted
    groups: int  # distinct group names
    ids: int  # distinct record ids
    id_rank: np.ndarray  # int64: the rank of the record's id among the distinct ids

    @classmethod
    def read(cls, records: Iterable[Record | RecordHead], group_key: str) -> "SplitKeys":
        """The columns of `records` (streamed). A record's group name is "<group_key>:<value>", or "id:<id>" when it
        has no value (group_key "none": always), so records without a group are groups of their own."""
        cell_of: dict[tuple[str, str], int] = {}
        keyed: dict[str, int] = {}  # distinct "<group_key>:<value>" names, numbered as met
        cell, group, digests = array("q"), array("q"), bytearray()
        for r in records:
            cell.append(cell_of.setdefault((r.label, r.lang), len(cell_of)))
            value = {"group": r.group, "source": r.source}.get(group_key)
            group.append(keyed.setdefault(f"{group_key}:{value}", len(keyed)) if value else -1)
            digests += id_digest(r.id)
        ids = np.frombuffer(digests, dtype="S32")  # sorts as the ids do
        group = np.frombuffer(group, dtype=np.int64)
        # Rank every group name without making a str per record: the keyed names sorted, the ids sorted (unique),
        # and all names of one kind sort before all of the other (their prefixes differ at the first character).
        names = sorted(keyed)
        keyed_rank = np.empty(len(names), dtype=np.int64)
        keyed_rank[[keyed[name] for name in names]] = np.arange(len(names))
        id_groups, id_rank = np.unique(ids[group < 0], return_inverse=True)
        keyed_first = f"{group_key}:" < "id:"
        rank = np.empty(len(group), dtype=np.int64)
        rank[group >= 0] = keyed_rank[group[group >= 0]] + (0 if keyed_first else len(id_groups))
        rank[group < 0] = id_rank + (len(names) if keyed_first else 0)
        distinct, id_of_record = np.unique(ids, return_inverse=True)
        return cls(np.frombuffer(cell, dtype=np.int64), list(cell_of), rank, len(names) + len(id_groups),
                   len(distinct), id_of_record.astype(np.int64))

    def __len__(self) -> int:
        return len(self.cell)

    def ids_across_splits(self, split: np.ndarray) -> int:
        """Distinct ids found in more than one split (exact duplicates that cross the split)."""
        pairs = np.unique(self.id_rank * len(SPLITS) + split)  # one entry per (id, split) held
        return int(np.count_nonzero(np.bincount(pairs // len(SPLITS), minlength=self.ids) > 1))

    def tally(self, mask: np.ndarray, field: int) -> dict[str, int]:
        """Records where `mask` holds, by label (field 0) or language (field 1), sorted by name."""
        counts = Counter()
        for label_lang, n in zip(self.cells, np.bincount(self.cell[mask], minlength=len(self.cells)).tolist()):
            if n:
                counts[label_lang[field]] += n
        return dict(sorted(counts.items()))


def assign(keys: SplitKeys, val_size: float, test_size: float, by_lang: bool, seed: int) -> np.ndarray:
    """Deterministic, stratified, group-aware assignment: each record's split, as an index into SPLITS."""
    n_cells = len(keys.cells)
    # A group's stratum: its majority (label, lang) cell, ties to the cell met first (and language only where that
    # cell is big enough for every split).
    group_cell, first_seen, count = np.unique(keys.group * n_cells + keys.cell, return_index=True,
                                              return_counts=True)
    order = np.lexsort((first_seen, -count, group_cell // n_cells))  # per group: most records, then met first
    group_of = group_cell[order] // n_cells
    top = np.ones(order.size, dtype=bool)
    top[1:] = group_of[1:] != group_of[:-1]
    majority = group_cell[order][top] % n_cells  # per group, by rank
    min_cell = int(round(1 / min(val_size, test_size))) + 1
    label_lang = np.bincount(keys.cell, minlength=n_cells)
    key_of_cell = [(label, lang) if by_lang and label_lang[c] >= min_cell else (label, "*")
                   for c, (label, lang) in enumerate(keys.cells)]
    strata = sorted(set(key_of_cell))
    stratum = np.array([strata.index(k) for k in key_of_cell])[majority]

    size = np.bincount(keys.group, minlength=keys.groups).tolist()
    rng = random.Random(seed)
    shares = {"train": 1 - val_size - test_size, "val": val_size, "test": test_size}
    split_of_group = np.empty(keys.groups, dtype=np.int8)
    for k in range(len(strata)):
        names = np.flatnonzero(stratum == k).tolist()  # the stratum's groups in name order
        rng.shuffle(names)
        total = sum(size[g] for g in names)
        filled = Counter()
        for g in names:
            # The split furthest below its target (ties: test, then val, so small strata still reach them).
            target = min(("test", "val", "train"), key=lambda s: filled[s] - shares[s] * total)
            filled[target] += size[g]
            split_of_group[g] = SPLITS.index(target)
    return split_of_group[keys.group]


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.split
    source = ctx.input("dedup", "records.jsonl")
    # Pass 1 assigns splits from the records' heads (texts skipped); pass 2 copies each line into its split's file.
    keys = SplitKeys.read((RecordHead.of_line(line) for _, line in record_lines(source)), cfg.group_key)
    split = assign(keys, cfg.val_size, cfg.test_size, cfg.stratify_by_lang, ctx.config.run.seed)
    per_label = {name: keys.tally(split == k, 0) for k, name in enumerate(SPLITS)}
    overall = set().union(*per_label.values())
    if len(overall) < 2:  # no split size can fix this: say so instead of suggesting one
        raise StageError(f"the data holds {'/'.join(sorted(overall)) or 'no'} scripts only ({len(keys)} records): a "
                         "classifier needs both malicious and benign examples; add the other class to the inputs "
                         f"(see {ctx.run_dir / 'ingest' / 'rejected.jsonl'} if it was rejected)")
    for name in SPLITS:
        missing = {"malicious", "benign"} - set(per_label[name])
        if missing:
            raise StageError(f"the {name} split has no {'/'.join(sorted(missing))} script ({len(keys)} records in "
                             "all): add data, or lower data.split.val_size/test_size, or use data.split.group_key=none")
    with ExitStack() as stack:
        writers = [stack.enter_context(RecordWriter.open(ctx.out / f"{name}.jsonl")) for name in SPLITS]
        for k, (_, line) in enumerate(record_lines(source)):  # dedup's order, which is deterministic
            writers[split[k]].write_line(line)  # unchanged: the line dedup wrote is the one to_json would write
    sizes = np.bincount(split, minlength=len(SPLITS)).tolist()
    ctx.log("[split] " + ", ".join(f"{s} {n}" for s, n in zip(SPLITS, sizes)))
    return {"in": len(keys), **dict(zip(SPLITS, sizes)), "per_label": per_label,
            "per_lang": {name: keys.tally(split == k, 1) for k, name in enumerate(SPLITS)},
            "groups": keys.groups, "cross_split_exact_duplicates": keys.ids_across_splits(split)}
