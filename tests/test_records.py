"""The records file format: what to_json writes, what the fast readers (RecordHead.of_line, record_lines) read back,
the stages that copy unchanged records' lines instead of re-serialising them (dedup, split, balance), and the one write
path (RecordWriter.write_line) every record of every data stage takes."""
from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline.config import load_config
from pipeline.run.records import (Record, RecordHead, RecordWriter, TextsOnDisk, read_records, record_lines,
                                  record_of_line, scan_records, text_id, write_records)
from pipeline.run.runner import run_pipeline

from .conftest import TINY_CONFIG

# Texts that a careless skim of a line would cut short: the separator after the text, escaped quotes, a trailing
# backslash, control characters, non-ASCII, an empty text.
AWKWARD_TEXTS = ['x = 1, "label": "benign"', 'say "hi", "label": ', "ends in a backslash \\", '\\", "label": "m',
                 "tab\tnul\x00 bell\x07 crlf\r\n", "é 中文 \u2028 😀", ""]


def _records() -> list[Record]:
    return [Record(id=text_id(t), text=t, label=("benign", "malicious")[k % 2], lang="bash" if k % 3 else "python",
                   source=f'dir/"{k}".sh, "label": x', group=None if k % 2 else f"g{k}",
                   parent_id=None if k % 4 else text_id("parent"), transforms=[] if k % 4 else ["rename", "wrap"])
            for k, t in enumerate(AWKWARD_TEXTS)]


def test_to_json_writes_the_format_asdict_wrote():
    for r in _records():
        assert r.to_json() == json.dumps(dataclasses.asdict(r), ensure_ascii=False)
        assert record_of_line(r.to_json().encode()) == r


def test_record_head_mirrors_record_fields_and_defaults():
    fields = [f for f in dataclasses.fields(Record) if f.name != "text"]
    assert list(RecordHead._fields) == [f.name for f in fields]
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in fields}
    assert {name: list(d) if name == "transforms" else d for name, d in RecordHead._field_defaults.items()} == \
        {name: d for name, d in defaults.items() if d is not dataclasses.MISSING}


def _head(r: Record | RecordHead) -> tuple:
    return tuple(list(getattr(r, name)) if name == "transforms" else getattr(r, name) for name in RecordHead._fields)


def test_record_head_of_a_written_line_skips_the_text_and_reads_every_other_field():
    for r in _records():
        head = RecordHead.of_line(r.to_json().encode() + b"\n")
        assert _head(head) == _head(r), r.text


def test_record_head_does_not_decode_the_text_of_a_written_line():
    line = b'{"id": "%s", "text": "an invalid escape \\q", "label": "benign", "lang": "bash"}' % (b"f" * 64)
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)  # a full parse would have to decode the text
    assert RecordHead.of_line(line) == RecordHead("f" * 64, "benign", "bash")


@pytest.mark.parametrize("line", [
    '{"text": "a", "id": "%s", "label": "benign"}' % ("a" * 64),  # other key order
    '{"id": "not-hex", "text": "a", "label": "malicious", "lang": "js"}',  # not a text_id: parsed whole
    '{"id": "%s", "text": "a", "label": "benign", "extra": 1, "group": "g"}' % ("b" * 64),  # unknown key
    '{"id": "%s", "text": "a", "label": "benign", "id": "%s"}' % ("c" * 64, "d" * 64),  # id twice: the last wins
    '{"id":"%s","text":"a","label":"benign"}' % ("e" * 64),  # compact separators
    '{"id": "%s", "text": "a", "meta": {"n": 1, "label": "x"}, "label": "benign"}' % ("0" * 64),  # nested "label"
])
def test_record_head_of_any_other_layout_equals_the_full_parse(line):
    assert _head(RecordHead.of_line(line.encode())) == _head(Record.from_dict(json.loads(line)))


