"""Python read with `ast.parse` and `tokenize` only: tokens, line/offset bookkeeping, and the guard that keeps a
transformed script exactly as valid as the original. Nothing is compiled or run."""
from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings

_FSTRING_TOKENS = frozenset(getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                            if hasattr(tokenize, n))  # Python >= 3.12 splits f-strings into tokens
_LAYOUT_TOKENS = frozenset({tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE,
                            tokenize.ENDMARKER})


def _parse_python(text: str) -> ast.Module | None:
    """The AST, or None if the text is not (our) Python. Parsing builds a tree only: nothing is compiled or run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences warn; samples are full of them
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None


def _py_tokens(text: str) -> list[tokenize.TokenInfo] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError):
        return None


def _same_ast(a: ast.AST, b: ast.AST) -> bool:
    try:
        return ast.dump(a) == ast.dump(b)
    except RecursionError:  # very deep trees (long `+` chains): cannot prove equality, so refuse the change
        return False


def _py_guard(old: str, new: str, same_meaning: bool) -> str:
    """`new` if it is as valid as `old` (parses when `old` parses; with `same_meaning`, to the same AST), else `old`.

    Text that does not parse (often Python 2) only has to keep tokenizing."""
    if new == old:
        return old
    old_tree = _parse_python(old)
    if old_tree is None:
        return new if _py_tokens(new) is not None else old
    new_tree = _parse_python(new)
    if new_tree is None or (same_meaning and not _same_ast(old_tree, new_tree)):
        return old
    return new


class _PySource:
    """Python text as physical lines and tokens, with (row, col) -> offset conversion."""

    def __init__(self, text: str, toks: list[tokenize.TokenInfo]):
        self.text, self.toks = text, toks
        self.lines = io.StringIO(text).readlines()  # the same line split tokenize saw
        self._offsets = [0]
        for line in self.lines:
            self._offsets.append(self._offsets[-1] + len(line))

    @classmethod
    def read(cls, text: str) -> "_PySource | None":
        toks = _py_tokens(text)
        return cls(text, toks) if toks is not None else None

    def offset(self, pos: tuple[int, int]) -> int:
        return self._offsets[pos[0] - 1] + pos[1]

    def line_end_rows(self) -> list[int]:
        """Rows (1-based) that end outside any string or continuation: a new line may follow them."""
        rows = {t.start[0] for t in self.toks if t.type in (tokenize.NEWLINE, tokenize.NL)}
        return sorted(r for r in rows if r <= len(self.lines))

    def header_rows(self) -> int:
        """How many leading rows are a shebang or an encoding declaration (those must stay first)."""
        n = 0
        for row, line in enumerate(self.lines[:2], 1):
            if (row == 1 and line.startswith("#!")) or re.match(r"[ \t\f]*#.*?coding[:=]", line):
                n = row
        return n


def _insert_line(lines: list[str], after_row: int, content: str, eol: str) -> None:
    if after_row and not lines[after_row - 1].endswith("\n"):
        lines[after_row - 1] += eol
    lines.insert(after_row, content + eol)
