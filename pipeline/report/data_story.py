"""The report's data section, stage by stage (ingest, dedup, split with its leakage check, augment, balance, stage
timings), and the alarms the data stages raise, shown at the top of the report beside the model's."""
from __future__ import annotations

from pipeline.run.records import LABELS
from .blocks import Alarm, Block, Heading, Para, Table, dig, val
from .facts import UPSTREAM, Inputs


def data_story(a: Inputs) -> list[Block]:
    """What happened to the data on its way to the model, one subsection per stage."""
    c = a.metrics["counts"]
    ingest, dedup, split, augment, balance = (c.get(s, {}) for s in ("ingest", "dedup", "split", "augment", "balance"))
    train_per_label = (split.get("per_label") or {}).get("train")
    return ([Heading("Data")] + _ingest(a, ingest) + _dedup(dedup) + _split(split) + _leakage(augment)
            + _augment(augment, train_per_label) + _transform_rates(augment) + _balance(balance) + _stages(a))


def _ingest(a: Inputs, ingest: dict) -> list[Block]:
    out: list[Block] = [
        Heading("Ingest", 3),
        Table(["item", "value"],
              [["inputs", val(dig(a.manifests, "ingest", "config", "data.ingest", "inputs"))],
               ["read", val(ingest.get("in"))], ["accepted", val(ingest.get("accepted"))],
               ["rejected", val(ingest.get("rejected"))], ["accepted per label", val(ingest.get("per_label"))],
               ["accepted per language", val(ingest.get("per_lang"))]])]
    reasons = ingest.get("rejected_by_reason") or {}
    if reasons:
        out.append(Table(["reject reason", "records"], [[r, n] for r, n in reasons.items()]))
    if a.rejected:
        out += [Para(f"First {len(a.rejected)} rejects (all in ingest/rejected.jsonl):"),
                Table(["location", "reason", "detail"],
                      [[r.get("location"), r.get("reason"), r.get("detail")] for r in a.rejected])]
    return out


def _dedup(dedup: dict) -> list[Block]:
    return [Heading("Dedup", 3),
            Table(["item", "value"],
                  [["in", val(dedup.get("in"))], ["exact duplicates removed", val(dedup.get("exact_duplicates"))],
                   ["near duplicates removed", val(dedup.get("near_duplicates"))],
                   ["verified near-duplicate pairs", val(dedup.get("verified_pairs"))],
                   ["label conflicts (clusters)", val(dedup.get("conflicts"))],
                   ["records dropped in conflicts", val(dedup.get("conflict_records_dropped"))],
                   ["out", val(dedup.get("out"))], ["out per label", val(dedup.get("per_label"))]])]


def _split(split: dict) -> list[Block]:
    per_label, sources = split.get("per_label") or {}, split.get("sources")
    facts = [["groups", val(split.get("groups"))],
             ["cross-split exact duplicates", val(split.get("cross_split_exact_duplicates"))]]
    if sources:
        facts.append([f"sources of {sources['min_scripts']}+ scripts that hold one label",
                      f"{sources['single_label']} of {sources['sources']}; in train and in val/test: "
                      f"{sources['single_label_in_train_and_held_out']} ({sources['scripts_in_those']} of "
                      f"{sources['all_scripts']} scripts)"])
    return [Heading("Split", 3),
            Table(["split", "scripts", "benign", "malicious"],
                  [[s, val(split.get(s)), val(dig(per_label, s, "benign") or 0),
                    val(dig(per_label, s, "malicious") or 0)]
                   for s in ("train", "val", "test")]),
            Table(["item", "value"], facts)]


def _augment(augment: dict, train_per_label: dict | None) -> list[Block]:
    """Variants per label beside the train scripts per label (from split's counts)."""
    variants, rates = augment.get("variants_per_label") or {}, augment.get("variant_rate_per_label") or {}
    out: list[Block] = [
        Heading("Augment (train only)", 3),
        Table(["label", "train scripts", "variants", "variant rate"],
              [[lab, val(dig(train_per_label, lab)), val(variants.get(lab)), val(rates.get(lab))]
               for lab in sorted(set(variants) | set(rates))]),
        Para(f"{val(augment.get('variants'))} variants in all; {val(augment.get('unchanged_or_duplicate'))} attempts "
             f"unchanged or duplicate; {val(augment.get('python_parse_failures'))} Python variants dropped because "
             "they no longer parsed. Similar rates per label mean no transform is a cue for one label.")]
    by_transform = augment.get("transforms_per_label") or {}
    if by_transform:
        out.append(Table(["transform", "benign", "malicious"],
                         [[t, val(n.get("benign", 0)), val(n.get("malicious", 0))] for t, n in by_transform.items()]))
    return out


