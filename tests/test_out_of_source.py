"""Out-of-source splits (issue 13 item 9): whole sources held out before the split as val_source / test_source,
selection on val_source (early stopping and the best checkpoint), the model and the baseline reported on both."""
import json
from collections import defaultdict

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.experiments.compare import run_metrics
from pipeline.run.records import Record, read_records, text_id
from pipeline.run.runner import run_pipeline
from pipeline.stages.split import SOURCE_SPLITS, SPLITS, SplitKeys, assign

from .conftest import FAST_TRAINING, TINY_CONFIG, TINY_DATA

HOLD_OUT = ["data.split.source_val_size=0.2", "data.split.source_test_size=0.2"]


def _rows(n_sources=20, per_source=8):
    """Sources of both labels and two languages; each script distinct enough to survive dedup."""
    rows = []
    for s in range(n_sources):
        for i in range(per_source):
            label = "malicious" if (s + i) % 2 else "benign"
            body = "\n".join(f"echo {label} source{s} item{i} line{j} {'x' * (s * 7 + i * 3 + j)}" for j in range(4))
            rows.append({"text": body, "label": label, "lang": ("bash", "python")[i % 2], "source": f"src{s}"})
    return rows


def _split(tmp_path, rows, *overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(TINY_CONFIG, inputs=[str(data)], overrides=["data.dedup.workers=1", "data.augment.enabled=false",
                                                                 *overrides])
    run_pipeline(cfg, tmp_path / "run", until="split", log=lambda m: None)
    return tmp_path / "run" / "split"


def test_held_out_sources_are_whole_and_in_no_other_split(tmp_path):
    rows = _rows()
    out = _split(tmp_path, rows, *HOLD_OUT)
    where = defaultdict(set)  # source -> the splits holding it
    sizes = {}
    for name in SPLITS + SOURCE_SPLITS:
        records = list(read_records(out / f"{name}.jsonl"))
        sizes[name] = len(records)
        for r in records:
            where[r.source].add(name)
    assert sum(sizes.values()) == len(rows)
    held = {s for s, names in where.items() if names & set(SOURCE_SPLITS)}
    assert held and all(len(where[s]) == 1 for s in held)  # a held-out source lies in one split only
    for name in SOURCE_SPLITS:  # about 20% of the records each, in whole sources of 8
        assert 16 <= sizes[name] <= 48
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["in"] == len(rows)
    assert {k: v["records"] for k, v in counts["out_of_source"].items()} == {k: sizes[k] for k in SOURCE_SPLITS}
    assert counts["out_of_source"]["val_source"]["sources"] == sizes["val_source"] // 8


def test_the_holdout_is_seeded_and_off_by_default(tmp_path):
    rows = _rows()
    first = _split(tmp_path / "a", rows, *HOLD_OUT)
    again = _split(tmp_path / "b", rows, *HOLD_OUT)
    other = _split(tmp_path / "c", rows, *HOLD_OUT, "run.seed=7")
    read = lambda d: sorted(r.source for r in read_records(d / "val_source.jsonl"))  # noqa: E731
    assert read(first) == read(again) and read(first) != read(other)
    plain = _split(tmp_path / "d", rows)
    assert not any((plain / f"{name}.jsonl").exists() for name in SOURCE_SPLITS)
    assert "out_of_source" not in json.loads((plain / "manifest.json").read_text())["counts"]


@pytest.mark.parametrize("group_key, straddling", [("none", 6), ("source", 0)])
def test_split_counts_one_label_sources_that_lie_in_train_and_in_val_or_test(tmp_path, group_key, straddling):
    """Six sources of 12 scripts, each of one label, and 12 scripts without a source (each its own, too small to
    count): split at random every big source lies on both sides; grouped by source none does."""
    rows = [{"text": "\n".join(f"echo src{s} item{i} line{j} {'x' * (s * 13 + i * 5 + j)}" for j in range(4)),
             "label": ("benign", "malicious")[s % 2], "lang": "bash", "source": f"src{s}"}
            for s in range(6) for i in range(12)]
    rows += [{"text": f"echo lone {i} " + "y" * (i * 17 + 3), "label": ("benign", "malicious")[i % 2], "lang": "bash"}
             for i in range(12)]
    out = _split(tmp_path, rows, "data.split.val_size=0.25", "data.split.test_size=0.25",
                 f"data.split.group_key={group_key}")
    sources = json.loads((out / "manifest.json").read_text())["counts"]["sources"]
    assert sources == {"min_scripts": 10, "sources": 6, "single_label": 6,
                       "single_label_in_train_and_held_out": straddling, "scripts_in_those": 12 * straddling,
                       "all_scripts": 84}


def test_a_zero_share_split_gets_no_group():
    recs = [Record(id=text_id(f"t{i}"), text=f"t{i}", label=("benign", "malicious")[i % 2], lang="bash",
                   source=f"s{i // 3}") for i in range(60)]
    where = assign(SplitKeys.read(recs, "source"), 0.2, 0.0, True, seed=3)
    assert (where == 2).sum() == 0 and (where == 1).sum() > 0  # before: a division by zero


def test_selection_on_val_source_needs_the_split_and_sizes_are_bounded():
    with pytest.raises(ConfigError, match="data.split.source_val_size"):
        load_config(TINY_CONFIG, overrides=["training.select_on=val_source"])
    with pytest.raises(ConfigError, match="at most 0.4"):
        load_config(TINY_CONFIG, overrides=["data.split.source_val_size=0.3", "data.split.source_test_size=0.2"])
    cfg = load_config(TINY_CONFIG, overrides=["training.select_on=val_source", "data.split.source_val_size=0.1"])
    assert cfg.training.select_on == "val_source"


@pytest.mark.slow
def test_training_selects_on_val_source_and_evaluate_reports_both_held_out_splits(tmp_path):
    rows = [json.loads(line) for line in TINY_DATA.read_text().splitlines()]
    for i, r in enumerate(rows):  # twelve sources, each holding both labels
        r["source"] = f"collection{i % 12}"
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(TINY_CONFIG, inputs=[str(data)], overrides=[
        "data.dedup.workers=1", *FAST_TRAINING, *HOLD_OUT, "training.select_on=val_source",
        "report.faithfulness_scripts=0", "report.explain_lines=0", f"report.dir={tmp_path / 'reports'}"])
    run = tmp_path / "run"
    run_pipeline(cfg, run, log=lambda m: None)
    val_source = list(read_records(run / "split" / "val_source.jsonl"))
    train = json.loads((run / "train" / "manifest.json").read_text())["counts"]
    assert train["val_rows"] == len(val_source)  # the evaluations during training read val_source
    metrics = json.loads((run / "evaluate" / "metrics.json").read_text())
    for name in SOURCE_SPLITS:
        held = metrics["out_of_source"][name]
        assert held["model"]["n"] == len(list(read_records(run / "split" / f"{name}.jsonl")))
        assert 0.0 <= held["baseline"]["roc_auc"] <= 1.0 and "per_lang" in held["model"]
        assert (run / "evaluate" / f"{name}_predictions.jsonl").is_file()
    figures = run_metrics(run)
    assert figures["val_source_roc_auc"] == metrics["out_of_source"]["val_source"]["model"]["roc_auc"]
    assert figures["test_source_roc_auc"] == metrics["out_of_source"]["test_source"]["model"]["roc_auc"]
    report = (run / "report" / "report.md").read_text()
    section = report[report.index("## Out-of-source figures"):]
    assert "selected on val\\_source" in section and "test\\_source model" in section  # markdown escapes _
    auc = metrics["out_of_source"]["test_source"]["model"]["roc_auc"]
    assert f"{auc:.3f}" in section.split("\n## ")[0]
