"""Dedup: exact duplicates by id, then near-duplicates (MinHash LSH candidates verified by true Jaccard).

Each cluster of duplicates keeps one deterministic representative: the smallest id among the members carrying the
cluster's label, so the choice does not depend on input order. A cluster holding both labels is a label conflict,
resolved by `data.dedup.conflict_policy` and listed in conflicts.jsonl (the report shows it).

Outputs: records.jsonl (one per cluster), clusters.jsonl (kept id -> removed ids), conflicts.jsonl.
"""
from __future__ import annotations

import json
import os
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.run.records import LABELS, Record, RecordHead, RecordWriter, TextsOnDisk, id_digest, record_lines
from pipeline.run.runner import StageContext, StageError
from pipeline.neardup import NearDuplicateIndex


@dataclass
class UniqueIds:
    """The distinct ids of a records file, sorted, as columns: about 60 bytes an id, where a dict of str ids to
    Counters took ~500. Exact duplicates share an id (the hash of the normalised text)."""
    digests: np.ndarray  # (n, 32) uint8, the ids' bytes (rows, as numpy "S32" items would drop trailing zero bytes)
    offsets: np.ndarray  # int64: byte offset of each id's first record
    votes: np.ndarray  # (n, len(LABELS)) int64: how many records of each label carry the id
    first_label: np.ndarray  # uint8: the label of each id's first record (index into LABELS)
    records: int  # records read, duplicates included

    @classmethod
    def scan(cls, path: Path) -> "UniqueIds":
        """One streamed pass over `path`, holding 41 bytes a record (id digest, label, offset); texts stay on disk
        (and are not even decoded: see `RecordHead.of_line`)."""
        digests, labels, offsets = bytearray(), bytearray(), array("q")
        for offset, line in record_lines(path):
            r = RecordHead.of_line(line)
            digests += id_digest(r.id, f"{path} at byte {offset}: ")
            labels.append(LABELS.index(r.label))
            offsets.append(offset)
        ids = np.frombuffer(digests, dtype="S32")
        order = np.argsort(ids, kind="stable")  # by id, then input order
        is_first = np.ones(order.size, dtype=bool)
        is_first[1:] = ids[order][1:] != ids[order][:-1]
        first = order[is_first]  # each id's first record
        label = np.frombuffer(labels, dtype=np.uint8)
        votes = np.zeros((first.size, len(LABELS)), dtype=np.int64)
        np.add.at(votes, (np.cumsum(is_first) - 1, label[order]), 1)
        return cls(np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32)[first],
                   np.frombuffer(offsets, dtype=np.int64)[first], votes, label[first], len(offsets))

    def __len__(self) -> int:
        return len(self.offsets)

    def id(self, k: int) -> str:
        return self.digests[k].tobytes().hex()

    def votes_of(self, members: list[int]) -> Counter:
        """The labels of the records of ids `members`, in the order the input first showed them (as conflicts.jsonl
        has always listed them): the first member's first label, then the other."""
        # Most texts are alone: their row as it is (a gathered sum cost more than writing the record out)
        total = self.votes[members[0]].tolist() if len(members) == 1 else self.votes[members].sum(axis=0).tolist()
        lead = int(self.first_label[members[0]])
        return Counter({LABELS[k]: total[k] for k in [lead] + [k for k in range(len(LABELS)) if k != lead]
                        if total[k]})


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.dedup
    path = ctx.input("ingest", "records.jsonl")
    ids = UniqueIds.scan(path)  # sorted ids: results independent of input order
    unique = TextsOnDisk(path, ids.offsets)  # read back on demand: memory holds no script
    exact_duplicates = ids.records - len(ids)

    # Near duplicates over the unique texts: clusters, not pairs (a family of m copies has m(m-1)/2 pairs).
    clusters: list[list[int]] = []
    if cfg.enabled and len(unique) > 1:
        # The MinHash seed is fixed, not run.seed: near-duplicates are a property of the data, and the stage's
        # fingerprint does not read run.seed, so a seed-dependent output could be served from another seed's cache.
        index = NearDuplicateIndex(threshold=cfg.threshold, ngram=cfg.ngram_size, num_perm=cfg.num_perm,
                                   workers=cfg.workers)
        clusters = index.fit(unique).clusters()
    # Every unique text in id order, a cluster where its first (smallest) member comes, other texts alone.
    cluster_at = {c[0]: c for c in clusters}
    clustered = np.zeros(len(unique), dtype=bool)
    for c in clusters:
        clustered[c] = True

    near_removed, conflicts, conflict_dropped, per_label = 0, 0, 0, Counter()
    with RecordWriter.open(ctx.out / "records.jsonl") as out, \
         open(ctx.out / "clusters.jsonl", "w", encoding="utf-8") as cl, \
         open(ctx.out / "conflicts.jsonl", "w", encoding="utf-8") as cf:
        for k in range(len(unique)):
            if clustered[k] and k not in cluster_at:
                continue  # written with its cluster
            members = cluster_at.get(k, [k])
            votes = ids.votes_of(members)
            label = _resolve(votes, cfg.conflict_policy)
            if len(votes) > 1:
                conflicts += 1
                cf.write(json.dumps({"ids": [ids.id(m) for m in members], "votes": dict(votes),
                                     "resolution": label or "dropped",
                                     "sources": [unique.record(m).source for m in members]}, ensure_ascii=False) + "\n")
            if label is None:
                conflict_dropped += len(members)  # unique texts; their exact copies are in exact_duplicates
                continue
            keep = min(members, key=lambda m: (ids.votes[m, LABELS.index(label)] == 0, m))  # m: in id order
            if LABELS[ids.first_label[keep]] == label:  # kept as ingest wrote it: its line is copied
                out.write_line(unique.line(keep))
            else:  # majority policy: the kept text takes the cluster's label
                out.write(Record(**{**unique.record(keep).__dict__, "label": label}))
            per_label[label] += 1
            near_removed += len(members) - 1
            if len(members) > 1:
                removed = [ids.id(m) for m in members if m != keep]
                cl.write(json.dumps({"kept": ids.id(keep), "removed": removed}) + "\n")
    kept = sum(per_label.values())
    if not kept:  # ingest accepted something, so every record was in a label conflict and dropped
        listed = ctx.work / "conflicts.jsonl"  # the stage is not published: keep the list where the user can read it
        os.replace(ctx.out / "conflicts.jsonl", listed)
        raise StageError(f"dedup dropped every record: all {conflicts} groups of (near-)duplicates hold both labels "
                         f"({conflict_dropped} texts), listed in {listed}. Fix the labels, or keep the majority label "
                         "with --set data.dedup.conflict_policy=majority")
    ctx.log(f"[dedup] {ids.records} in: {exact_duplicates} exact and {near_removed} near duplicates removed, "
            f"{conflicts} label conflicts ({conflict_dropped} records dropped), {kept} out")
    return {"in": ids.records, "exact_duplicates": exact_duplicates, "near_duplicates": near_removed,
            "near_duplicate_clusters": len(clusters), "conflicts": conflicts,
            "conflict_records_dropped": conflict_dropped, "out": kept, "per_label": dict(sorted(per_label.items()))}


def _resolve(votes: Counter, policy: str) -> str | None:
    """The label a cluster keeps, or None to drop it (conflicts under `drop`, ties under `majority`)."""
    if len(votes) == 1:
        return next(iter(votes))
    if policy == "drop":
        return None
    (top, n1), (_, n2) = votes.most_common(2)
    return top if n1 > n2 else None
