"""Padding waste with and without group_by_length, on the token lengths of real scripts.

    python -m benchmarks.bench_padding [--max-lengths 512 1024] [--batch 16] [--seeds 5] [--data FILE]   # seconds

Lengths are those of training rows: a byte-level BPE tokenizer is trained on the scripts (`tiny.train_tokenizer` on
`prompt.tokenizer_corpus`, as the tiny model does), each script is encoded with `prompt.encode` at the max length
(cut to fit) and the verdict token is added. Batches of `--batch` rows are padded to their longest row, as TRL's
collator does; waste = pad positions / all positions. Three orders:
- random: a seeded shuffle (the Trainer's default RandomSampler);
- grouped: transformers' LengthGroupedSampler (train_sampling_strategy="group_by_length"), seeded;
- sorted: all rows sorted by length (what `head.score_ids` does when scoring): the floor, not usable for training.
Random and grouped are averaged over `--seeds` seeds. Pure computation: no model runs.
"""
from __future__ import annotations

import argparse
import statistics

from benchmarks.common import add_common_arguments, describe, load_scripts, machine_info, print_table, write_result


def waste(order: list[int], lengths: list[int], batch: int) -> float:
    """Fraction of positions that are padding when `order` is cut into batches padded to their longest row."""
    pad = total = 0
    for start in range(0, len(order), batch):
        rows = [lengths[i] for i in order[start:start + batch]]
        total += max(rows) * len(rows)
        pad += max(rows) * len(rows) - sum(rows)
    return pad / total


def orders(lengths: list[int], batch: int, seed: int) -> dict[str, list[int]]:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
    grouped = list(LengthGroupedSampler(batch, lengths=lengths, generator=torch.Generator().manual_seed(seed)))
    return {"random": random_order, "grouped": grouped}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=5, help="shuffles averaged for random and grouped")
    parser.add_argument("--vocab", type=int, default=4096, help="tokenizer vocabulary size")
    add_common_arguments(parser, threads=1)
    args = parser.parse_args(argv)

    from pipeline.model import prompt
    from pipeline.model.tiny import train_tokenizer

    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    print(describe(machine, scripts.source))
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(scripts.texts), args.vocab)
    print(f"tokenizer: byte-level BPE, vocab {len(tokenizer)}, trained on these scripts; batch {args.batch}; "
          f"random and grouped averaged over seeds 0..{args.seeds - 1}", flush=True)

    results, table = [], []
    for max_length in args.max_lengths:
        lengths = [len(prompt.encode(t, lang, tokenizer, max_length)) + 1  # + the verdict token
                   for t, lang in zip(scripts.texts, scripts.langs)]
        by_seed = {"random": [], "grouped": []}
        for seed in range(args.seeds):
            for name, order in orders(lengths, args.batch, seed).items():
                by_seed[name].append(waste(order, lengths, args.batch))
        floor = waste(sorted(range(len(lengths)), key=lambda i: -lengths[i]), lengths, args.batch)
        mean = {name: statistics.mean(v) for name, v in by_seed.items()}
        # positions the model computes per real token: 1 / (1 - waste); the ratio is the compute saved by grouping
        positions_ratio = (1 - mean["grouped"]) / (1 - mean["random"])
        r = {
            "max_length": max_length, "rows": len(lengths), "median_len": statistics.median(lengths),
            "p90_len": sorted(lengths)[int(0.9 * len(lengths))], "cut_to_fit": sum(n == max_length for n in lengths),
            "waste_random": round(mean["random"], 4),
            "waste_random_std": round(statistics.pstdev(by_seed["random"]), 4),
            "waste_grouped": round(mean["grouped"], 4),
            "waste_grouped_std": round(statistics.pstdev(by_seed["grouped"]), 4),
            "waste_sorted": round(floor, 4),
            "waste_ratio_random_over_grouped": round(mean["random"] / mean["grouped"], 2),
            "positions_ratio_random_over_grouped": round(positions_ratio, 2),
        }
        results.append(r)
        table.append({"max_len": max_length, "median len": r["median_len"], "p90 len": r["p90_len"],
                      "cut": r["cut_to_fit"], "waste random %": round(100 * r["waste_random"], 1),
                      "waste grouped %": round(100 * r["waste_grouped"], 1),
                      "waste sorted %": round(100 * r["waste_sorted"], 1),
                      "waste random/grouped": r["waste_ratio_random_over_grouped"],
                      "positions random/grouped": r["positions_ratio_random_over_grouped"]})
    print()
    print_table(table)
    print("\npositions random/grouped: how many more token positions (real + pad) random batches make the model "
          "compute for the same scripts")
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source,
                                              "sampler": "transformers.trainer_pt_utils.LengthGroupedSampler"},
               "results": results}
    write_result("padding", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
