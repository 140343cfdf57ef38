"""Ingest: read every input into records, and every bad record into rejected.jsonl with its reason and location.

Outputs: records.jsonl (accepted, in input order), rejected.jsonl (location, reason, detail).
"""
from __future__ import annotations

import json
from collections import Counter

from ..readers import ReaderLimits, Reject, iter_inputs
from ..runner import StageContext, StageError


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.ingest
    accepted, rejected = Counter(), Counter()
    per_label, per_lang = Counter(), Counter()
    with open(ctx.out / "records.jsonl", "w", encoding="utf-8") as good, \
         open(ctx.out / "rejected.jsonl", "w", encoding="utf-8") as bad:
        for item in iter_inputs(cfg.inputs, ReaderLimits.from_config(cfg), labelled=True):
            if isinstance(item, Reject):
                rejected[item.reason] += 1
                bad.write(json.dumps({"location": item.location, "reason": item.reason, "detail": item.detail},
                                     ensure_ascii=False) + "\n")
                continue
            accepted["records"] += 1
            per_label[item.label] += 1
            per_lang[item.lang] += 1
            good.write(item.to_json() + "\n")
    n_rejected = sum(rejected.values())
    if not accepted:
        reasons = ", ".join(f"{r}: {n}" for r, n in rejected.most_common(5)) or "no files found"
        raise StageError(f"no record accepted from {cfg.inputs} ({reasons}). Point --input at JSONL/CSV files, "
                         "folders with malicious/ and benign/ subfolders, or zip archives.")
    ctx.log(f"[ingest] {accepted['records']} accepted, {n_rejected} rejected"
            + (f" ({dict(rejected)}); see {ctx.run_dir / 'ingest' / 'rejected.jsonl'}" if n_rejected else ""))
    return {"in": accepted["records"] + n_rejected, "accepted": accepted["records"], "rejected": n_rejected,
            "rejected_by_reason": dict(sorted(rejected.items())), "per_label": dict(sorted(per_label.items())),
            "per_lang": dict(sorted(per_lang.items()))}
