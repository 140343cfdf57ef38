"""The prompt: one template and one token-aware truncation, used by training, evaluation and prediction alike.

A script becomes

    <script lang={lang}>
    {script}
    </script>
    Verdict:

and the model's next token after "Verdict:" is the verdict: " benign" or " malicious" (only the first token of each
word matters, so the two must differ; `label_token_ids` checks it). Prompt ids are built by concatenating three
separately tokenised parts (prefix, script, suffix), so the script can be truncated by tokens without re-tokenising and
the suffix, which carries the verdict position, is never cut. Everything that needs prompt ids calls `encode`, so a
script gets the same ids in every stage.

Whole scripts (`Windows`, model.window_stride > 0): instead of losing its middle, a script longer than the budget is
read as overlapping windows of the budget (each its own prompt, no marker), and its score aggregates the windows'
log-odds (`score_scripts`). Training reads one window per row, drawn with a seeded generator from the windows scoring
reads (`build_training_rows`), so train, evaluate and predict (PyTorch and ONNX) read scripts the same way.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from pipeline.languages import LANGS, UNKNOWN
from pipeline.run.records import LABELS

PREFIX = "<script lang={lang}>\n"
SUFFIX = "\n</script>\nVerdict:"
MARKER = "\n...\n"  # stands in for the middle of a script cut to fit
LABEL_WORDS = (" benign", " malicious")  # index = class: LABELS[i] -> LABEL_WORDS[i]


def _ids(tokenizer, text: str) -> list[int]:
    # split_special_tokens: a script that contains "<|endoftext|>" or "<pad>" literally gets them as plain text, never
    # as control tokens. verbose=False: long scripts are expected here, they are cut below.
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]


def label_token_ids(tokenizer) -> tuple[int, int]:
    """(benign_id, malicious_id): the first token of each label word. Raises if the two coincide."""
    benign, malicious = (_ids(tokenizer, word)[0] for word in LABEL_WORDS)
    if benign == malicious:
        raise ValueError(
            f"the tokenizer splits the label words {LABEL_WORDS} so that both start with the same token "
            f"({tokenizer.convert_ids_to_tokens(benign)!r}): the verdict would be ambiguous. For the tiny model, train "
            "its tokenizer on `tokenizer_corpus(texts)` so the label words are merged; for a pretrained tokenizer, "
            "change LABEL_WORDS in pipeline/model/prompt.py."
        )
    return benign, malicious


@dataclass(frozen=True)
class Windows:
    """How a script longer than the budget is read: stride 0 = head and tail (`encode`); stride > 0 = windows of the
    budget starting every `stride` tokens, the last ending at the script's end, at most `max_windows` of them (spread
    evenly, first and last kept), scored as the `aggregation` (mean | max) of their log-odds."""
    stride: int = 0
    aggregation: str = "mean"
    max_windows: int = 8

    @property
    def on(self) -> bool:
        return self.stride > 0

    def spec(self) -> dict:
        """What the classifier's scoring spec (and an export's prompt file, an ONNX sidecar) records."""
        return {"window_stride": self.stride, "window_aggregation": self.aggregation, "max_windows": self.max_windows}

    @classmethod
    def from_spec(cls, spec: dict) -> "Windows":
        """From a recorded spec; one written before windows existed reads as off."""
        return cls(int(spec.get("window_stride", 0)), str(spec.get("window_aggregation", "mean")),
                   int(spec.get("max_windows", 8)))


def window_starts(n_tokens: int, budget: int, windows: Windows) -> list[int]:
    """Token offsets of the windows read from a script of `n_tokens` (one window, at 0, when it fits)."""
    if not windows.on or n_tokens <= budget:
        return [0]
    stride = min(windows.stride, budget)  # never a gap between windows
    starts = list(range(0, n_tokens - budget, stride)) + [n_tokens - budget]
    if len(starts) > windows.max_windows:
        last = len(starts) - 1
        picked = sorted({round(i * last / max(windows.max_windows - 1, 1)) for i in range(windows.max_windows)})
        starts = [starts[i] for i in picked]
    return starts


def encode_windows(text: str, lang: str, tokenizer, max_length: int, head_ratio: float = 0.75,
                   windows: Windows = Windows()) -> list[list[int]]:
    """The prompts a script is read as: [encode(...)] with windows off or when it fits; else one per window."""
    if not windows.on:
        return [encode(text, lang, tokenizer, max_length, head_ratio)]
    prefix, suffix = _ids(tokenizer, PREFIX.format(lang=lang)), _ids(tokenizer, SUFFIX)
    script = _ids(tokenizer, text)
    budget = _budget(prefix, suffix, max_length, lang)
    return [prefix + script[s:s + budget] + suffix for s in window_starts(len(script), budget, windows)]


def score_scripts(texts: Sequence[str], langs: Sequence[str], tokenizer, max_length: int, head_ratio: float,
                  windows: Windows, score_prompts: Callable[[list[list[int]]], Sequence[float]]) -> list[float]:
    """P(malicious) per script from `score_prompts` (prompt ids -> P(malicious) per prompt, batched by the caller's
    backend): one prompt per script with windows off, else every window, aggregated by `aggregate`."""
    per_script = [encode_windows(t, lang, tokenizer, max_length, head_ratio, windows)
                  for t, lang in zip(texts, langs, strict=True)]
    flat = [p for prompts in per_script for p in prompts]
    probs, out, at = list(score_prompts(flat)), [], 0
    for prompts in per_script:
        out.append(aggregate(probs[at:at + len(prompts)], windows.aggregation))
        at += len(prompts)
    return out


def aggregate(probs: Sequence[float], how: str) -> float:
    """One script's P(malicious) from its windows': the mean or max of their log-odds. One window: its own score."""
    if len(probs) == 1:
        return float(probs[0])
    eps = 1e-7
    logits = [math.log(min(max(p, eps), 1 - eps) / (1 - min(max(p, eps), 1 - eps))) for p in probs]
    z = max(logits) if how == "max" else sum(logits) / len(logits)
    return 1.0 / (1.0 + math.exp(-z))


def _budget(prefix: list[int], suffix: list[int], max_length: int, lang: str) -> int:
    """Script tokens that fit beside the template and the verdict token."""
    budget = max_length - len(prefix) - len(suffix) - 1  # 1: the verdict token
    if budget < 2:
        raise ValueError(f"max_length={max_length} leaves {budget} tokens for the script after the template "
                         f"({len(prefix) + len(suffix)} tokens for lang={lang!r}) and the verdict: raise "
                         "model.max_length")
    return budget


def encode(text: str, lang: str, tokenizer, max_length: int, head_ratio: float = 0.75) -> list[int]:
    """The prompt ids for one script, at most `max_length - 1` long (one position is left for the verdict token).

    A script too long for the budget keeps its first `head_ratio` and its last `1 - head_ratio` tokens, joined by
    MARKER: droppers often put the payload at the end and the decoder stub at the start.
    """
    prefix, suffix = _ids(tokenizer, PREFIX.format(lang=lang)), _ids(tokenizer, SUFFIX)
    script = _ids(tokenizer, text)  # tokenised once, cut by tokens
    return _fit(prefix, script, suffix, _ids(tokenizer, MARKER), max_length, head_ratio, lang)


def _fit(prefix: list[int], script: list[int], suffix: list[int], marker: list[int], max_length: int,
         head_ratio: float, lang: str) -> list[int]:
    """prefix + script + suffix, the script cut to its head and tail (joined by marker) to fit max_length - 1."""
    if not 0.0 <= head_ratio <= 1.0:
        raise ValueError(f"head_ratio must be in [0, 1], got {head_ratio}")
    if len(script) > max_length - len(prefix) - len(suffix) - 1:  # 1: the verdict token
        keep = _budget(prefix, marker + suffix, max_length, lang)  # the marker takes its share of the budget
        head = round(keep * head_ratio)
        script = script[:head] + marker + script[len(script) - (keep - head):]
    return prefix + script + suffix


def build_training_row(text: str, lang: str, label: str, tokenizer, max_length: int, head_ratio: float = 0.75) -> dict:
    """One pre-tokenised training row: prompt ids + the verdict token, loss (completion_mask 1) on the verdict only.

    TRL's SFTTrainer keeps a dataset with an `input_ids` column as it is (no tokenisation of its own) and turns
    `completion_mask` into labels, so these ids are exactly the ones `encode` gives at prediction time. No EOS is
    appended: the model never generates, and an EOS would only cost a position. Rows are at most `max_length` long, so
    TRL's own truncation never cuts (and never silently drops) one.
    """
    verdict = label_token_ids(tokenizer)[LABELS.index(label)]
    prompt = encode(text, lang, tokenizer, max_length, head_ratio)
    return {"input_ids": prompt + [verdict], "completion_mask": [0] * len(prompt) + [1]}


def build_training_rows(texts: Sequence[str], langs: Sequence[str], labels: Sequence[str], tokenizer, max_length: int,
                        head_ratio: float = 0.75, windows: Windows = Windows(), seed: int = 0) -> list[dict]:
    """`build_training_row` for many scripts, the same rows: the scripts are tokenised in one batched call (the fast
    tokenizer's Rust side, in parallel) and the template and label ids once, instead of five calls per script.

    With windows on, a script longer than the budget gives one row: one of the windows scoring reads, drawn by a
    generator seeded with `seed` (so a repeated row, e.g. from oversampling, may read another window)."""
    verdicts = label_token_ids(tokenizer)
    scripts = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
    suffix, marker, prefixes = _ids(tokenizer, SUFFIX), _ids(tokenizer, MARKER), {}
    rng, rows = random.Random(seed), []
    for script, lang, label in zip(scripts, langs, labels, strict=True):
        if lang not in prefixes:
            prefixes[lang] = _ids(tokenizer, PREFIX.format(lang=lang))
        if windows.on:
            budget = _budget(prefixes[lang], suffix, max_length, lang)
            start = rng.choice(window_starts(len(script), budget, windows))
            ids = prefixes[lang] + script[start:start + budget] + suffix
        else:
            ids = _fit(prefixes[lang], script, suffix, marker, max_length, head_ratio, lang)
        rows.append({"input_ids": ids + [verdicts[LABELS.index(label)]], "completion_mask": [0] * len(ids) + [1]})
    return rows


class ScriptSpans:
    """Where the script sits in a prompt row: after its language's prefix, before the suffix (a truncation marker or a
    window counts as script). Built once per tokenizer from the template's own ids, so callers that only hold collated
    rows (the trainer's token dropout) touch script tokens and never the template or the verdict."""

    def __init__(self, tokenizer, langs: Iterable[str] = (*LANGS, UNKNOWN)):
        # longest first: a prefix that starts another one's ids must not win
        self.prefixes = sorted({tuple(_ids(tokenizer, PREFIX.format(lang=lang))) for lang in langs},
                               key=len, reverse=True)
        self.suffix_length = len(_ids(tokenizer, SUFFIX))

    def span(self, row: Sequence[int], last_prompt: int) -> tuple[int, int]:
        """(start, end) of the script's ids in `row`, whose last prompt token (the one the verdict is read at) sits at
        `last_prompt`."""
        for prefix in self.prefixes:
            if tuple(row[:len(prefix)]) == prefix:
                return len(prefix), last_prompt + 1 - self.suffix_length
        raise ValueError("a row does not start with the prompt template of a known language: build rows with "
                         "pipeline.model.prompt.build_training_rows")


def tokenizer_corpus(texts: Iterable[str]) -> Iterator[str]:
    """The texts wrapped in the template with a label word, for training a tokenizer from scratch (the tiny model).

    A tokenizer trained on raw scripts may split " benign" and " malicious" down to a shared first byte (" "); trained
    on what the model actually reads, it merges the template and the label words. Labels alternate: only their counts
    matter to BPE.
    """
    for i, text in enumerate(texts):
        yield PREFIX.format(lang="unknown") + text + SUFFIX + LABEL_WORDS[i % 2]
