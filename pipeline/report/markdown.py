"""Render a report's blocks as markdown. Every string that can come from the data is shown literally: backslash
escapes outside code blocks and, inside them, a fence longer than any backtick run in the text."""
from __future__ import annotations

import re

from .blocks import Alarm, Block, Code, Heading, Highlight, Image, Para, Table

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")


def md_text(value) -> str:
    """One line of markdown showing `value` literally: no NULs, no line breaks, every active character escaped."""
    text = re.sub(r"[\r\n]+", " ", str(value).replace("\x00", ""))  # a newline would end a table row or open a block
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text: str) -> str:
    """A fenced code block that `text` cannot close: the fence is longer than any backtick run in it."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    if not text.endswith("\n"):
        text += "\n"
    return f"{fence}\n{text}{fence}"


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        match b:
            case Heading():
                out.append("#" * b.level + " " + md_text(b.text))
            case Para():
                out.append(md_text(b.text))
            case Alarm():
                out.append("> **ALARM:** " + md_text(b.text))
            case Table():
                out.append(md_table(b.header, b.rows))
            case Code():
                out.append(md_code(b.text))
            case Highlight():
                out.append(md_code(gutter(b)))
            case Image():
                out.append(f"![{md_text(b.caption)}]({b.file})")  # our own file names: nothing to escape
    return "\n\n".join(out) + "\n"


def gutter(b: Highlight) -> str:
    """The excerpt with a line-number gutter; marked lines carry '>>' and their contribution (markdown view)."""
    width = len(str(b.text.count("\n") + 1))
    rows = []
    for n, line in enumerate(b.text.split("\n"), 1):
        mark = f">> {b.marks[n]:+.3f}" if n in b.marks else ""
        rows.append(f"{mark:>10} {n:>{width}} | {line}")
    return "\n".join(rows)
