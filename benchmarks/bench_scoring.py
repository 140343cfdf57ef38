"""Scoring throughput and memory: batched two-row head scoring vs one `generate` call per script.

    python -m benchmarks.bench_scoring                       # quick: N = 100, 200, 400, best of 2 rounds
    python -m benchmarks.bench_scoring --scaling 100 200 400 800 1600 --repeat 5   # bigger

Same tiny StarCoder2 (hidden 128, 2 layers, vocab 4096, random init, seed 0), same tokenizer (trained on the scripts),
same prompts (`prompt.encode` at max length 512), tokenisation included in both:
- head: `head.score` on the trimmed model: batches of 16, right-padded, one forward per batch, two-way softmax at the
  last real token;
- generate: the constrained-decoding approach of the project sgpipe grew from: per script one
  `model.generate(prompt, max_new_tokens=1, do_sample=False, output_logits=True)` on the untrimmed causal LM (full
  vocabulary head, KV cache on), then the generated token is compared with the two label tokens (the verdict; any
  other token is "no verdict") and the two label logits of that step give P(malicious).
Both probabilities must agree (same weights, same position): their largest difference is printed as a check that the
two paths compute the same thing. Memory: each method scores `--n` scripts in its own fresh process (method:
benchmarks/common.py). Time: one process builds both models and, for `--n` and each `--scaling` size, runs the methods
one after the other (the load of a shared machine weighs on both alike); seconds against N get a least-squares line.
Sizes beyond the number of scripts reuse scripts (said in the output).
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np

from benchmarks.common import (MEMORY_METHOD, OtherCpuUse, add_common_arguments, describe, in_fresh_process,
                               load_scripts, machine_info, peak_rss_mib, print_table, reset_peak_rss, write_result)

METHODS = ("head", "generate")


def generate_scores(model, tokenizer, texts, langs, max_length: int, new_tokens: int) -> tuple[np.ndarray, list]:
    """(P(malicious), verdict) per script, one greedy `generate` call each on the full-vocabulary causal LM."""
    import torch

    from pipeline.model import prompt

    benign, malicious = prompt.label_token_ids(tokenizer)
    probs, verdicts = np.empty(len(texts)), []
    for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        ids = torch.tensor([prompt.encode(text, lang, tokenizer, max_length)])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id, output_logits=True,
                             return_dict_in_generate=True)
        first = int(out.sequences[0, ids.shape[1]])
        verdicts.append("malicious" if first == malicious else "benign" if first == benign else None)
        probs[i] = torch.softmax(out.logits[0][0, [benign, malicious]].float(), -1)[1].item()
    return probs, verdicts


def make_scorer(method: str, tokenizer, max_length: int, batch: int, new_tokens: int):
    """(score, parameter count): score(texts, langs) -> (P(malicious), verdicts or None), with `method`'s model."""
    import torch

    from pipeline.model import head, prompt
    from pipeline.model.tiny import build_tiny_model

    model = build_tiny_model(len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=0)
    if method == "head":
        head.trim_lm_head(model, prompt.label_token_ids(tokenizer))

    def score(texts: list[str], langs: list[str]):
        if method == "head":
            return head.score(model, tokenizer, texts, langs, max_length, batch_size=batch), None
        with torch.no_grad():
            return generate_scores(model, tokenizer, texts, langs, max_length, new_tokens)

    return score, sum(p.numel() for p in model.parameters())


def measure_memory(method: str, tokenizer, texts: list[str], langs: list[str], settings: dict, threads: int) -> dict:
    """In a fresh process: build `method`'s model, reset the peak, score the scripts; memory and outputs."""
    import torch

    torch.set_num_threads(threads)
    score, params = make_scorer(method, tokenizer, **settings)
    baseline = reset_peak_rss()
    probs, verdicts = score(texts, langs)
    peak = peak_rss_mib()
    return {"params": params, "rss_after_model_mib": round(baseline), "peak_rss_mib": round(peak),
            "peak_above_model_mib": round(peak - baseline, 1), "probs": probs.tolist(),
            "verdicts": None if verdicts is None else {str(v): verdicts.count(v) for v in set(verdicts)}}


def measure_time(methods: list[str], tokenizer, texts: list[str], langs: list[str], sizes: list[int],
                 settings: dict, threads: int) -> dict:
    """In one process: every method's model built and warmed up, then for each size the methods one after the other,
    so that a change in the machine's load hits them alike. Seconds per (method, size)."""
    import torch

    torch.set_num_threads(threads)
    scorers = {m: make_scorer(m, tokenizer, **settings)[0] for m in methods}
    for score in scorers.values():
        score(texts[:settings["batch"]], langs[:settings["batch"]])  # warm-up: lazy initialisation, first calls
    seconds = {m: [] for m in methods}
    with OtherCpuUse() as others:
        for k in sizes:
            for m, score in scorers.items():
                start = time.perf_counter()
                score(texts[:k], langs[:k])
                seconds[m].append(round(time.perf_counter() - start, 3))
    return {"seconds": seconds, "other_cpu_cores": others.cores}


