"""Small regular-expression lexers that split non-Python script text into code, comments, strings and here-documents,
and the helpers that edit text only where the lexer says it is safe (edits, inserted lines, line endings)."""
from __future__ import annotations

import bisect
import re
from typing import Iterable, NamedTuple


class _Span(NamedTuple):
    kind: str  # code | comment | str (literal) | istr (expands variables) | heredoc | iheredoc (bash bodies)
    start: int
    end: int


_LEXER_RULES = {
    "powershell": (
        ("comment", r"<#.*?#>|(?<![^\s;(){}|&])#[^\n]*"),
        ("str", r"@'[ \t]*\r?\n.*?\n'@|'(?:[^']|'')*'"),
        ("istr", r'@"[ \t]*\r?\n.*?\n"@|"(?:[^"`]|`.|"")*"'),
    ),
    "javascript": (
        ("comment", r"//[^\n]*|/\*.*?\*/"),
        # A '/' after an operator or opening bracket starts a regex literal (kept whole, never split or renamed).
        ("str", r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
                r"|(?<=[(,=:\[!&|?{};+\-*%<>~^])[ \t]*/(?![*/])(?:[^/\\\n\[]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[A-Za-z]*"),
        ("istr", r"`(?:[^`\\]|\\.)*`"),
    ),
    "vbscript": (
        ("comment", r"'[^\n]*|(?<![^\s:])(?i:rem)(?!\w)[^\n]*"),
        ("str", r'"(?:[^"\n]|"")*"'),
    ),
    "batch": (
        ("comment", r"^[ \t]*@?(?i:rem)(?:[^\S\n][^\n]*)?$|^[ \t]*::[^\n]*"),
        ("istr", r'"[^"\n]*"'),  # cmd expands %VAR% inside quotes too
    ),
}
_LEXERS = {lang: re.compile("|".join(f"(?P<{kind}>{rx})" for kind, rx in rules), re.S | re.M)
           for lang, rules in _LEXER_RULES.items()}

_BASH_TOKEN = re.compile(
    r"(?P<comment>(?<![^\s;&|()])#[^\n]*)"
    r"|(?P<heredoc>(?<!<)<<(?!<)-?[ \t]*(?P<hq>['\"\\]?)(?P<delim>[A-Za-z_][\w.-]*)['\"]?)"
    r"|(?P<str>\$'(?:[^'\\]|\\.)*'|'[^']*')"
    r"|(?P<istr>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<esc>\\.)"
    r"|(?P<nl>\n)", re.S)

_CONTINUATION = {"bash": "\\", "powershell": "`", "batch": "^", "vbscript": "_"}  # a line ending so goes on


def _lex(text: str, lang: str) -> list[_Span]:
    """Split `text` into consecutive spans of code, comments and string literals."""
    if lang == "bash":
        return _lex_bash(text)
    spans, pos = [], 0
    pattern = _LEXERS.get(lang)
    for m in pattern.finditer(text) if pattern else ():
        start = m.start() + len(m[0]) - len(m[0].lstrip(" \t"))  # leading blanks stay code
        if start > pos:
            spans.append(_Span("code", pos, start))
        spans.append(_Span(m.lastgroup, start, m.end()))
        pos = m.end()
    if pos < len(text):
        spans.append(_Span("code", pos, len(text)))
    return spans


def _lex_bash(text: str) -> list[_Span]:
    """Bash needs a loop, not one regex: a here-document body starts at the end of the line that announced it."""
    spans: list[_Span] = []
    pos = i = 0
    pending: list[tuple[str, bool, bool]] = []  # (delimiter, quoted, strip leading tabs) awaiting their body
    while (m := _BASH_TOKEN.search(text, i)) is not None:
        kind, i = m.lastgroup, m.end()
        if kind == "heredoc":
            pending.append((m["delim"], bool(m["hq"]), m[0].startswith("<<-")))
        elif kind == "nl" and pending:
            for delim, quoted, strip_tabs in pending:
                end = _heredoc_end(text, i, delim, strip_tabs)
                if i > pos:
                    spans.append(_Span("code", pos, i))
                if end > i:
                    spans.append(_Span("heredoc" if quoted else "iheredoc", i, end))
                pos = i = end
            pending = []
        elif kind in ("comment", "str", "istr"):
            if m.start() > pos:
                spans.append(_Span("code", pos, m.start()))
            spans.append(_Span(kind, m.start(), m.end()))
            pos = m.end()
    if pos < len(text):
        spans.append(_Span("code", pos, len(text)))
    return spans


