"""The report's document model and its figure formatting.

A report is a list of blocks (heading, paragraph, table, code, image, alarm, highlighted excerpt); markdown.py and
html.py render the same list, so both documents say the same thing. The formatters turn figures into the strings
both renderings show.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list]


@dataclass
class Code:
    text: str


@dataclass
class Image:
    file: str
    caption: str


@dataclass
class Alarm:
    text: str


@dataclass
class Highlight:
    """A code excerpt whose explained lines are marked: 1-based line -> contribution to P(malicious)."""
    text: str
    marks: dict[int, float]


Block = Heading | Para | Table | Code | Image | Alarm | Highlight


# ------------------------------------------------------------------------------------------------- formatting
def num(value) -> str:
    """A metric: three decimals, n/a when undefined."""
    return "n/a" if value is None else (str(value) if isinstance(value, int) else f"{value:.3f}")


def val(value) -> str:
    """Any other figure: ints as they are, floats to 4 significant digits, dicts as 'key n, key n'."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {val(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(val(v) for v in value) or "none"
    return str(value)


def ci(interval) -> str:
    if not interval or interval[0] is None:
        return ""
    return f"{interval[0]:.3f} to {interval[1]:.3f}"


def dig(d, *keys):
    """d[k1][k2]... or None when any level is missing (hand-made or older manifests lack some counts)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d
