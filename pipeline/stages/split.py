"""Split: train / val / test, BEFORE any augmentation, stratified and group-aware.

Whole groups (`data.split.group_key`) are assigned to one split, so related scripts never straddle splits. Groups are
stratified by (label, language) where that cell is big enough to feed every split, else by label alone. Within a
stratum, groups are shuffled with the run seed and each goes to the split furthest below its target share.
Val serves early stopping, checkpoint and threshold choice; test is read once, by evaluate.

With data.split.source_val_size / source_test_size, whole sources (the records' `source`) are held out first as
val_source / test_source, by the same assignment with sources as the groups: out-of-source splits that no train, val
or test script shares a source with (what a random split cannot show: how the model does on a collection it never
met). Train, val and test are then drawn from the remaining records.

Split does not look for near-duplicates: dedup already removed them with the same shingles, so a recount here was 0
by construction and cost as much as dedup. The leakage check runs where leakage can still arise, after augment
(augmented train against val and test). `cross_split_exact_duplicates` counts ids that sit in more than one split
(0 unless one id carries two groups, e.g. dedup off).

`sources` says how many of the sources with MIN_SOURCE_SCRIPTS or more scripts hold one label only, and how many of
those lie both in train and in val or test. When their scripts are most of the data (collections of malware beside
collections of benign packages, split at random), test rewards recognising a source's style as much as detecting
malice; the report says so and points to the out-of-source splits (or group_key: source, which keeps sources whole).
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
# Out-of-source splits (data.split.source_val_size / source_test_size): whole sources held out before the split.
SOURCE_SPLITS = ("val_source", "test_source")
# A source with fewer scripts says little about whether it mixes labels (and a record with no `source` field gets its
# own location as one: a source of one script, trivially of one label).
MIN_SOURCE_SCRIPTS = 10


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
    source: np.ndarray  # int64: a hash of the record's source (counts only: equal sources, equal hashes)

    @classmethod
    def read(cls, records: Iterable[Record | RecordHead], group_key: str) -> "SplitKeys":
        """The columns of `records` (streamed). A record's group name is "<group_key>:<value>", or "id:<id>" when it
        has no value (group_key "none": always), so records without a group are groups of their own."""
        cell_of: dict[tuple[str, str], int] = {}
        keyed: dict[str, int] = {}  # distinct "<group_key>:<value>" names, numbered as met
        cell, group, source, digests = array("q"), array("q"), array("q"), bytearray()
        for r in records:
            cell.append(cell_of.setdefault((r.label, r.lang), len(cell_of)))
            source.append(hash(r.source))
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
                   len(distinct), id_of_record.astype(np.int64), np.frombuffer(source, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.cell)

    def ids_across_splits(self, split: np.ndarray) -> int:
        """Distinct ids found in more than one split (exact duplicates that cross the split)."""
        pairs = np.unique(self.id_rank * len(SPLITS) + split)  # one entry per (id, split) held
        return int(np.count_nonzero(np.bincount(pairs // len(SPLITS), minlength=self.ids) > 1))

    def source_labels(self, split: np.ndarray) -> dict[str, int]:
        """Sources of MIN_SOURCE_SCRIPTS or more scripts: how many, how many hold one label only, and how many of
        those have scripts both in train and in val or test (`split`: each record's index into SPLITS), with their
        scripts: the ones a test can score by recognising the source."""
        is_malicious = np.array([lab == "malicious" for lab, _ in self.cells], dtype=bool)[self.cell]
        _, where, size = np.unique(self.source, return_inverse=True, return_counts=True)
        malicious = np.bincount(where, weights=is_malicious, minlength=size.size)
        in_train = np.bincount(where, weights=split == 0, minlength=size.size)
        pure = (size >= MIN_SOURCE_SCRIPTS) & ((malicious == 0) | (malicious == size))
        straddling = pure & (in_train > 0) & (in_train < size)
        return {"min_scripts": MIN_SOURCE_SCRIPTS, "sources": int(np.sum(size >= MIN_SOURCE_SCRIPTS)),
                "single_label": int(pure.sum()), "single_label_in_train_and_held_out": int(straddling.sum()),
                "scripts_in_those": int(size[straddling].sum()), "all_scripts": len(self)}

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
    min_cell = int(round(1 / min(x for x in (val_size, test_size) if x > 0))) + 1
    label_lang = np.bincount(keys.cell, minlength=n_cells)
    key_of_cell = [(label, lang) if by_lang and label_lang[c] >= min_cell else (label, "*")
                   for c, (label, lang) in enumerate(keys.cells)]
    strata = sorted(set(key_of_cell))
    stratum = np.array([strata.index(k) for k in key_of_cell])[majority]

    size = np.bincount(keys.group, minlength=keys.groups).tolist()
    rng = random.Random(seed)
    shares = {"train": 1 - val_size - test_size, "val": val_size, "test": test_size}
    open_splits = [name for name in ("test", "val", "train") if shares[name] > 0]  # a 0 share gets no group
    split_of_group = np.empty(keys.groups, dtype=np.int8)
    for k in range(len(strata)):
        names = np.flatnonzero(stratum == k).tolist()  # the stratum's groups in name order
        rng.shuffle(names)
        total = sum(size[g] for g in names)
        filled = Counter()
        for g in names:
            # The split furthest below its target (ties: test, then val, so small strata still reach them).
            target = min(open_splits, key=lambda s: filled[s] - shares[s] * total)
            filled[target] += size[g]
            split_of_group[g] = SPLITS.index(target)
    return split_of_group[keys.group]


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.split
    source = ctx.input("dedup", "records.jsonl")
    # Pass 1 assigns splits from the records' heads (texts skipped); pass 2 copies each line into its split's file.
    # Out-of-source splits first (whole sources), then train/val/test among the records that stay.
    held_out = cfg.source_val_size + cfg.source_test_size > 0
    heads = lambda: (RecordHead.of_line(line) for _, line in record_lines(source))  # noqa: E731
    # place: 0 stays (for train/val/test), 1 val_source, 2 test_source; the split's own assignment, sources as groups
    by_source = SplitKeys.read(heads(), "source") if held_out else None
    place = (assign(by_source, cfg.source_val_size, cfg.source_test_size, cfg.stratify_by_lang, ctx.config.run.seed)
             if held_out else None)
    staying = (lambda k: True) if place is None else (lambda k: place[k] == 0)
    kept = (r for k, r in enumerate(heads()) if staying(k))
    keys = SplitKeys.read(kept, cfg.group_key)
    split = assign(keys, cfg.val_size, cfg.test_size, cfg.stratify_by_lang, ctx.config.run.seed)
    names = SPLITS + (SOURCE_SPLITS if held_out else ())
    per_label = {name: keys.tally(split == k, 0) for k, name in enumerate(SPLITS)}
    _check_labels(ctx, per_label, len(keys))
    held = {name: _held_tally(ctx, by_source, place, k + 1, name) for k, name in enumerate(SOURCE_SPLITS)
            if held_out}
    _write_splits(ctx, source, names, _record_splits(split, place))
    sizes = np.bincount(split, minlength=len(SPLITS)).tolist()
    ctx.log("[split] " + ", ".join(f"{s} {n}" for s, n in zip(SPLITS, sizes))
            + "".join(f", {name} {h['records']} ({h['sources']} sources)" for name, h in held.items()))
    return {"in": len(keys) + (0 if place is None else int(np.count_nonzero(place))), **dict(zip(SPLITS, sizes)),
            "per_label": per_label,
            "per_lang": {name: keys.tally(split == k, 1) for k, name in enumerate(SPLITS)},
            "groups": keys.groups, "cross_split_exact_duplicates": keys.ids_across_splits(split),
            "sources": keys.source_labels(split),
            **({"out_of_source": held} if held_out else {})}


def _check_labels(ctx: StageContext, per_label: dict, n: int) -> None:
    """Both labels in the data and in every split, or a StageError that says the fix."""
    overall = set().union(*per_label.values())
    if len(overall) < 2:  # no split size can fix this: say so instead of suggesting one
        raise StageError(f"the data holds {'/'.join(sorted(overall)) or 'no'} scripts only ({n} records): a "
                         "classifier needs both malicious and benign examples; add the other class to the inputs "
                         f"(see {ctx.run_dir / 'ingest' / 'rejected.jsonl'} if it was rejected)")
    for name in SPLITS:
        missing = {"malicious", "benign"} - set(per_label[name])
        if missing:
            raise StageError(f"the {name} split has no {'/'.join(sorted(missing))} script ({n} records in "
                             "all): add data, or lower data.split.val_size/test_size, or use data.split.group_key=none")


def _record_splits(split: np.ndarray, place: np.ndarray | None) -> np.ndarray:
    """Every record's output file, as an index into SPLITS + SOURCE_SPLITS (records in dedup's order)."""
    if place is None:
        return split
    out = np.where(place > 0, place + len(SPLITS) - 1, 0)
    out[place == 0] = split
    return out


def _held_tally(ctx: StageContext, by_source: SplitKeys, place: np.ndarray, k: int, name: str) -> dict:
    """An out-of-source split's records, sources, labels and languages; a warning when it lacks a label (its ROC AUC
    is then undefined: raise its size)."""
    mask = place == k
    labels = by_source.tally(mask, 0)
    if mask.any() and len(labels) < 2:
        ctx.log(f"[split] WARNING: {name} holds {'/'.join(labels)} scripts only: its ROC AUC is undefined; raise "
                f"data.split.source_{name.split('_')[0]}_size so that it takes sources of both labels")
    return {"records": int(np.count_nonzero(mask)), "sources": int(np.unique(by_source.group[mask]).size),
            "per_label": labels, "per_lang": by_source.tally(mask, 1)}


def _write_splits(ctx: StageContext, source, names: tuple[str, ...], where: np.ndarray) -> None:
    with ExitStack() as stack:
        writers = [stack.enter_context(RecordWriter.open(ctx.out / f"{name}.jsonl")) for name in names]
        for k, (_, line) in enumerate(record_lines(source)):  # dedup's order, which is deterministic
            writers[where[k]].write_line(line)  # unchanged: the line dedup wrote is the one to_json would write
