"""Label-preserving, language-aware augmentation transforms for script text.

The augment stage applies these to the TRAIN split only and to BOTH classes with the same probability: a transform
applied to one class alone becomes a shortcut the model learns instead of behaviour (the project this grew from
obfuscated only malicious samples and learned "obfuscated = malicious").

Every transform is `(text, lang, rng) -> text`. It is deterministic for a given rng state, returns the text unchanged
when it does not apply or cannot be applied safely, and never raises on arbitrary text. Python is read with
`ast.parse` and `tokenize` only, and a Python script that parses still parses afterwards (layout-only transforms
even keep the same AST). The other languages are read with small regular-expression lexers that find strings,
comments and here-documents, so edits land only in code. Nothing here executes, compiles or imports sample text.

Modules: `lexing` (spans of code, strings and comments; safe-edit helpers), `python_source` (ast/tokenize
helpers and the parse guard), one module per kind of transform (`renaming`, `layout`, `strings`, `wrappers`), and
this file: the registry and `augment_text`.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

from ..languages import normalise_lang
from .layout import case_change, comments, whitespace
from .renaming import rename_identifiers
from .strings import string_split
from .wrappers import base64_wrap, hex_wrap

__all__ = ["Transform", "TRANSFORMS", "DEFAULT_TRANSFORMS", "OBFUSCATING", "augment_text", "rename_identifiers",
           "whitespace", "comments", "case_change", "string_split", "base64_wrap", "hex_wrap"]

Transform = Callable[[str, str, random.Random], str]

TRANSFORMS: dict[str, Transform] = {
    "rename_identifiers": rename_identifiers,
    "whitespace": whitespace,
    "comments": comments,
    "case_change": case_change,
    "string_split": string_split,
    "base64_wrap": base64_wrap,
    "hex_wrap": hex_wrap,
}
DEFAULT_TRANSFORMS = ("rename_identifiers", "whitespace", "comments", "case_change", "string_split")
OBFUSCATING = ("base64_wrap", "hex_wrap")


def augment_text(text: str, lang: str, transforms: Sequence[str], rng: random.Random,
                 p: float) -> tuple[str, list[str]]:
    """Apply each named transform with probability p, in order. Returns the text and the transforms that changed it."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augment probability p={p} must lie in [0, 1] (data.augment.probability)")
    unknown = [name for name in transforms if name not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}; choose from {sorted(TRANSFORMS)}")
    lang = normalise_lang(lang)
    applied = []
    for name in transforms:
        if rng.random() < p:
            new = TRANSFORMS[name](text, lang, rng)
            if new != text:
                applied.append(name)
                text = new
    return text, applied
