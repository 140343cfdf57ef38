"""Why is this script malicious? Per-line attribution by occlusion, scored exactly as predict scores.

Each line (or, for long scripts, each window of consecutive lines) is removed in turn, and every variant is scored in
batches through the same scorer predict uses (for the model: `Classifier.score`, i.e. `prompt.encode` with its
truncation, then the two-row head). A unit's contribution is the drop in P(malicious) when it is removed: positive
when the line pushes towards "malicious", negative when removing it raises the score. Because the variants go through
predict's own scoring path, an explanation explains predict's score, not some surrogate's.

Truncation: a script longer than the model's budget keeps its head and tail tokens (`prompt.encode`). Lines wholly in
the cut middle were never read; they are reported as unread ranges and get no contribution.

The scorer is an interface (`Scorer`: `score(texts, langs)` and `read_mask(text, lang)`), so a combined score (an
ensemble of the model and a TF-IDF baseline) can be explained as itself by passing another scorer.
Nothing here executes a sample: texts are only split into lines, joined and tokenised.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol, Sequence

import numpy as np

from pipeline.inputs.readers import safe_display

TEXT_CHARS = 240  # characters of a line kept in an explanation (neutralised); the line number locates the rest
DEFAULT_MAX_UNITS = 128  # at most this many occlusions per script: longer scripts are explained by windows of lines


class Scorer(Protocol):
    def score(self, texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
        """P(malicious) per script, exactly as predict computes it."""

    def read_mask(self, text: str, lang: str) -> list[bool]:
        """Per line of `text.split("\\n")`: True when the scorer reads (some of) that line."""


class ClassifierScorer:
    """The trained classifier as predict uses it: same prompt, truncation, batching and head."""

    def __init__(self, classifier, batch_size: int = 32):
        self.classifier, self.batch_size = classifier, batch_size

    def score(self, texts: Sequence[str], langs: Sequence[str]) -> np.ndarray:
        return self.classifier.score(list(texts), list(langs), self.batch_size)

    def read_mask(self, text: str, lang: str) -> list[bool]:
        c = self.classifier
        if getattr(c, "reads_whole_text", False):  # an ensemble with the baseline: every line moves its score
            return [True] * len(text.split("\n"))
        windows = getattr(c, "windows", None)
        if windows is not None and windows.on:
            return window_read_mask(text, lang, c.tokenizer, c.max_length, windows)
        return token_read_mask(text, lang, c.tokenizer, c.max_length, c.head_ratio)


def window_read_mask(text: str, lang: str, tokenizer, max_length: int, windows) -> list[bool]:
    """Which lines the windows of `prompt.encode_windows` read (all of them unless max_windows leaves gaps)."""
    from .model import prompt

    lines = text.split("\n")
    try:
        enc = tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True,
                        verbose=False)
    except NotImplementedError:  # no offsets: call every line read, never the reverse
        return [True] * len(lines)
    offsets = enc["offset_mapping"]
    budget = prompt._budget(prompt._ids(tokenizer, prompt.PREFIX.format(lang=lang)),
                            prompt._ids(tokenizer, prompt.SUFFIX), max_length, lang)
    spans = [(offsets[s][0], offsets[min(s + budget, len(offsets)) - 1][1])
             for s in prompt.window_starts(len(offsets), budget, windows)] if offsets else [(0, len(text))]
    mask, start = [], 0
    for line in lines:
        end = start + len(line)
        mask.append(any(start < b and end > a for a, b in spans))
        start = end + 1  # the "\n"
    return mask


def token_read_mask(text: str, lang: str, tokenizer, max_length: int, head_ratio: float) -> list[bool]:
    """Which lines survive `prompt.encode`'s cut (head_ratio of the budget from the start, the rest from the end).

    The kept token counts are re-derived here and checked against `prompt.encode`'s own output; if they ever disagree
    (encode changed), every line counts as read rather than risk calling a read line unread.
    """
    from .model import prompt

    lines = text.split("\n")
    encoded = prompt.encode(text, lang, tokenizer, max_length, head_ratio)
    try:
        enc = tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True,
                        verbose=False)
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets: call every line read, never the reverse
        return [True] * len(lines)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    n_prefix = len(prompt._ids(tokenizer, prompt.PREFIX.format(lang=lang)))
    n_suffix = len(prompt._ids(tokenizer, prompt.SUFFIX))
    kept = encoded[n_prefix:len(encoded) - n_suffix]
    if kept == ids:
        return [True] * len(lines)
    marker = prompt._ids(tokenizer, prompt.MARKER)
    keep = len(kept) - len(marker)
    head = round(keep * head_ratio)
    tail = keep - head
    if kept != ids[:head] + marker + ids[len(ids) - tail:]:
        return [True] * len(lines)
    head_end = offsets[head - 1][1] if head else 0
    tail_start = offsets[len(ids) - tail][0] if tail else len(text)
    mask, start = [], 0
    for line in lines:
        end = start + len(line)
        mask.append(start < head_end or end > tail_start)
        start = end + 1  # the "\n"
    return mask


@dataclass
class LineScore:
    line: int  # 1-based first line of the unit
    line_end: int  # 1-based last line (== line unless windows were used)
    contribution: float  # P(malicious) with the unit minus without it
    text: str  # neutralised, cut to TEXT_CHARS (a window shows its first non-blank line)


@dataclass
class Explanation:
    location: str
    lang: str
    score: float | None  # P(malicious); None when the input could not be read
    verdict: str | None  # malicious | benign at the threshold
    lines: list[LineScore] = field(default_factory=list)  # by contribution, highest first
    unread: list[list[int]] = field(default_factory=list)  # [first, last] line ranges cut by truncation
    window: int = 1  # lines per occluded unit
    error: str | None = None

    def top(self, k: int) -> list[LineScore]:
        return self.lines[:k]

    def as_dict(self, top: int = 0) -> dict:
        """JSON-ready; `top` > 0 keeps only the first `top` lines."""
        d = asdict(self)
        d["lines"] = d["lines"][:top] if top > 0 else d["lines"]
        return d


def without(lines: Sequence[str], drop: set[int]) -> str:
    """The script with the given 0-based lines removed (their newlines too)."""
    return "\n".join(line for i, line in enumerate(lines) if i not in drop)


def units(lines: Sequence[str], read: Sequence[bool], max_units: int) -> tuple[list[list[int]], int]:
    """Occlusion units (lists of 0-based line indices) over read, non-blank lines; and the window size used."""
    candidates = [i for i, (line, r) in enumerate(zip(lines, read)) if r and line.strip()]
    window = max(1, math.ceil(len(candidates) / max_units)) if max_units > 0 else 1
    return [candidates[s:s + window] for s in range(0, len(candidates), window)], window


def _ranges(indices: list[int]) -> list[list[int]]:
    """[[first, last], ...] 1-based, from sorted 0-based indices."""
    out: list[list[int]] = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i + 1, i + 1])
    return out


def _shown(line: str) -> str:
    line = line.rstrip("\r")
    return safe_display(line if len(line) <= TEXT_CHARS else line[:TEXT_CHARS - 1] + "…")


def explain_text(text: str, lang: str, scorer: Scorer, threshold: float, location: str = "",
                 max_units: int = DEFAULT_MAX_UNITS) -> Explanation:
    """Score `text` and every occluded variant in one batched call; contributions sorted highest first."""
    lines = text.split("\n")
    read = scorer.read_mask(text, lang)
    groups, window = units(lines, read, max_units)
    variants = [text] + [without(lines, set(g)) for g in groups]
    scores = scorer.score(variants, [lang] * len(variants))
    base = float(scores[0])
    attributed = [LineScore(g[0] + 1, g[-1] + 1, base - float(s), _shown(next(lines[i] for i in g if lines[i].strip())))
                  for g, s in zip(groups, scores[1:])]
    attributed.sort(key=lambda u: (-u.contribution, u.line))
    return Explanation(location, lang, base, "malicious" if base >= threshold else "benign", attributed,
                       _ranges([i for i, r in enumerate(read) if not r]), window)


def explain_paths(paths: Sequence[str], scorer: Scorer, limits, threshold: float,
                  max_units: int = DEFAULT_MAX_UNITS) -> Iterator[Explanation]:
    """Explanations in input order, read exactly as predict reads (files, folders, tables, zips, `-` for stdin);
    an unreadable input becomes an error entry and the rest go on."""
    from .predict import _inputs
    from pipeline.inputs.readers import Reject

    for item in _inputs(paths, limits):
        if isinstance(item, Reject):
            yield Explanation(item.location, "", None, None, error=f"{item.reason}: {item.detail}")
        else:
            yield explain_text(item.text, item.lang, scorer, threshold, item.source, max_units)


# ---- faithfulness ---------------------------------------------------------------------------------------------


def faithfulness(texts: Sequence[str], langs: Sequence[str], scorer: Scorer, ks: Sequence[int] = (1, 3, 5),
                 seed: int = 0) -> list[dict]:
    """Mean drop in P(malicious) when each script's top-k lines are removed, beside removing k random read lines.

    Line-level occlusion (windows off) so top-k are k lines. A script counts for k only if it has more than k
    attributable lines (removing all of them says nothing about ranking). Random lines are drawn with a fixed seed.
    """
    rng = random.Random(seed)
    rows = {k: {"k": k, "n": 0, "top_drop": 0.0, "random_drop": 0.0} for k in ks}
    for text, lang in zip(texts, langs, strict=True):
        lines = text.split("\n")
        e = explain_text(text, lang, scorer, 0.5, max_units=0)
        candidates = [u.line - 1 for u in e.lines]
        variants, which = [], []
        for k in ks:
            if len(candidates) <= k:
                continue
            variants += [without(lines, set(candidates[:k])), without(lines, set(rng.sample(candidates, k)))]
            which.append(k)
        if not variants:
            continue
        scores = scorer.score(variants, [lang] * len(variants))
        for j, k in enumerate(which):
            rows[k]["n"] += 1
            rows[k]["top_drop"] += e.score - float(scores[2 * j])
            rows[k]["random_drop"] += e.score - float(scores[2 * j + 1])
    for row in rows.values():
        if row["n"]:
            row["top_drop"] /= row["n"]
            row["random_drop"] /= row["n"]
        else:
            row["top_drop"] = row["random_drop"] = None
    return list(rows.values())
