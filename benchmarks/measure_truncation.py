"""Truncation: how many scripts exceed the model's token budget, per language and label, and how the model, the
baseline and the ensemble score long scripts against short ones (test split of finished runs).

A script longer than the budget loses its middle (prompt.encode keeps the first 75% and last 25% of the budget).
If long scripts score much worse than short ones, whole-script scoring (overlapping windows) is worth its cost.
Reads finished run directories (e.g. runs on the shared dev set); writes nothing from the data but counts and AUCs:

    python -m benchmarks.measure_truncation RUN_DIR [RUN_DIR ...] [--out benchmarks/results/truncation.json]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import machine_info, rounded_roc_auc, write_result
from pipeline.model import prompt
from pipeline.run.records import read_records


def _scores(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    return {json.loads(l)["id"]: json.loads(l)["score"] for l in path.read_text().splitlines() if l.strip()}


def measure(run_dir: Path) -> dict:
    from transformers import AutoTokenizer

    spec = json.loads((run_dir / "train" / "classifier" / "sgpipe_scoring.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "train" / "classifier")
    test = list(read_records(run_dir / "split" / "test.jsonl"))
    overhead = {r.lang: len(tokenizer(prompt.PREFIX.format(lang=r.lang) + prompt.SUFFIX)["input_ids"]) + 1
                for r in test}
    long = {r.id: len(tokenizer(r.text)["input_ids"]) > spec["max_length"] - overhead[r.lang] for r in test}
    share = defaultdict(lambda: [0, 0])
    for r in test:
        share[f"{r.lang}/{r.label}"][0] += long[r.id]
        share[f"{r.lang}/{r.label}"][1] += 1
    out = {"max_length": spec["max_length"], "test_n": len(test), "long_n": sum(long.values()),
           "share_long": {k: round(a / n, 3) for k, (a, n) in sorted(share.items())}, "auc": {}}
    for scorer, file in (("model", "predictions.jsonl"), ("baseline", "baseline_predictions.jsonl"),
                         ("ensemble", "ensemble_predictions.jsonl")):
        s = _scores(run_dir / "evaluate" / file)
        if s:
            out["auc"][scorer] = {part: rounded_roc_auc([r.y for r in test if long[r.id] == want],
                                                        [s[r.id] for r in test if long[r.id] == want])
                                  for part, want in (("long", True), ("short", False))}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results = {str(r): measure(Path(r)) for r in args.runs}
    for run, res in results.items():
        print(run, json.dumps(res))
    write_result("truncation", args.out, {"machine": machine_info(1), "runs": results,
                                          "data": "test split of the given runs"})


if __name__ == "__main__":
    main()
