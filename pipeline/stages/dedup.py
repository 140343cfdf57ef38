"""Dedup: exact duplicates by id, then near-duplicates (MinHash LSH candidates verified by true Jaccard).

Each cluster of duplicates keeps one deterministic representative: the smallest id among the members carrying the
cluster's label, so the choice does not depend on input order. A cluster holding both labels is a label conflict,
resolved by `data.dedup.conflict_policy` and listed in conflicts.jsonl (the report shows it).

Outputs: records.jsonl (one per cluster), clusters.jsonl (kept id -> removed ids), conflicts.jsonl.
"""
from __future__ import annotations

import json
from collections import Counter

from ..records import Record, read_records
from ..runner import StageContext, StageError
from ..similarity import NearDuplicateIndex, UnionFind


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.dedup
    records = list(read_records(ctx.input("ingest", "records.jsonl")))
    n_in = len(records)

    # Exact duplicates: the id is the hash of the normalised text. Keep every label seen for the conflict check.
    unique: dict[str, Record] = {}
    labels_of: dict[str, Counter] = {}
    for r in records:
        unique.setdefault(r.id, r)
        labels_of.setdefault(r.id, Counter())[r.label] += 1
    ids = sorted(unique)  # sorted ids: results independent of input order
    exact_duplicates = n_in - len(ids)

    # Near duplicates over the unique texts.
    uf = UnionFind(len(ids))
    pairs = []
    if cfg.enabled and len(ids) > 1:
        index = NearDuplicateIndex(threshold=cfg.threshold, ngram=cfg.ngram_size, num_perm=cfg.num_perm,
                                   seed=ctx.config.run.seed, workers=cfg.workers)
        index.fit([unique[i].text for i in ids])
        pairs = index.pairs()
        for a, b, _ in pairs:
            uf.union(a, b)
    clusters: dict[int, list[int]] = {}
    for i in range(len(ids)):
        clusters.setdefault(uf.find(i), []).append(i)

    kept, near_removed, conflicts, conflict_dropped = [], 0, [], 0
    with open(ctx.out / "clusters.jsonl", "w", encoding="utf-8") as cl, \
         open(ctx.out / "conflicts.jsonl", "w", encoding="utf-8") as cf:
        for members in sorted(clusters.values(), key=lambda m: ids[m[0]]):
            member_ids = [ids[m] for m in members]
            votes = sum((labels_of[i] for i in member_ids), Counter())
            label = _resolve(votes, cfg.conflict_policy)
            if len(votes) > 1:
                conflicts.append(member_ids)
                cf.write(json.dumps({"ids": member_ids, "votes": dict(votes), "resolution": label or "dropped",
                                     "sources": [unique[i].source for i in member_ids]}, ensure_ascii=False) + "\n")
            if label is None:
                conflict_dropped += len(member_ids)  # unique texts; their exact copies are in exact_duplicates
                continue
            keep = min(i for i in member_ids if label in labels_of[i])
            rep = unique[keep]
            if rep.label != label:  # majority policy: the kept text takes the cluster's label
                rep = Record(**{**rep.__dict__, "label": label})
            kept.append(rep)
            near_removed += len(member_ids) - 1
            if len(member_ids) > 1:
                cl.write(json.dumps({"kept": keep, "removed": [i for i in member_ids if i != keep]}) + "\n")
    if not kept:
        raise StageError("dedup removed every record (all in label conflicts?): see dedup/conflicts.jsonl, or try "
                         "--set data.dedup.conflict_policy=majority")
    with open(ctx.out / "records.jsonl", "w", encoding="utf-8") as f:
        for r in kept:
            f.write(r.to_json() + "\n")
    per_label = Counter(r.label for r in kept)
    ctx.log(f"[dedup] {n_in} in: {exact_duplicates} exact and {near_removed} near duplicates removed, "
            f"{len(conflicts)} label conflicts ({conflict_dropped} records dropped), {len(kept)} out")
    return {"in": n_in, "exact_duplicates": exact_duplicates, "near_duplicates": near_removed,
            "verified_pairs": len(pairs), "conflicts": len(conflicts), "conflict_records_dropped": conflict_dropped,
            "out": len(kept), "per_label": dict(sorted(per_label.items()))}


def _resolve(votes: Counter, policy: str) -> str | None:
    """The label a cluster keeps, or None to drop it (conflicts under `drop`, ties under `majority`)."""
    if len(votes) == 1:
        return next(iter(votes))
    if policy == "drop":
        return None
    (top, n1), (_, n2) = votes.most_common(2)
    return top if n1 > n2 else None
