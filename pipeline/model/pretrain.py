"""Self-supervised warm-up of the random-init tiny model: next-token prediction on the training scripts, no labels.

The production model arrives pretrained on code; the tiny one arrives random, so its classifier fine-tune has to learn
what a token is and the verdict at once from ~1,000 labels. A short causal-LM pass over the very prompts the
classifier will read (`prompt.build_training_rows` ids, verdict dropped) gives it the first part from unlabelled text,
as pretraining gives the 3B model. It is not the "loss over the whole script" failure: that one diluted the
classification loss with LM loss; here the LM pass ends before classification starts, never sees a label (the verdict
token is dropped; distinct training texts only, so oversampling does not weight a class), and the classifier is then
trained on the verdict alone. Val and test are never read.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from pipeline.model import prompt
from pipeline.model.head import right_pad

POSITION_SHARE = 0.25  # of the real positions that get a next-token loss in each step (see warm_up)


def lm_rows(texts: Sequence[str], langs: Sequence[str], tokenizer, max_length: int, head_ratio: float,
            windows: prompt.Windows = prompt.Windows(), seed: int = 0) -> list[list[int]]:
    """The classifier's own prompt ids for each script (template, then head and tail or one window, as its training
    rows read it), without the verdict token."""
    rows = prompt.build_training_rows(texts, langs, ["benign"] * len(texts), tokenizer, max_length, head_ratio,
                                      windows, seed)
    return [r["input_ids"][:-1] for r in rows]


def warm_up(model, rows: Sequence[Sequence[int]], *, epochs: float, learning_rate: float, batch_size: int,
            seed: int, pad_token_id: int, log: Callable[[str], None] = lambda _: None) -> dict:
    """Train `model` (a causal LM with its full-vocabulary head) on next-token loss over `rows`, in place.

    AdamW, 5% linear warm-up then linear decay to 0, gradient norm clipped to 1, rows shuffled per epoch with a
    generator seeded by `seed` (the global RNG is not touched). Returns what happened: steps, predicted tokens, the
    first and last loss, seconds.
    """
    if epochs <= 0 or not rows:
        return {"steps": 0}
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(rows) / batch_size)
    total = max(1, round(per_epoch * epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    warm = max(1, round(0.05 * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    device = next(model.parameters()).device
    model.train()
    started, losses, tokens, step, order = time.time(), [], 0, 0, []
    while step < total:
        if not order:
            order = torch.randperm(len(rows), generator=generator).tolist()
        ids, mask = (t.to(device) for t in right_pad([rows[i] for i in order[:batch_size]], pad_token_id))
        del order[:batch_size]
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        # Next-token loss at a random POSITION_SHARE of the real positions: at vocab 4096 the head and its softmax
        # are most of a step (2 cores, batch 16 x 512: 0.94 s at every position, 0.37 s at a quarter), while every
        # position still shapes the body through attention.
        real = torch.nonzero(mask[:, 1:].reshape(-1), as_tuple=True)[0]
        keep = real[torch.randperm(len(real), generator=generator)[:max(1, round(POSITION_SHARE * len(real)))]]
        logits = model.get_output_embeddings()(hidden[:, :-1].reshape(-1, hidden.shape[-1])[keep.to(device)])
        loss = F.cross_entropy(logits.float(), ids[:, 1:].reshape(-1)[keep.to(device)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += len(keep)
        losses.append(loss.item())
        step += 1
        if step == 1 or step % 25 == 0 or step == total:
            log(f"[train] LM warm-up step {step}/{total}: next-token loss {losses[-1]:.3f}")
    model.eval()
    return {"steps": total, "tokens": tokens, "loss_first": losses[0],
            "loss_last": sum(losses[-10:]) / len(losses[-10:]), "seconds": round(time.time() - started, 2)}