def _heredoc_end(text: str, i: int, delim: str, strip_tabs: bool) -> int:
    """Offset just past the terminator line of a here-document body starting at `i` (end of text if none)."""
    while i < len(text):
        nl = text.find("\n", i)
        end = len(text) if nl < 0 else nl
        line = text[i:end].rstrip("\r")
        if (line.lstrip("\t") if strip_tabs else line) == delim:
            return end
        i = end + 1
    return len(text)


class _Lexed:
    """A text with its spans, answering 'what kind of text is at offset i' by binary search."""

    def __init__(self, text: str, lang: str):
        self.text, self.lang = text, lang
        self.spans = _lex(text, lang)
        self._starts = [s.start for s in self.spans]

    def kind_at(self, i: int) -> str:
        if i >= len(self.text) or not self.spans:
            return "code"
        return self.spans[bisect.bisect_right(self._starts, i) - 1].kind

    def masked(self, keep: Iterable[str] = ("code",)) -> str:
        """The text with every span not in `keep` blanked to NULs (newlines kept): regexes then see only code."""
        keep = set(keep)
        return "".join(self.text[s.start:s.end] if s.kind in keep else re.sub(r"[^\n]", "\0", self.text[s.start:s.end])
                       for s in self.spans)

    def line_starts_in_code(self) -> list[int]:
        """Offsets of lines that begin in code (not inside a multi-line string, comment or here-document)."""
        starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        return [j for j in starts if j < len(self.text) and self.kind_at(j) == "code"
                and (j == 0 or self.kind_at(j - 1) == "code")]

    def insertion_points(self) -> list[int]:
        """Offsets where a whole new line may begin without changing what the code does: after a newline in code
        that ends no continuation line and opens no here-document, or at the end of an unterminated last line."""
        cont, text = _CONTINUATION.get(self.lang), self.text
        ends = [m.start() for m in re.finditer("\n", text)] + ([len(text)] if text and text[-1] != "\n" else [])
        out = []
        for i in ends:
            if i < len(text) and (self.kind_at(i) != "code" or self.kind_at(i + 1) in ("heredoc", "iheredoc")):
                continue
            if i == len(text) and self.kind_at(i - 1) in ("heredoc", "iheredoc"):  # a body running to the end
                continue
            if cont and text[text.rfind("\n", 0, i) + 1:i].rstrip().endswith(cont):
                continue
            out.append(min(i + 1, len(text)))
        return out


def _new_line(text: str, at: int, content: str) -> tuple[int, int, str]:
    """The edit inserting `content` as a line of its own at an insertion point."""
    if at == len(text) and text and text[-1] != "\n":  # after an unterminated last line: one-liners too
        return at, at, _eol(text) + content
    return at, at, content + _eol(text)


def _apply_edits(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """Replace text[start:end] by each replacement; edits must not overlap (later overlapping ones are dropped)."""
    out, pos = [], 0
    for start, end, repl in sorted(edits):
        if start < pos:
            continue
        out += [text[pos:start], repl]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _eol(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _prev_char(s: str, i: int, blanks: str = " \t\r") -> str:
    """The nearest character before offset i that is not in `blanks` (a newline counts by default); '' at the start."""
    while i > 0 and s[i - 1] in blanks:
        i -= 1
    return s[i - 1] if i > 0 else ""


def _next_char(s: str, i: int) -> str:
    while i < len(s) and s[i] in " \t\r":
        i += 1
    return s[i] if i < len(s) else ""


def _leading(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]
