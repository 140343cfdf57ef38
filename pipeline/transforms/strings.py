"""string_split: cut a few plain one-line string literals into a concatenation with the same value, only where the
language and the literal's context guarantee the concatenation is still a plain string."""
from __future__ import annotations

import random
import re
import tokenize

from .lexing import _Lexed, _Span, _apply_edits, _next_char, _prev_char
from .python_source import _FSTRING_TOKENS, _PySource, _py_guard

_PY_UNITS = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|[0-7]{1,3}|\r\n|.)|.", re.S)
_JS_UNITS = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|[0-7]{1,3}|\r\n|.)|.", re.S)
_DOUBLED_UNITS = {"'": re.compile(r"''|.", re.S), '"': re.compile(r'""|.', re.S)}  # PowerShell/VBScript escapes
_ANY_UNIT = re.compile(r".", re.S)
_MIN_UNITS = 4  # shorter literals ("," "\n") are left whole
_MAX_SPLITS = 3
_JOIN = {"python": "({0} + {1})", "javascript": "({0} + {1})", "powershell": "({0} + {1})",
         "vbscript": "({0} & {1})", "bash": "{0}{1}"}  # parentheses keep `"ab".join(x)` and `"%s" % x` meaning


def _cut(body: str, units: re.Pattern, rng: random.Random) -> tuple[str, str] | None:
    parts = units.findall(body)
    if len(parts) < _MIN_UNITS:
        return None
    k = rng.randint(1, len(parts) - 1)  # never inside an escape sequence: cuts fall between whole units
    return "".join(parts[:k]), "".join(parts[k:])


def _python_string_candidates(src: _PySource) -> list[tuple[int, int, str, str, str]]:
    """(start, end, prefix, quote, body) of plain one-line literals outside docstrings, imports and f-strings."""
    sig = [t for t in src.toks if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    out, first, fdepth = [], None, 0
    for k, t in enumerate(sig):
        fdepth += {"FSTRING_START": 1, "FSTRING_END": -1}.get(tokenize.tok_name[t.type], 0)
        if first is None:
            first = t
        if t.type == tokenize.NEWLINE:
            first = None
            continue
        if t.type != tokenize.STRING or fdepth:
            continue
        prev, nxt = (sig[k - 1] if k else None), (sig[k + 1] if k + 1 < len(sig) else None)
        m = re.match(r"([A-Za-z]*)(['\"])", t.string)
        if (m is None or m[1].lower() not in ("", "u", "b") or t.string[len(m[1]):len(m[1]) + 3] == m[2] * 3
                or "\n" in t.string or first.string in ("import", "from", "case")
                or (first is t and nxt is not None and nxt.type == tokenize.NEWLINE)  # docstring / bare string
                or any(x is not None and (x.type == tokenize.STRING or x.type in _FSTRING_TOKENS)
                       for x in (prev, nxt))):  # implicit concatenation "a" "b"
            continue
        out.append((src.offset(t.start), src.offset(t.end), m[1], m[2], t.string[len(m[1]) + 1:-1]))
    return out


def _split_python(text: str, rng: random.Random) -> str:
    src = _PySource.read(text)
    if src is None:
        return text
    cands = _python_string_candidates(src)
    edits = []
    for start, end, prefix, q, body in rng.sample(cands, min(len(cands), rng.randint(1, _MAX_SPLITS))):
        if (cut := _cut(body, _PY_UNITS, rng)) is not None:
            edits.append((start, end, _JOIN["python"].format(*(f"{prefix}{q}{part}{q}" for part in cut))))
    return _py_guard(text, _apply_edits(text, edits), same_meaning=False)


_JS_NO_EXPR_BEFORE = re.compile(r"(?:\bimport|\bfrom|\brequire\s*\(|\bexport)\s*\Z")
_PS_ATTRIBUTE_OPEN = re.compile(r"\[\s*[A-Za-z][\w.]*\s*\([^)]*\Z")  # [Parameter(HelpMessage="...")]: constants only
_PS_USING = re.compile(r"\s*using\b", re.I)
_VBS_CONST = re.compile(r"\s*(?:(?:Private|Public)\s+)?Const\b", re.I)
_LOOKBACK = 200  # context checks look this far back on the line: minified one-line scripts stay linear


def _split_rule(lang: str, text: str, code: str, s: _Span, q: str, body: str) -> re.Pattern | None:
    """The unit pattern for cutting this literal, or None where a concatenation would not be a plain string."""
    line_start = text.rfind("\n", 0, s.start) + 1
    near = max(line_start, s.start - _LOOKBACK)
    if lang == "javascript":
        prev = _prev_char(code, s.start)
        if prev == "\n":  # first on its line: a line starting with "(" can join the previous statement (no ASI)
            prev = _prev_char(code, s.start, " \t\r\n")
            if prev not in tuple(",([+=:?&|"):
                return None
        if prev in ("", "{", ";", "}") or _next_char(code, s.end) == ":":  # directives, statements, object keys
            return None
        return None if _JS_NO_EXPR_BEFORE.search(code, near, s.start) else _JS_UNITS
    if lang == "powershell":
        if q == '"' and ("$" in body or "`" in body):  # interpolation or escapes
            return None
        if (_next_char(code, s.end) in ("{", "=") or _PS_USING.match(text, line_start, s.start)
                or _PS_ATTRIBUTE_OPEN.search(code, near, s.start) or text[s.start - 1:s.start].isalnum()):
            return None
        return _DOUBLED_UNITS[q]
    if lang == "vbscript":
        if _VBS_CONST.match(text, line_start, s.start):
            return None
        return None if text[s.start - 1:s.start].isalnum() else _DOUBLED_UNITS[q]
    if lang == "bash":
        return None if q == '"' and re.search(r"[$`\\!]", body) else _ANY_UNIT
    return None


def _split_generic(text: str, lang: str, rng: random.Random) -> str:
    lx = _Lexed(text, lang)
    code = lx.masked()
    cands = []
    for s in lx.spans:
        lit = text[s.start:s.end]
        if s.kind in ("str", "istr") and len(lit) >= 2 and lit[0] in "'\"" and lit[-1] == lit[0] and "\n" not in lit:
            units = _split_rule(lang, text, code, s, lit[0], lit[1:-1])
            if units is not None:
                cands.append((s, lit[0], units))
    edits = []
    for s, q, units in rng.sample(cands, min(len(cands), rng.randint(1, _MAX_SPLITS))):
        if (cut := _cut(text[s.start + 1:s.end - 1], units, rng)) is not None:
            edits.append((s.start, s.end, _JOIN[lang].format(*(q + part + q for part in cut))))
    return _apply_edits(text, edits)


def string_split(text: str, lang: str, rng: random.Random) -> str:
    """Split a few plain one-line string literals into a concatenation with the same value ("abc" + "def")."""
    if lang == "python":
        return _split_python(text, rng)
    return _split_generic(text, lang, rng) if lang in _JOIN else text
