"""`sgpipe predict`: score unknown scripts with a trained (or exported) classifier. Nothing is executed.

Inputs are read by the same readers as ingest (files, folders, JSONL/CSV tables, zips, `-` for stdin), in bounded
batches, so 100k files stream through in constant memory. A file that cannot be read (binary, huge, undecodable)
gets its own error row and the rest go on.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Sequence

from .languages import detect_language
from pipeline.inputs.readers import ReaderLimits, Reject, decode_text, iter_inputs, safe_display
from pipeline.run.records import Record, text_id


@dataclass
class Prediction:
    location: str
    lang: str
    score: float | None  # P(malicious); None when the input could not be read
    verdict: str | None  # malicious | benign at the stored threshold
    error: str | None = None
    lines: list[dict] | None = None  # with --explain K: the K lines that move the score most (see explain.py)

    def as_dict(self) -> dict:
        """JSON-ready; `lines` only when explaining, so plain predict output keeps its columns."""
        d = asdict(self)
        if d["lines"] is None:
            del d["lines"]
        return d

FORMATS = ("table", "json", "jsonl", "csv")  # what `render` writes


def read_stdin(limits: ReaderLimits) -> Record | Reject:
    raw = sys.stdin.buffer.read(limits.max_file_bytes + 1)
    if len(raw) > limits.max_file_bytes:
        return Reject("<stdin>", "too_large", f"more than {limits.max_file_bytes} bytes; raise data.ingest.max_file_bytes")
    try:
        text = decode_text(raw)
    except Exception as e:  # the readers' own decode errors carry the reason
        return Reject("<stdin>", getattr(e, "reason", "undecodable"), str(e))
    if not text.strip():
        return Reject("<stdin>", "empty", "stdin was empty")
    return Record(id=text_id(text), text=text, label="", lang=detect_language(text), source="<stdin>")


def _inputs(paths: Sequence[str], limits: ReaderLimits) -> Iterator[Record | Reject]:
    files = [p for p in paths if p != "-"]
    if "-" in paths:
        yield read_stdin(limits)
    if files:
        yield from iter_inputs(files, limits, labelled=False)


def open_scorer(path, *, device: str = "auto", allow_pickle: bool = False, note=None):
    """The fastest classifier that scores `path` (run directory, classifier directory or export) as trained: the ONNX
    export beside the classifier when it is present and current (no torch import, ~1 s startup), else PyTorch.
    `note(message)` is told why a graph that is there was not used. device=cuda always takes PyTorch."""
    from .model.onnx_runtime import open_fast

    if device != "cuda":
        fast, why = open_fast(path)
        if fast is not None:
            return fast
        if note is not None and why:  # no graph at all is not news: only an unusable one is
            note(f"scoring with PyTorch (slower start): {why}; `sgpipe export OUT --format onnx` or a new "
                 "`sgpipe train` writes the fast ONNX path")
    from .model.classifier import open_classifier

    return open_classifier(path, device=device, allow_pickle=allow_pickle)


def check_threshold(threshold: float | None) -> None:
    """A decision threshold must be a probability: nan would call everything benign, -5 everything malicious."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:  # False for nan too
        raise ValueError(f"--threshold {threshold} is not a probability; give a number from 0 to 1 (e.g. 0.5), or "
                         "omit it to use the threshold stored with the model")


def gate_failures(predictions: Sequence[Prediction], allow_unscored: bool) -> list[str]:
    """Why a `--fail-on-malicious` gate fails, one line per cause; [] when it passes. A gate fails closed: an input
    it could not score (binary, too large, undecodable, unreadable) may be exactly the payload it guards against, so
    it fails the gate unless the user says `--allow-unscored`."""
    malicious = [p for p in predictions if p.verdict == "malicious"]
    unscored = [p for p in predictions if p.score is None]
    reasons = [f"{len(malicious)} input(s) judged malicious"] if malicious else []
    if unscored and not allow_unscored:
        first = safe_display(unscored[0].location)
        reasons.append(f"{len(unscored)} input(s) could not be scored (first: {first}: "
                       f"{safe_display(unscored[0].error or '')[:200]}); an unscored input fails the gate: fix or "
                       "remove it, or pass --allow-unscored to let such inputs through")
    return reasons


