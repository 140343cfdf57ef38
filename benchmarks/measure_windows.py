"""Whole-script windows against head/tail truncation, on the VALIDATION split of finished runs (select on val only).

Each run directory is one trained model (e.g. `sgpipe all --input dev.jsonl.gz --set run.seed=N`, with and without
`--set model.window_stride=256`). Its val split is scored with the reading it was trained with and with the others:
truncation (head and tail), windows aggregated by the mean and by the max of their log-odds (same stride and cap as
the windowed runs). Figures: val ROC AUC overall and on long scripts (beyond the budget) vs short ones, per reading,
and the mean and spread over the runs of each kind. Writes counts and AUCs only, nothing from the data:

    python -m benchmarks.measure_windows --truncated RUN [RUN ...] --windowed RUN [RUN ...] \\
        [--out benchmarks/results/windows.json] [--reuse EARLIER.json ...]

`--reuse` takes the per-run figures of earlier outputs (runs measured as they finished) instead of scoring again.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, rounded_roc_auc, write_result
from pipeline.model import prompt
from pipeline.model.classifier import open_classifier
from pipeline.model.prompt import Windows
from pipeline.run.records import read_records


def _is_long(records, clf) -> np.ndarray:
    """Scripts whose prompt would be cut at the classifier's max_length."""
    return np.array([len(prompt.encode_windows(r.text, r.lang, clf.tokenizer, clf.max_length,
                                               windows=Windows(stride=1, max_windows=2))) > 1 for r in records])


def measure(run_dir: Path, stride: int, max_windows: int) -> dict:
    val = list(read_records(run_dir / "split" / "val.jsonl"))
    y = np.array([r.y for r in val])
    clf = open_classifier(run_dir, device="cpu")
    trained_with = clf.windows
    long = _is_long(val, clf)
    readings = {"truncation": Windows(), "windows_mean": Windows(stride, "mean", max_windows),
                "windows_max": Windows(stride, "max", max_windows)}
    out = {"trained_with": trained_with.spec(), "val_n": len(val), "long_n": int(long.sum()),
           "long_malicious": int(y[long].sum()), "val_auc": {}}
    for name, windows in readings.items():
        clf.windows = windows
        s = clf.score_records(val, 32)
        out["val_auc"][name] = {"all": rounded_roc_auc(y, s), "long": rounded_roc_auc(y[long], s[long]),
                                "short": rounded_roc_auc(y[~long], s[~long])}
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    out["test_auc_as_evaluated"] = metrics["model"]["roc_auc"]  # for the record: selection reads val only
    return out


def summarise(results: dict[str, dict]) -> dict:
    """Mean and sd over runs of val AUC per reading and part."""
    table: dict = {}
    for res in results.values():
        for reading, parts in res["val_auc"].items():
            for part, auc in parts.items():
                if auc is not None:
                    table.setdefault(reading, {}).setdefault(part, []).append(auc)
    return {reading: {part: {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v, ddof=1)), 4)
                             if len(v) > 1 else None, "n_runs": len(v)} for part, v in parts.items()}
            for reading, parts in table.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truncated", nargs="*", default=[], help="runs trained with head/tail truncation")
    parser.add_argument("--windowed", nargs="*", default=[], help="runs trained with model.window_stride > 0")
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--max-windows", type=int, default=8)
    parser.add_argument("--out", default=None)
    parser.add_argument("--reuse", nargs="*", default=[], help="earlier outputs whose runs need no new scoring")
    args = parser.parse_args(argv)
    payload = {"machine": machine_info(1), "data": "validation split of the given runs",
               "stride": args.stride, "max_windows": args.max_windows}
    earlier = {}
    for path in args.reuse:
        old = json.loads(Path(path).read_text())
        for kind in ("truncated", "windowed"):
            earlier.update(old.get(kind, {}).get("runs", {}))
    for kind in ("truncated", "windowed"):
        results = {str(r): earlier.get(str(r)) or measure(Path(r), args.stride, args.max_windows)
                   for r in getattr(args, kind)}
        for run, res in results.items():
            print(kind, run, json.dumps(res))
        payload[kind] = {"runs": results, "summary": summarise(results)}
        print(kind, json.dumps(payload[kind]["summary"]))
    write_result("windows", args.out, payload)


if __name__ == "__main__":
    main()
