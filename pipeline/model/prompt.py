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
"""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence

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
    budget = max_length - len(prefix) - len(suffix) - 1  # 1: the verdict token
    if len(script) > budget:
        keep = budget - len(marker)
        if keep < 2:
            raise ValueError(
                f"max_length={max_length} leaves {budget} tokens for the script after the template "
                f"({len(prefix) + len(suffix)} tokens for lang={lang!r}) and the verdict: raise model.max_length"
            )
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
                        head_ratio: float = 0.75) -> list[dict]:
    """`build_training_row` for many scripts, the same rows: the scripts are tokenised in one batched call (the fast
    tokenizer's Rust side, in parallel) and the template and label ids once, instead of five calls per script."""
    verdicts = label_token_ids(tokenizer)
    scripts = tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
    suffix, marker, prefixes = _ids(tokenizer, SUFFIX), _ids(tokenizer, MARKER), {}
    rows = []
    for script, lang, label in zip(scripts, langs, labels, strict=True):
        if lang not in prefixes:
            prefixes[lang] = _ids(tokenizer, PREFIX.format(lang=lang))
        ids = _fit(prefixes[lang], script, suffix, marker, max_length, head_ratio, lang)
        rows.append({"input_ids": ids + [verdicts[LABELS.index(label)]], "completion_mask": [0] * len(ids) + [1]})
    return rows


def tokenizer_corpus(texts: Iterable[str]) -> Iterator[str]:
    """The texts wrapped in the template with a label word, for training a tokenizer from scratch (the tiny model).

    A tokenizer trained on raw scripts may split " benign" and " malicious" down to a shared first byte (" "); trained
    on what the model actually reads, it merges the template and the label words. Labels alternate: only their counts
    matter to BPE.
    """
    for i, text in enumerate(texts):
        yield PREFIX.format(lang="unknown") + text + SUFFIX + LABEL_WORDS[i % 2]