def predict(paths: Sequence[str], classifier, limits: ReaderLimits, batch_size: int = 32,
            threshold: float | None = None, explain_top: int = 0) -> Iterator[Prediction]:
    """Predictions in input order; unreadable inputs become error rows. `explain_top` > 0 adds each script's top lines
    (occlusion through the same scoring code, explain.py)."""
    check_threshold(threshold)
    t = threshold if threshold is not None else (classifier.threshold if classifier.threshold is not None else 0.5)
    batch: list[Record] = []

    def flush() -> Iterator[Prediction]:
        if batch:
            scores = classifier.score_records(batch, batch_size)
            for r, s in zip(batch, scores, strict=True):
                lines = _top_lines(r, classifier, batch_size, explain_top) if explain_top > 0 else None
                yield Prediction(r.source, r.lang, float(s), "malicious" if s >= t else "benign", lines=lines)
            batch.clear()

    for item in _inputs(paths, limits):
        if isinstance(item, Reject):
            yield from flush()
            yield Prediction(item.location, "", None, None, f"{item.reason}: {item.detail}")
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            yield from flush()
    yield from flush()


def _top_lines(record: Record, classifier, batch_size: int, k: int) -> list[dict]:
    from .explain import ClassifierScorer, explain_text

    explanation = explain_text(record.text, record.lang, ClassifierScorer(classifier, batch_size), 0.5, record.source)
    return [asdict(u) for u in explanation.top(k)]


def _lines_cell(p: Prediction) -> str:
    """Top lines in one cell: 'L12 +0.4123 text; L3 ...' (texts are neutralised already)."""
    return "; ".join(f"L{u['line']} {u['contribution']:+.4f} {u['text']}" for u in p.lines or [])


def _csv_safe(value) -> str:
    """A cell safe to open and to print: terminal escapes, bidi overrides and other controls (but tab) are shown as
    \\x.. escapes, as in the table format; a cell starting with = + - @ or tab (formula injection) gets a quote."""
    text = "" if value is None else "\t".join(safe_display(part) for part in str(value).split("\t"))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render(predictions: Iterable[Prediction], fmt: str, out=None, explained: bool = False) -> None:
    """Write predictions as table | json | jsonl | csv. Table cells are neutralised for the terminal. `explained`: the
    rows carry top lines (predict --explain): table and csv get a "top lines" column."""
    out = out or sys.stdout  # looked up at call time: tests and pipes may replace sys.stdout
    if fmt == "jsonl":
        for p in predictions:
            out.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
    elif fmt == "json":
        out.write(json.dumps([p.as_dict() for p in predictions], ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["location", "lang", "score", "verdict", "error"] + (["top_lines"] if explained else []))
        for p in predictions:
            cells = (p.location, p.lang, p.score, p.verdict, p.error) + ((_lines_cell(p),) if explained else ())
            writer.writerow([_csv_safe(v) for v in cells])
        out.write(buffer.getvalue())
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table("location", "lang", "P(malicious)", "verdict", *(["top lines"] if explained else []))
        for p in predictions:
            verdict = f"error: {safe_display(p.error)}" if p.error else p.verdict
            # Text, not str: rich reads str cells as markup, so a file named "[link=...]x[/link]" would show as "x"
            # (and link elsewhere), and one named "[/]" would stop the scan with a MarkupError
            table.add_row(Text(safe_display(p.location)), p.lang, "" if p.score is None else f"{p.score:.4f}",
                          Text(verdict), *([Text(safe_display(_lines_cell(p)))] if explained else []))
        Console(file=out, highlight=False).print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}: choose {', '.join(FORMATS)}")
