"""Hostile shapes that used to hang (issue 10, items 1-3): each runs in a subprocess under a generous timeout, and the
test asserts it finished with the expected outcome. Before the fixes each of these ran for minutes or forever."""
from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap

from .conftest import ROOT

TIMEOUT_S = 60  # generous on a loaded 2-core machine; the fixed code takes well under a second for each case


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def test_language_detection_is_linear_in_blank_and_whitespace_lines():
    # 50k newlines took minutes (each line start rescanned the rest); "predict -" on such input hung the same way
    done = _run("""
        from pipeline.languages import detect_language
        for unit in ("\\n", " \\t\\n", "\\r\\n", " "):
            assert detect_language(unit * 50_000 + "echo hi\\n") in ("bash", "unknown")
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):  # 9^10 strings once expanded
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\nrun: *j\n")
    done = _run(f"""
        from pipeline.config import ConfigError, load_config
        try:
            load_config({str(bomb)!r})
        except ConfigError as e:
            print(len(str(e)), str(e))
    """)
    assert done.returncode == 0, done.stderr
    length, message = done.stdout.split(" ", 1)
    assert "billion laughs" in message and str(bomb) in message
    assert int(length) < 1000  # the old message embedded a multi-megabyte repr of the expanded input


def test_gzip_of_newlines_trips_the_bomb_guard_early(tmp_path):
    member = gzip.compress(b"\n" * 10_000_000, 9)  # gzip members concatenate: 100 of them are 1 GB in ~1 MB
    bomb = tmp_path / "newlines.jsonl.gz"
    bomb.write_bytes(member * 100)
    done = _run(f"""
        from pipeline.inputs.readers import ReaderLimits, iter_inputs
        items = list(iter_inputs([{str(bomb)!r}], ReaderLimits()))
        print(len(items), items[0].reason)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "zip_bomb"]


def test_blank_lines_in_a_table_are_skipped_in_bulk(tmp_path):
    # no bomb guard in the way (ratio raised): 200M blank lines must still read at C speed, not a Python loop per line
    table = tmp_path / "blank.jsonl.gz"
    table.write_bytes(gzip.compress(b"\n" * 200_000_000, 1) + gzip.compress(b'{"text": "echo hi", "label": "benign"}\n'))
    done = _run(f"""
        from pipeline.inputs.readers import ReaderLimits, iter_inputs
        items = list(iter_inputs([{str(table)!r}], ReaderLimits(zip_max_ratio=1e9)))
        print(len(items), items[0].source)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", f"{table}:200000001"]
