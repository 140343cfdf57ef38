"""Dedup: exact duplicates by id, then near-duplicates (MinHash LSH candidates verified by true Jaccard).

Each cluster of duplicates keeps one deterministic representative: the smallest id among the members carrying the
cluster's label, so the choice does not depend on input order. A cluster holding both labels is a label conflict,
resolved by `data.dedup.conflict_policy` and listed in conflicts.jsonl (the report shows it).

Outputs: records.jsonl (one per cluster), clusters.jsonl (kept id -> removed ids), conflicts.jsonl.
"""
from __future__ import annotations

import json
from collections import Counter

from ..records import Record, TextsOnDisk, scan_records
from ..runner import StageContext, StageError
from ..similarity import NearDuplicateIndex


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.dedup
    # Exact duplicates: the id is the hash of the normalised text. Keep every label seen for the conflict check.
    # Streamed, and texts stay on disk (read back by offset): memory holds ids, labels and offsets, not scripts.
    path = ctx.input("ingest", "records.jsonl")
    first_offset: dict[str, int] = {}
    labels_of: dict[str, Counter] = {}
    n_in = 0
    for offset, r in scan_records(path):
        n_in += 1
        first_offset.setdefault(r.id, offset)
        labels_of.setdefault(r.id, Counter())[r.label] += 1
    ids = sorted(first_offset)  # sorted ids: results independent of input order
    unique = TextsOnDisk(path, [first_offset[i] for i in ids])
    exact_duplicates = n_in - len(ids)

    # Near duplicates over the unique texts: clusters, not pairs (a family of m copies has m(m-1)/2 pairs).
    clusters: list[list[int]] = []
    if cfg.enabled and len(ids) > 1:
        # The MinHash seed is fixed, not run.seed: near-duplicates are a property of the data, and the stage's
        # fingerprint does not read run.seed, so a seed-dependent output could be served from another seed's cache.
        index = NearDuplicateIndex(threshold=cfg.threshold, ngram=cfg.ngram_size, num_perm=cfg.num_perm,
                                   workers=cfg.workers)
        clusters = index.fit(unique).clusters()
    clustered = {i for c in clusters for i in c}
    clusters += [[i] for i in range(len(ids)) if i not in clustered]

    near_removed, conflicts, conflict_dropped, per_label = 0, 0, 0, Counter()
    with open(ctx.out / "records.jsonl", "w", encoding="utf-8") as out, \
         open(ctx.out / "clusters.jsonl", "w", encoding="utf-8") as cl, \
         open(ctx.out / "conflicts.jsonl", "w", encoding="utf-8") as cf:
        for members in sorted(clusters, key=lambda m: ids[m[0]]):
            votes = sum((labels_of[ids[m]] for m in members), Counter())
            label = _resolve(votes, cfg.conflict_policy)
            if len(votes) > 1:
                conflicts += 1
                cf.write(json.dumps({"ids": [ids[m] for m in members], "votes": dict(votes),
                                     "resolution": label or "dropped",
                                     "sources": [unique.record(m).source for m in members]}, ensure_ascii=False) + "\n")
            if label is None:
                conflict_dropped += len(members)  # unique texts; their exact copies are in exact_duplicates
                continue
            keep = min(members, key=lambda m: (label not in labels_of[ids[m]], ids[m]))
            rep = unique.record(keep)
            if rep.label != label:  # majority policy: the kept text takes the cluster's label
                rep = Record(**{**rep.__dict__, "label": label})
            out.write(rep.to_json() + "\n")
            per_label[label] += 1
            near_removed += len(members) - 1
            if len(members) > 1:
                cl.write(json.dumps({"kept": ids[keep], "removed": [ids[m] for m in members if m != keep]}) + "\n")
    kept = sum(per_label.values())
    if not kept:
        raise StageError("dedup removed every record (all in label conflicts?): see dedup/conflicts.jsonl, or try "
                         "--set data.dedup.conflict_policy=majority")
    ctx.log(f"[dedup] {n_in} in: {exact_duplicates} exact and {near_removed} near duplicates removed, "
            f"{conflicts} label conflicts ({conflict_dropped} records dropped), {kept} out")
    return {"in": n_in, "exact_duplicates": exact_duplicates, "near_duplicates": near_removed,
            "near_duplicate_clusters": sum(len(c) > 1 for c in clusters), "conflicts": conflicts,
            "conflict_records_dropped": conflict_dropped, "out": kept, "per_label": dict(sorted(per_label.items()))}


def _resolve(votes: Counter, policy: str) -> str | None:
    """The label a cluster keeps, or None to drop it (conflicts under `drop`, ties under `majority`)."""
    if len(votes) == 1:
        return next(iter(votes))
    if policy == "drop":
        return None
    (top, n1), (_, n2) = votes.most_common(2)
    return top if n1 > n2 else None
