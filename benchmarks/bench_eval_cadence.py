"""What evaluation and checkpoints cost during `sgpipe train`: the tiny default's cadence beside the same training with
evaluation off, in one process, on the same machine load.

    python -m benchmarks.bench_eval_cadence                 # data/tiny, configs/tiny.yaml (the demo)
    python -m benchmarks.bench_eval_cadence --data ../shared/data/dev.jsonl.gz

The data stages run once (ingest .. balance, tiny config); then the train stage runs as `sgpipe train` runs it, first
with the config's cadence and then with evaluation, checkpoints, early stopping and best-model reload off, `--repeats`
times alternately. In the cadence run, every `VerdictTrainer.evaluate` call and every checkpoint save is timed from
inside, so the overhead is measured twice: as the timed share (every evaluation, the untrained model's included, and
every save, over the training loop's own time: `train()` less the evaluations and saves inside it), and as the
wall-time ratio of the two runs. On a busy machine trust the first: both sides of it see the same load. The goal (issue 12): under 15% of training time on the tiny default, with the
untrained and the final evaluation each done once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, RESULTS, TINY_DATA, OtherCpuUse, describe, machine_info

GOAL = 0.15
EVAL_OFF = ["training.eval_strategy='no'", "training.load_best_model_at_end=false", "training.early_stopping=false"]


class Stopwatch:
    """Wraps VerdictTrainer.evaluate and _save_checkpoint to time every call (and count them) while installed."""

    def __init__(self):
        from pipeline.model.trainer import VerdictTrainer

        self.cls, self.saved = VerdictTrainer, {}
        self.seconds = {"evaluate": 0.0, "_save_checkpoint": 0.0, "train": 0.0}
        self.calls = {"evaluate": 0, "_save_checkpoint": 0, "train": 0}

    def training_seconds(self) -> float:
        """The training loop's own time: `train()` less the evaluations and saves made inside it (all but the
        untrained model's evaluation, which comes before)."""
        inside = self.seconds["evaluate"] - self.first_evaluation + self.seconds["_save_checkpoint"]
        return self.seconds["train"] - inside

    @property
    def first_evaluation(self) -> float:
        return self.evaluations[0] if self.evaluations else 0.0

    def __enter__(self) -> "Stopwatch":
        self.evaluations: list[float] = []
        for name in self.seconds:
            original = getattr(self.cls, name)
            self.saved[name] = original

            def timed(trainer, *args, _name=name, _original=original, **kwargs):
                started = time.perf_counter()
                try:
                    return _original(trainer, *args, **kwargs)
                finally:
                    seconds = time.perf_counter() - started
                    self.seconds[_name] += seconds
                    self.calls[_name] += 1
                    if _name == "evaluate":
                        self.evaluations.append(seconds)

            setattr(self.cls, name, timed)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self.saved.items():
            setattr(self.cls, name, original)


def train_once(config, run_dir: Path) -> tuple[float, dict]:
    """(wall seconds of the train stage, its counts)."""
    from pipeline.run.runner import run_stage

    started = time.perf_counter()
    manifest = run_stage(config, run_dir, "train", log=lambda message: None)
    return time.perf_counter() - started, manifest["counts"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(TINY_DATA), help="input scripts (default: data/tiny)")
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--repeats", type=int, default=1, help="cadence/eval-off pairs, run alternately")
    parser.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/eval_cadence.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from pipeline.config import load_config
    from pipeline.plan import cadence
    from pipeline.run.records import write_json
    from pipeline.run.runner import run_pipeline

    data = Path(args.data)
    cadenced = load_config(args.config, inputs=[str(data.resolve())])
    eval_off = load_config(args.config, overrides=EVAL_OFF, inputs=[str(data.resolve())])
    machine = machine_info(cadenced.training.torch_threads)
    print(describe(machine, f"{data} ({args.config})"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_pipeline(cadenced, run_dir, until="balance", log=lambda message: None)
        for _ in range(args.repeats):
            with OtherCpuUse() as others, Stopwatch() as watch:
                wall_on, counts = train_once(cadenced, run_dir)
            wall_off, counts_off = train_once(eval_off, run_dir)
            spent = watch.seconds["evaluate"] + watch.seconds["_save_checkpoint"]
            training = watch.training_seconds()
            rows.append({"wall_cadence_s": round(wall_on, 2), "wall_eval_off_s": round(wall_off, 2),
                         "steps": counts["steps"], "steps_eval_off": counts_off["steps"],
                         "evaluations": watch.calls["evaluate"], "evaluate_s": round(watch.seconds["evaluate"], 2),
                         "checkpoints": watch.calls["_save_checkpoint"],
                         "checkpoint_s": round(watch.seconds["_save_checkpoint"], 2),
                         "training_loop_s": round(training, 2), "timed_share": round(spent / training, 3),
                         "wall_ratio": round(wall_on / wall_off - 1, 3),
                         "other_cpu_cores": others.cores})
            print(rows[-1])
        train_rows = counts["train_rows"]
    plan = cadence(cadenced.training, train_rows, 1)
    share = statistics.median(r["timed_share"] for r in rows)
    ratio = statistics.median(r["wall_ratio"] for r in rows)
    print(f"\ncadence: every {plan.eval_steps} steps ({plan.steps_per_epoch} steps an epoch); "
          f"{rows[-1]['evaluations']} evaluations (untrained and final included), {rows[-1]['checkpoints']} checkpoints")
    print(f"evaluation + checkpoints: {share:.1%} of training time, timed inside the run; "
          f"{ratio:+.1%} wall time against evaluation off   (goal: under {GOAL:.0%})")
    write_json(Path(args.out) if args.out else RESULTS / "eval_cadence.json",
               {"machine": machine, "data": str(data), "config": args.config, "goal": GOAL,
                "eval_steps": plan.eval_steps, "steps_per_epoch": plan.steps_per_epoch, "runs": rows,
                "timed_share_median": share, "wall_ratio_median": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
