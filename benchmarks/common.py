"""What every model benchmark shares: the scripts it reads, a description of the machine, peak memory measured in a
fresh process, a table printer, and the JSON it writes to benchmarks/results/<name>.json.

Peak memory: each variant runs in its own freshly spawned process (nothing left over from another variant). Once its
model is built, freed heap memory is returned to the OS (glibc malloc_trim) and the process's peak RSS is reset to its
current RSS (Linux: "5" written to /proc/self/clear_refs); at the end `resource.getrusage(RUSAGE_SELF).ru_maxrss` (the
peak since the reset) minus that RSS is the memory the variant needed above the model. Where the reset is not allowed,
the peak so far (model construction included) is the baseline and the figure is a lower bound. torch 2.13 has no CPU
allocator statistics, so RSS is the measure.

Timing on a shared machine: `OtherCpuUse` measures how many CPUs other processes used meanwhile, printed beside the
figures, so a slow run can be told from a busy machine.
"""
from __future__ import annotations

import argparse
import ctypes
import gzip
import json
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

from pipeline.run.records import write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SHARED_DEV = REPO.parent / "shared" / "data" / "dev.jsonl.gz"  # the shared dev set, outside the repository
TINY_DATA = REPO / "data" / "tiny" / "scripts.jsonl"  # the project's own dataset: the fallback
MEMORY_METHOD = ("a fresh spawned process per variant; once the model is built, free heap is trimmed (malloc_trim) and "
                 "the peak RSS reset (/proc/self/clear_refs); the figure is the peak RSS (getrusage ru_maxrss) at the "
                 "end minus the RSS at the reset")


@dataclass
class Scripts:
    texts: list[str]
    langs: list[str]
    labels: list[str]
    source: str  # what the data is, for the printed header and the JSON

    def __len__(self) -> int:
        return len(self.texts)


def rounded_roc_auc(y, scores) -> float | None:
    """ROC AUC to 4 decimals, as the results files record it; None when `y` holds one label only."""
    from sklearn.metrics import roc_auc_score

    y = [int(v) for v in y]
    return round(float(roc_auc_score(y, scores)), 4) if len(set(y)) == 2 else None


def load_scripts(path: str | None) -> Scripts:
    """Scripts from `path` (JSON lines, optionally gzipped) or, with None, the shared dev set if it exists, else
    data/tiny. Only text, lang and label are kept; nothing derived from them is ever written."""
    if path is None:
        file = SHARED_DEV if SHARED_DEV.exists() else TINY_DATA
    else:
        file = Path(path)
        if not file.exists():
            raise FileNotFoundError(f"--data {path}: no such file (omit --data to use {SHARED_DEV} or {TINY_DATA})")
    opener = gzip.open if file.suffix == ".gz" else open
    texts, langs, labels = [], [], []
    with opener(file, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                texts.append(row["text"])
                labels.append(row["label"])
            except KeyError as e:
                raise ValueError(f"{file}:{number}: no {e.args[0]!r} key; benchmarks read records with text and "
                                 "label (see pipeline/run/records.py)") from None
            langs.append(row.get("lang") or "unknown")
    name = "shared dev set" if file == SHARED_DEV else "data/tiny (the project's dataset)" if file == TINY_DATA \
        else "given file"
    return Scripts(texts, langs, labels, f"{name} {file.name}: {len(texts)} scripts")


def add_step_arguments(parser: argparse.ArgumentParser, steps: int) -> None:
    """--steps and --warmup of a training benchmark; check them with `check_step_arguments` after parsing."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing")


def check_step_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.steps <= args.warmup:
        parser.error("--steps must be larger than --warmup")


def add_common_arguments(parser: argparse.ArgumentParser, threads: int = 2, data: bool = True) -> None:
    if data:
        parser.add_argument("--data", default=None,
                            help=f"JSON lines of scripts (default: {SHARED_DEV} if it exists, else {TINY_DATA})")
    parser.add_argument("--threads", type=int, default=threads, help="torch threads")
    parser.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/<name>.json)")


def machine_info(torch_threads: int) -> dict:
    """CPU, memory, versions and load: enough to tell whether two runs are comparable."""
    import tokenizers
    import torch
    import transformers
    import trl

    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), None) if cpuinfo.exists() else None
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu or platform.processor(), "cpu_count": os.cpu_count(), "cpus_usable": usable,
        "memory_gib": round(pages / 2**30, 1), "torch_threads": torch_threads,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "transformers": transformers.__version__, "trl": trl.__version__, "tokenizers": tokenizers.__version__,
    }


def describe(machine: dict, data: str | None) -> str:
    text = (f"machine: {machine['cpu']}, {machine['cpus_usable']} of {machine['cpu_count']} CPUs, "
            f"{machine['memory_gib']} GiB, torch {machine['torch']} with {machine['torch_threads']} threads, "
            f"load average {machine['load_avg_1min']} at start")
    return text + (f"\ndata: {data}" if data else "")


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> float:
    """Start a memory measurement: hand freed heap memory back to the OS (glibc's malloc_trim), so the baseline is what
    is live, then reset the peak RSS to the current RSS where Linux allows it. Returns the baseline (MiB)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass  # not glibc: freed memory the allocator keeps may absorb some of the variant's allocations
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak so far stays the baseline, and the rise above it a lower bound
    return peak_rss_mib()


class OtherCpuUse:
    """CPU time other processes used while in the `with` block, in cores (0 to cpu_count), from /proc/stat minus this
    process's own use (with `children`, also that of its child processes that ended: worker pools): on a shared
    machine, the figure that says how much a timing was slowed by others."""

    def __init__(self, children: bool = False):
        self.children = children

    def __enter__(self) -> "OtherCpuUse":
        self.cores: float | None = None
        self._start = (time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds(self.children))
        return self

    def __exit__(self, *exc) -> None:
        wall, busy, own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds(self.children)
        if busy is not None and self._start[1] is not None:
            others = (busy - self._start[1]) - (own - self._start[2])
            self.cores = round(max(0.0, others) / (wall - self._start[0]), 2)


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes spent busy since boot (Linux), None elsewhere: the difference over a span, less a
    process's own CPU time, is what others used."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal; guest time is already in user


def own_cpu_seconds(children: bool = False) -> float:
    """CPU seconds of this process; with `children`, plus those of its child processes that have ended."""
    t = os.times()
    return t.user + t.system + (t.children_user + t.children_system if children else 0.0)


def in_fresh_process(fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs) in a newly spawned Python process (fn must be a module-level function): its peak RSS
    then belongs to this variant alone."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def mean_and_spread(seconds: Sequence[float]) -> dict:
    n = len(seconds)
    mean = sum(seconds) / n
    std = (sum((s - mean) ** 2 for s in seconds) / (n - 1)) ** 0.5 if n > 1 else 0.0
    ordered = sorted(seconds)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return {"mean_s": round(mean, 4), "median_s": round(median, 4), "std_s": round(std, 4),
            "min_s": round(ordered[0], 4), "max_s": round(ordered[-1], 4), "n": n}


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Rows of dicts as an aligned text table (columns default to the first row's keys)."""
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def write_result(name: str, out: str | None, payload: dict) -> Path:
    """Write `payload` (machine, params, results) to `out` or benchmarks/results/<name>.json; print where."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), **payload}
    write_json(path, payload)
    print(f"wrote {path}")
    return path
