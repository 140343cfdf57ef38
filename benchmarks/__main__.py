"""Run every benchmark (benchmarks/bench_*.py) in turn with its default (quick) settings.

    python -m benchmarks                 # all of them
    python -m benchmarks padding scoring # only bench_padding and bench_scoring
    python -m benchmarks.bench_scoring --help   # one benchmark, with its own options (bigger runs)

Each benchmark runs as `python -m benchmarks.<name>` in its own process from the repository root: torch thread
settings and memory of one never leak into the next, and one that fails does not stop the others. Each prints its
table and writes benchmarks/results/<name>.json.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Module names of the benchmarks, in file-name order."""
    return sorted(p.stem for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", metavar="NAME",
                        help=f"benchmarks to run, with or without the bench_ prefix: {', '.join(available)}")
    args = parser.parse_args(argv)
    chosen = [n if n.startswith("bench_") else f"bench_{n}" for n in args.only] or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (available: {', '.join(available)})")

    summary = []
    for name in chosen:
        print(f"\n===== {name} =====", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=HERE.parent)
        summary.append((name, code, time.perf_counter() - start))
    print("\n===== summary =====")
    for name, code, seconds in summary:
        print(f"{name:<28} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:7.1f} s")
    return int(any(code != 0 for _, code, _ in summary))


if __name__ == "__main__":
    sys.exit(main())
