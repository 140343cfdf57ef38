"""Training memory and step time: the two-label head loss vs the default completion-only loss over the full vocabulary.

    python -m benchmarks.bench_head_loss                          # quick: 2 warm-up + 6 timed steps per variant
    python -m benchmarks.bench_head_loss --steps 20 --memory-steps 5    # bigger; --seq, --batch, --hidden, --layers

Same model (a random StarCoder2 with StarCoder2's real vocabulary, 49,152, hidden 256, 4 layers), same batch of random
token ids whose last token is a verdict token, fp32, one AdamW step per iteration (forward + backward + step):
- full: what TRL's SFTTrainer does by default with completion-only loss, via transformers: `model(input_ids,
  labels=...)` with -100 everywhere but the verdict token, on the untrimmed (tied) head, so B x L x V logits are built
  and cross-entropy runs over the whole vocabulary;
- head: VerdictTrainer's loss: `head.trim_lm_head`, forward without labels, logits at the position before the
  verdict (`head.verdict_positions`), `head.two_label_loss`;
- gather: the head variant, but the hidden states are gathered at the verdict position before the 2-row head (the
  B x L x 2 logits are never built), to see whether that is worth doing.
Memory: each variant in its own fresh process (method: benchmarks/common.py). Time: all variants built in one process
and their steps interleaved, so the load of a shared machine weighs on each alike; mean, median and fastest step are
reported (on a busy machine the fastest is the closest to a quiet one).
Data: random token ids, no text (the cost does not depend on the token values).
"""
from __future__ import annotations

import argparse
import time

from benchmarks.common import (MEMORY_METHOD, OtherCpuUse, add_common_arguments, describe, in_fresh_process,
                               machine_info, mean_and_spread, peak_rss_mib, print_table, reset_peak_rss, write_result)

VARIANTS = ("full", "head", "gather")
VOCAB = 49_152  # StarCoder2's vocabulary (bigcode/starcoder2-3b/7b/15b)
LABEL_IDS = (1_000, 2_000)  # any two ids: the cost is the same for every pair


def make_step(variant: str, batch: int, seq: int, hidden: int, intermediate: int, layers: int):
    """(step, parameter count): step() runs one forward + backward + AdamW step of `variant` and returns the loss."""
    import torch

    from pipeline.model.head import trim_lm_head, two_label_loss, verdict_positions
    from pipeline.model.tiny import build_tiny_model

    model = build_tiny_model(VOCAB, hidden_size=hidden, intermediate_size=intermediate, num_layers=layers,
                             num_heads=4, num_kv_heads=2, max_position_embeddings=seq, seed=0)
    if variant != "full":
        trim_lm_head(model, LABEL_IDS)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, VOCAB, (batch, seq), generator=g)
    input_ids[:, -1] = torch.tensor([LABEL_IDS[i % 2] for i in range(batch)])  # the verdict: last token of each row
    attention_mask = torch.ones_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    labels[:, -1] = input_ids[:, -1]  # completion-only: only the verdict token is labelled
    rows = torch.arange(batch)

    def loss_of() -> torch.Tensor:
        if variant == "full":
            return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss
        positions, y = verdict_positions(labels, LABEL_IDS)
        if variant == "head":
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            return two_label_loss(logits[rows, positions], y)
        hidden_states = model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
        return two_label_loss(model.lm_head(hidden_states[rows, positions]), y)

    def step() -> float:
        loss = loss_of()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def measure_memory(variant: str, shape: dict, steps: int, threads: int) -> dict:
    """In a fresh process: build `variant`, reset the peak, run `steps` steps (the first creates AdamW's state)."""
    import torch

    torch.set_num_threads(threads)
    step, params = make_step(variant, **shape)
    baseline = reset_peak_rss()
    for _ in range(steps):
        step()
    peak = peak_rss_mib()
    return {"params": params, "rss_after_model_mib": round(baseline), "peak_rss_mib": round(peak),
            "peak_above_model_mib": round(peak - baseline, 1)}