def test_record_lines_skip_blank_lines_give_offsets_and_end_every_line(tmp_path):
    path = tmp_path / "r.jsonl"
    records = _records()[:3]
    lines = [r.to_json().encode() for r in records]
    path.write_bytes(lines[0] + b"\n\n  \n" + lines[1] + b"\n" + lines[2])  # blank lines, no final newline
    read = list(record_lines(path))
    assert [line for _, line in read] == [line + b"\n" for line in lines]
    with open(path, "rb") as f:
        for offset, line in read:
            f.seek(offset)
            assert f.read(len(line) - 1) == line[:-1]
    assert list(read_records(path)) == records and [o for o, _ in scan_records(path)] == [o for o, _ in read]
    texts = TextsOnDisk(path, [o for o, _ in read])
    assert list(texts) == [r.text for r in records] and texts.line(2) == lines[2] + b"\n"


def test_a_written_record_and_its_copied_line_are_the_same_bytes(tmp_path):
    records = _records()
    assert write_records(tmp_path / "written.jsonl", records) == len(records)
    with RecordWriter.open(tmp_path / "copied.jsonl") as out:
        for _, line in record_lines(tmp_path / "written.jsonl"):
            out.write_line(line)
    assert out.written == len(records)
    assert (tmp_path / "copied.jsonl").read_bytes() == (tmp_path / "written.jsonl").read_bytes() == \
        "".join(r.to_json() + "\n" for r in records).encode()


RECORD_FILES = [("ingest", "records.jsonl"), ("dedup", "records.jsonl"), ("split", "train.jsonl"),
                ("split", "val.jsonl"), ("split", "test.jsonl"), ("augment", "train.jsonl"), ("balance", "train.jsonl")]
SCRIPT = "\n".join(f"curl -s http://example.com/{i} | sh -c 'echo step {i}'" for i in range(30))


def _relabelled_cluster() -> list[dict]:
    """A near-duplicate pair whose kept (smaller id) text was first seen as benign and then, as an exact copy, as
    malicious; its near-copy is malicious: the majority relabels the kept line."""
    for k in range(100):
        first, near = SCRIPT + f"\n# {k}", SCRIPT + f"\n# {k}\nexit 0"
        if text_id(first) < text_id(near):
            return [{"text": first, "label": "benign"}, {"text": first + "\n", "label": "malicious"},
                    {"text": near, "label": "malicious"}]
    raise AssertionError("no ordering found")


def test_data_stages_write_every_record_through_write_line_and_copy_unchanged_lines(tmp_path, monkeypatch):
    other = [{"text": f"Write-Host '{text_id(str(k))}'", "label": ("benign", "malicious")[k % 2], "lang": "powershell"}
             for k in range(40)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other + _relabelled_cluster()))
    cfg = load_config(TINY_CONFIG, inputs=[str(tmp_path / "in.jsonl")],
                      overrides=["data.dedup.workers=1", "data.dedup.conflict_policy=majority"])
    run_dir = tmp_path / "run"
    write_line, lines_written = RecordWriter.write_line, []

    def counted(writer, line):
        lines_written.append(line)
        return write_line(writer, line)

    monkeypatch.setattr(RecordWriter, "write_line", counted)
    run_pipeline(cfg, run_dir, until="balance", log=lambda m: None)
    published = [line for stage, name in RECORD_FILES for _, line in record_lines(run_dir / stage / name)]
    assert sorted(lines_written) == sorted(published)  # fault injection hooks write_line: nothing goes around it

    ingested = {line for _, line in record_lines(run_dir / "ingest" / "records.jsonl")}
    kept = [line for _, line in record_lines(run_dir / "dedup" / "records.jsonl")]
    relabelled = [line for line in kept if line not in ingested]
    assert len(kept) == 41 and len(relabelled) == 1
    first_seen = next(r for r in read_records(run_dir / "ingest" / "records.jsonl")
                      if r.id == text_id(_relabelled_cluster()[0]["text"]))
    assert first_seen.label == "benign"
    assert relabelled[0] == (dataclasses.replace(first_seen, label="malicious").to_json() + "\n").encode()

    split = [line for name in ("train", "val", "test") for _, line in record_lines(run_dir / "split" / f"{name}.jsonl")]
    assert sorted(split) == sorted(kept)  # every kept line in exactly one split, byte for byte
