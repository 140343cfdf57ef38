"""Ingest: read every input into records, and every bad record into rejected.jsonl with its reason and location.

Outputs: records.jsonl (accepted, in input order), rejected.jsonl (location, reason, detail). When nothing is
accepted the stage fails, and rejected.jsonl is kept in <run-dir>/.work/ingest/ so the user still gets the reasons.
"""
from __future__ import annotations

import json
import os
from collections import Counter

from pipeline.inputs.readers import LostRowsError, ReaderLimits, Reject, iter_inputs
from pipeline.run.records import RecordWriter
from pipeline.run.runner import StageContext, StageError


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.data.ingest
    accepted, rejected = Counter(), Counter()
    per_label, per_lang = Counter(), Counter()
    with RecordWriter.open(ctx.out / "records.jsonl") as good, \
         open(ctx.out / "rejected.jsonl", "w", encoding="utf-8") as bad:
        try:
            for item in iter_inputs(cfg.inputs, ReaderLimits.from_config(cfg), labelled=True):
                if isinstance(item, Reject):
                    rejected[item.reason] += 1
                    bad.write(json.dumps({"location": item.location, "reason": item.reason, "detail": item.detail},
                                         ensure_ascii=False) + "\n")
                    continue
                accepted["records"] += 1
                per_label[item.label] += 1
                per_lang[item.lang] += 1
                good.write(item)
        except LostRowsError as e:
            raise StageError(f"ingest stopped rather than lose rows: {e}") from None
    n_rejected = sum(rejected.values())
    if not accepted:
        raise StageError(f"no record accepted from {cfg.inputs} ({_reasons(rejected, ctx)}). Point --input at "
                         "JSONL/CSV files, folders with malicious/ and benign/ subfolders, or zip archives.")
    ctx.log(f"[ingest] {accepted['records']} accepted, {n_rejected} rejected"
            + (f" ({dict(rejected)}); see {ctx.run_dir / 'ingest' / 'rejected.jsonl'}" if n_rejected else ""))
    return {"in": accepted["records"] + n_rejected, "accepted": accepted["records"], "rejected": n_rejected,
            "rejected_by_reason": dict(sorted(rejected.items())), "per_label": dict(sorted(per_label.items())),
            "per_lang": dict(sorted(per_lang.items()))}


def _reasons(rejected: Counter, ctx: StageContext) -> str:
    """The commonest reasons, and where every reject is listed: the stage is not published when nothing was
    accepted, so rejected.jsonl is moved to the work folder, which survives the failure."""
    if not rejected:
        return "no files found"
    kept = ctx.work / "rejected.jsonl"
    os.replace(ctx.out / "rejected.jsonl", kept)
    return ", ".join(f"{r}: {n}" for r, n in rejected.most_common(5)) + f"; each reject and its fix is in {kept}"