def linear_fit(points: list[dict]) -> dict:
    """Least-squares seconds = slope * n + intercept, and R^2."""
    n = np.array([p["n"] for p in points], dtype=float)
    s = np.array([p["seconds"] for p in points], dtype=float)
    slope, intercept = np.polyfit(n, s, 1)
    residual = s - (slope * n + intercept)
    r2 = 1 - (residual ** 2).sum() / ((s - s.mean()) ** 2).sum()
    return {"slope_s_per_script": float(slope), "intercept_s": float(intercept), "r2": float(r2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="scripts for the ratio, the memory and the check")
    parser.add_argument("--scaling", type=int, nargs="*", default=[100, 200, 400],
                        help="more sizes for seconds-vs-N (none: only --n)")
    parser.add_argument("--repeat", type=int, default=2, help="timing rounds; the fastest of each is kept")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=1, choices=(1, 2), help="max_new_tokens of generate")
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0, help="which scripts, in which order")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    sizes = sorted({args.n, *args.scaling})
    settings = {"max_length": args.max_length, "batch": args.batch, "new_tokens": args.new_tokens}

    from pipeline.model import prompt
    from pipeline.model.tiny import train_tokenizer

    scripts = load_scripts(args.data)
    machine = machine_info(args.threads)
    order = list(range(len(scripts)))
    random.Random(args.seed).shuffle(order)
    picked = [order[i % len(order)] for i in range(sizes[-1])]  # reuses scripts only past len(scripts)
    texts, langs = [scripts.texts[i] for i in picked], [scripts.langs[i] for i in picked]
    reuse = f"; sizes above {len(scripts)} reuse scripts" if sizes[-1] > len(scripts) else ""
    print(describe(machine, f"{scripts.source}, a seeded shuffle of them{reuse}"))
    tokenizer = train_tokenizer(prompt.tokenizer_corpus(scripts.texts), args.vocab, max_length=args.max_length)
    lengths = [len(prompt.encode(t, lang, tokenizer, args.max_length)) for t, lang in zip(texts[:args.n], langs)]
    print(f"tiny StarCoder2 (hidden 128, 2 layers, vocab {len(tokenizer)}, random init), fp32, no grad; max length "
          f"{args.max_length} (the first {args.n} prompts: median {int(np.median(lengths))} tokens, "
          f"{sum(n == args.max_length - 1 for n in lengths)} cut to fit); head batch {args.batch}; generate "
          f"max_new_tokens {args.new_tokens}, greedy; tokenisation included in both")
    print(f"memory: {MEMORY_METHOD}; {args.n} scripts")
    print(f"time: one process, both models, methods alternated at each size; fastest of {args.repeat} round(s)",
          flush=True)

    results = {}
    for method in args.methods:
        results[method] = in_fresh_process(measure_memory, method, tokenizer, texts[:args.n], langs[:args.n],
                                           settings, args.threads)
        print(f"  {method}: {results[method]['peak_above_model_mib']} MiB above the model", flush=True)
    rounds = [in_fresh_process(measure_time, args.methods, tokenizer, texts, langs, sizes, settings, args.threads)
              for _ in range(args.repeat)]
    others = [one["other_cpu_cores"] for one in rounds]
    for method, r in results.items():
        r["sizes"] = [{"n": k, "seconds": min(one["seconds"][method][i] for one in rounds),
                       "all_rounds": [one["seconds"][method][i] for one in rounds]} for i, k in enumerate(sizes)]
        r["seconds"] = next(p["seconds"] for p in r["sizes"] if p["n"] == args.n)
        r["scripts_per_s"] = round(args.n / r["seconds"], 1)
        if len(sizes) > 2:
            r["fit"] = linear_fit(r["sizes"])

    print()
    print_table([{"method": m, "params": r["params"], "scripts": args.n, "seconds": r["seconds"],
                  "scripts/s": r["scripts_per_s"], "MiB above model": r["peak_above_model_mib"],
                  "peak RSS MiB": r["peak_rss_mib"]} for m, r in results.items()])
    print(f"other processes used {', '.join(map(str, others))} of the {machine['cpu_count']} CPUs during the timing "
          "(each round)")
    summary = {}
    if {"head", "generate"} <= results.keys():
        h, g = results["head"], results["generate"]
        summary = {"speedup_head_over_generate": round(h["scripts_per_s"] / g["scripts_per_s"], 2),
                   "max_abs_prob_difference": float(np.abs(np.array(h["probs"]) - np.array(g["probs"])).max()),
                   "generate_verdicts": g["verdicts"]}
        print(f"\nhead scoring: {summary['speedup_head_over_generate']}x the scripts/s of generate; largest "
              f"|P_head - P_generate| over the {args.n} scripts: {summary['max_abs_prob_difference']:.1e} (the same "
              f"computation); first tokens generate produced: {g['verdicts']} (None = not a label word: the model "
              "is untrained, which changes no cost)")
    if len(sizes) > 2:
        print("\nseconds against N, with a least-squares line:")
        print_table([{"method": m, **{f"N={p['n']}": p["seconds"] for p in r["sizes"]},
                      "ms/script (slope)": round(1000 * r["fit"]["slope_s_per_script"], 2),
                      "intercept s": round(r["fit"]["intercept_s"], 3), "R^2": round(r["fit"]["r2"], 4)}
                     for m, r in results.items()])
    for r in results.values():
        r.pop("probs")  # per-script outputs: not a benchmark figure
    machine["other_cpu_cores_during_timing"] = others
    payload = {"machine": machine, "params": {**vars(args), "data": scripts.source, "memory_method": MEMORY_METHOD,
                                              "time_method": "one process, methods alternated at each size",
                                              "model": "tiny-starcoder2 hidden 128, intermediate 512, 2 layers, "
                                                       "4 heads, 2 kv heads, random init seed 0",
                                              "prompt_median_tokens": int(np.median(lengths))},
               "results": results, "summary": summary}
    write_result("scoring", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