def _balance(balance: dict) -> list[Block]:
    before, after = balance.get("before") or {}, balance.get("after") or {}
    labels = sorted(set(before.get("per_label") or {}) | set(after.get("per_label") or {}))
    return [Heading("Balance (train only)", 3),
            Para(f"Method {val(balance.get('method'))}: {val(balance.get('in'))} rows in, "
                 f"{val(balance.get('out'))} out."),
            Table(["label", "before", "after", "transformed share before", "transformed share after"],
                  [[lab, val(dig(before, "per_label", lab)), val(dig(after, "per_label", lab)),
                    val(dig(before, "transformed_fraction", lab)), val(dig(after, "transformed_fraction", lab))]
                   for lab in labels])]


def _stages(a: Inputs) -> list[Block]:
    return [Heading("Stages", 3),
            Table(["stage", "seconds", "fingerprint", "started"],
                  [[s, val(dig(a.manifests, s, "seconds")), (dig(a.manifests, s, "fingerprint") or "")[:12],
                    val(dig(a.manifests, s, "started_at"))] for s in UPSTREAM])]


def _leakage(augment: dict) -> list[Block]:
    """The leakage check (run after augment: augmented train against val and test)."""
    leak = augment.get("leakage")
    if not leak:
        return []
    rows = [[f"{name} (Jaccard >= {val(leak.get(key))})", val(dig(leak, name, "pairs")),
             val(dig(leak, name, "held_out_scripts")), val(dig(leak, name, "from_variants")),
             val(dig(leak, name, "per_split"))] for name, key in (("leaks", "threshold"), ("warnings", "warning"))]
    out: list[Block] = [Heading("Leakage: augmented train against val/test", 4),
                        Table(["level", "pairs", "val/test scripts", "pairs from variants", "per split"], rows),
                        Para(f"{val(augment.get('variants_dropped_for_leakage'))} variants were dropped as near-copies "
                             "of a val/test script; the pairs that remain are in augment/leakage.jsonl.")]
    if dig(leak, "leaks", "pairs"):
        out.append(Para("Warning: scripts in val/test have near-copies in train, so test figures overstate how the "
                        "model does on new scripts. Keep data.dedup enabled, lower data.dedup.threshold or group "
                        "related scripts (data.split.group_key)."))
    return out


def _transform_rates(augment: dict) -> list[Block]:
    """Variants per original, per language, transform and label: equal rates mean no transform is a label cue."""
    rates = augment.get("transform_rates") or {}
    rows = []
    for lang, cells in rates.items():
        labels = sorted(cells.get("originals", {}))
        for name, per_label in cells.items():
            if name != "originals" and len(labels) > 1:
                rows.append([lang, name] + [val(per_label.get(lab)) for lab in LABELS]
                            + [val(round(max(per_label.values()) - min(per_label.values()), 4))])
    return [Table(["language", "transform", *[f"{lab} rate" for lab in LABELS], "gap"], rows)] if rows else []


def data_alarms(a: Inputs) -> list[Block]:
    """Alarms raised by the data stages, shown at the top of the report beside the model's."""
    augment = a.metrics["counts"].get("augment", {})
    out: list[Block] = [Alarm(f"augment: {g['lang']} {g['transform']} is applied at different rates per label "
                              f"({g['rates']}): the model can read the transform as a label cue")
                        for g in augment.get("transform_rate_gaps") or []]
    leaks = dig(augment, "leakage", "leaks", "held_out_scripts")
    if leaks:
        out.append(Alarm(f"leakage: {leaks} val/test scripts have a near-copy in the augmented train set "
                         "(see Data / Leakage)"))
    out += _single_label_sources(a.metrics["counts"].get("split", {}))
    return out


def _single_label_sources(split: dict) -> list[Block]:
    """When most scripts come from one-label sources split across train and test, test scores recognising a source."""
    s = split.get("sources") or {}
    if s.get("single_label_in_train_and_held_out", 0) < 2 or 2 * s.get("scripts_in_those", 0) < s.get("all_scripts", 0):
        return []
    where = ("the Out-of-source figures measure that on sources held out whole" if split.get("out_of_source") else
             "hold sources out whole (data.split.source_val_size and source_test_size) to measure that")
    return [Alarm(f"split: {s['scripts_in_those']} of {s['all_scripts']} scripts come from sources that hold one label "
                  f"only and have scripts both in train and in val/test ({s['single_label_in_train_and_held_out']} "
                  f"sources of {s['min_scripts']}+ scripts). Test can be won by recognising a source's style as well "
                  f"as by detecting malice, so it overstates how the model does on a new collection: {where}, or "
                  "keep each source in one split (data.split.group_key: source).")]
