"""Language detection on adversarial text shapes: the time must grow linearly with the text it reads.

    python -m benchmarks.bench_languages            # shapes at 12.5k and 50k characters, best of 3
    python -m benchmarks.bench_languages --sizes 10000 40000 160000 --repeats 5

Content detection scores the first 50,000 characters (languages._SCAN_CHARS) with about 60 regular expressions. A
pattern such as `^\\s*fi` under re.M made every line start rescan the rest of the text (`\\s` matches newlines), so a
record of blank lines took quadratic time (issue 10: 8k newlines 11.3 s, 30k hung ingest). Each shape is timed at
each size; `growth` is time(largest) / time(smallest) beside the size ratio: linear detection grows like the size
ratio (4x for 4x), quadratic like its square (16x). Text longer than the scan prefix costs the same as the prefix.
Data: synthetic text built here (no scripts are read).
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import describe, machine_info, print_table, write_result

# name -> one repeating unit; the text is the unit repeated up to the size, plus one line of code at the end
SHAPES = {
    "blank_lines": "\n",
    "crlf_blank_lines": "\r\n",
    "whitespace_lines": " \t \n",
    "one_line_of_spaces": " ",
    "one_line_of_words": "a",
    "dollar_assignments": "$a \n",
    "open_parens": "def f(",
    "colons": "class A:",
    "heredoc_starts": "<<a ",
}
REFERENCE = "issue 10, before the fix: 1k blank lines 0.24 s, 4k 3.5 s, 8k 11.3 s (quadratic)"


def time_detection(text: str, repeats: int) -> float:
    from pipeline.languages import detect_language

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        detect_language(text)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[12_500, 50_000], help="text sizes in characters")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per shape and size (the fastest is kept)")
    parser.add_argument("--out", default=None, help="result JSON (default: benchmarks/results/languages.json)")
    args = parser.parse_args(argv)
    machine = machine_info(torch_threads=1)
    print(describe(machine, "synthetic adversarial shapes") + f"\nreference: {REFERENCE}")
    sizes = sorted(args.sizes)
    rows = []
    for name, unit in SHAPES.items():
        row = {"shape": name}
        for size in sizes:
            text = (unit * (size // len(unit) + 1))[:size] + "\necho done\n"
            row[f"{size}_chars_s"] = round(time_detection(text, args.repeats), 5)
        row["growth"] = round(row[f"{sizes[-1]}_chars_s"] / max(row[f"{sizes[0]}_chars_s"], 1e-9), 2)
        row["size_ratio"] = round(sizes[-1] / sizes[0], 2)
        rows.append(row)
    print_table(rows)
    write_result("languages", args.out, {"machine": machine, "params": vars(args), "reference": REFERENCE,
                                         "results": rows})


if __name__ == "__main__":
    main()