def measure_time(variants: list[str], shape: dict, steps: int, warmup: int, threads: int) -> dict:
    """In one process: every variant built, then their steps interleaved (v1, v2, v3, v1, ...), so that a change in
    the machine's load during the run hits them alike."""
    import torch

    torch.set_num_threads(threads)
    runners = {v: make_step(v, **shape)[0] for v in variants}
    times = {v: [] for v in variants}
    losses = {}
    with OtherCpuUse() as others:
        for i in range(warmup + steps):
            for v, step in runners.items():
                start = time.perf_counter()
                losses[v] = step()
                if i >= warmup:
                    times[v].append(time.perf_counter() - start)
    return {"other_cpu_cores": others.cores,
            **{v: {"step": mean_and_spread(times[v]), "last_loss": losses[v]} for v in variants}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="steps per variant before timing")
    parser.add_argument("--memory-steps", type=int, default=2, help="steps per variant in its memory process")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    add_common_arguments(parser, data=False)
    args = parser.parse_args(argv)
    shape = {"batch": args.batch, "seq": args.seq, "hidden": args.hidden, "intermediate": args.intermediate,
             "layers": args.layers}

    machine = machine_info(args.threads)
    print(describe(machine, f"random token ids, batch {args.batch} x seq {args.seq}, verdict = last token"))
    print(f"model: StarCoder2, vocab {VOCAB}, hidden {args.hidden}, intermediate {args.intermediate}, "
          f"{args.layers} layers, fp32, AdamW")
    print(f"memory: {MEMORY_METHOD}; {args.memory_steps} steps each")
    print(f"time: one process, variants interleaved step by step; {args.warmup} warm-up + {args.steps} timed steps "
          "each", flush=True)
    results = {}
    for variant in args.variants:
        results[variant] = in_fresh_process(measure_memory, variant, shape, args.memory_steps, args.threads)
        print(f"  {variant}: {results[variant]['peak_above_model_mib']} MiB above the model", flush=True)
    timed = in_fresh_process(measure_time, args.variants, shape, args.steps, args.warmup, args.threads)
    for variant in args.variants:
        results[variant].update(timed[variant])

    base = results.get("head")
    table = []
    for variant, r in results.items():
        row = {"variant": variant, "params": r["params"], "s/step mean": r["step"]["mean_s"],
               "s/step median": r["step"]["median_s"], "s/step min": r["step"]["min_s"],
               "MiB above model": r["peak_above_model_mib"],
               "peak RSS MiB": r["peak_rss_mib"]}
        if base:
            row["time x head"] = round(r["step"]["mean_s"] / base["step"]["mean_s"], 2)
            row["memory x head"] = round(r["peak_above_model_mib"] / max(base["peak_above_model_mib"], 1), 2)
        table.append(row)
    print()
    print_table(table)
    print(f"other processes used {timed['other_cpu_cores']} of the {machine['cpu_count']} CPUs during the timing")
    ratios = {}
    if base and "full" in results:
        full = results["full"]
        ratios = {"full_over_head_time": round(full["step"]["mean_s"] / base["step"]["mean_s"], 2),
                  "full_over_head_time_median": round(full["step"]["median_s"] / base["step"]["median_s"], 2),
                  "full_over_head_time_min": round(full["step"]["min_s"] / base["step"]["min_s"], 2),
                  "full_over_head_memory": round(full["peak_above_model_mib"] / max(base["peak_above_model_mib"], 1),
                                                 2)}
        print(f"\nfull-vocabulary loss / head loss: {ratios['full_over_head_time']}x step time (mean; median "
              f"{ratios['full_over_head_time_median']}x, fastest steps {ratios['full_over_head_time_min']}x), "
              f"{ratios['full_over_head_memory']}x memory above the model (earlier runs: ~3.4-4x time, ~3.8x memory)")
    machine["other_cpu_cores_during_timing"] = timed["other_cpu_cores"]
    payload = {"machine": machine, "params": {**vars(args), "vocab": VOCAB, "label_ids": LABEL_IDS,
                                              "dtype": "float32", "optimizer": "AdamW",
                                              "data": "random token ids", "memory_method": MEMORY_METHOD,
                                              "time_method": "one process, variants interleaved step by step"},
               "results": results, "ratios": ratios}
    write_result("head_loss", args.out, payload)
    return payload


if __name__ == "__main__":
    main()
