"""Label-preserving, language-aware augmentation transforms for script text.

The augment stage applies these to the TRAIN split only and to BOTH classes with the same probability: a transform
applied to one class alone becomes a shortcut the model learns instead of behaviour (the project this grew from
obfuscated only malicious samples and learned "obfuscated = malicious").

Every transform is `(text, lang, rng) -> text`. It is deterministic for a given rng state, returns the text unchanged
when it does not apply or cannot be applied safely, and never raises on arbitrary text. Python is read with
`ast.parse` and `tokenize` only, and a Python script that parses still parses afterwards (layout-only transforms
even keep the same AST). The other languages are read with small regular-expression lexers that find strings,
comments and here-documents, so edits land only in code. Nothing here executes, compiles or imports sample text.
"""
from __future__ import annotations

import ast
import base64
import bisect
import builtins
import io
import keyword
import random
import re
import tokenize
import warnings
from typing import Callable, Iterable, NamedTuple, Sequence

from .languages import normalise_lang

Transform = Callable[[str, str, random.Random], str]

# Neutral vocabulary for new identifiers and comments: words common in benign and malicious scripts alike.
_WORDS = ("amount", "base", "batch", "block", "cache", "chunk", "count", "cursor", "data", "delta", "entry", "field",
          "flag", "frame", "group", "handle", "index", "info", "item", "label", "level", "limit", "line", "mark",
          "mode", "node", "note", "offset", "option", "part", "point", "record", "result", "row", "slot", "span",
          "stage", "state", "step", "store", "tag", "temp", "total", "unit", "value", "width")
_COMMENTS = ("TODO: review this", "helper section", "process the input", "update values", "check the result",
             "main logic", "set up variables", "handle output", "see notes above", "loop over items",
             "configuration", "end of section", "cleanup", "validate data", "initialisation", "utility code",
             "temporary values", "format the message", "keep for compatibility", "note: order matters",
             "added later", "fix later", "simple case", "default behaviour")


# ------------------------------------------------------------------------------------------------------- lexing
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


# ------------------------------------------------------------------------------------------------- python helpers
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


def _leading(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


# --------------------------------------------------------------------------------------------------- new names
class _Namer:
    """Fresh, plausible identifiers that collide with nothing already in the script, nor with each other."""

    def __init__(self, rng: random.Random, taken: Iterable[str], style: str, fold_case: bool = False):
        self.rng, self.style, self.fold = rng, style, fold_case
        self.taken = {t.lower() for t in taken} if fold_case else set(taken)

    def _free(self, name: str) -> bool:
        key = name.lower() if self.fold else name
        if key in self.taken:
            return False
        self.taken.add(key)
        return True

    def __call__(self) -> str:
        for _ in range(20):
            words = [self.rng.choice(_WORDS) for _ in range(self.rng.choice((1, 2)))]
            name = words[0] + ("".join(w.title() for w in words[1:]) if self.style == "camel" else
                               "".join("_" + w for w in words[1:]))
            if self.rng.random() < 0.3:
                name += str(self.rng.randint(1, 99))
            if self._free(name):
                return name
        base, n = self.rng.choice(_WORDS), 100
        while not self._free(f"{base}{n}"):
            n += 1
        return f"{base}{n}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_$][\w$]*", text))


# --------------------------------------------------------------------------------------------- rename: python
_PY_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {"self", "cls"}


def _class_members(cls: ast.ClassDef) -> Iterable[str]:
    """Names bound directly in a class body: attributes reached through `.`, so never renamed."""
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield stmt.name
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
                yield from (n.id for n in ast.walk(target) if isinstance(n, ast.Name))


def _python_renamable(tree: ast.Module) -> list[str]:
    """Names the script binds itself, minus any that could refer to something outside it."""
    bound, banned = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            if isinstance(node, ast.ClassDef):
                banned.update(_class_members(node))
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                banned.update(alias.name.split("."))
                banned.add(alias.asname or "")
        elif isinstance(node, ast.keyword) and node.arg:  # f(name=...) must keep matching the callee's parameter
            banned.add(node.arg)
        elif isinstance(node, ast.MatchClass):
            banned.update(node.kwd_attrs)
        elif isinstance(node, ast.JoinedStr):  # names inside f-strings are not separate tokens before 3.12
            banned.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # getattr(x, "name"), __all__, ...
            banned.add(node.value)
    return sorted(n for n in bound - banned - _PY_KEEP if not (n.startswith("__") and n.endswith("__")))


def _rename_python(text: str, rng: random.Random) -> str:
    tree = _parse_python(text)
    src = _PySource.read(text) if tree is not None else None
    if src is None:
        return text
    names = _python_renamable(tree)
    if not names:
        return text
    fresh = _Namer(rng, _words(text) | _PY_KEEP, "snake")
    mapping = {n: fresh() for n in names}
    edits, prev = [], None
    for tok in src.toks:
        if tok.type == tokenize.NAME and tok.string in mapping and not (prev and prev.string == "."):
            edits.append((src.offset(tok.start), src.offset(tok.end), mapping[tok.string]))
        if tok.type not in _LAYOUT_TOKENS:
            prev = tok
    return _py_guard(text, _apply_edits(text, edits), same_meaning=False)


# ----------------------------------------------------------------------------------------- rename: powershell
_PS_AUTOMATIC = frozenset("""_ args input this true false null psitem psscriptroot pscommandpath myinvocation host
    error pwd home pid psversiontable executioncontext lastexitcode matches ofs shellid stacktrace pscmdlet
    psboundparameters foreach switch pshome iswindows islinux ismacos iscoreclr profile nestedpromptlevel psculture
    psuiculture psdebugcontext event eventargs eventsubscriber sender sourceargs sourceeventargs consolefilename
    enabledexperimentalfeatures psnativecommandargumentpassing psstyle pssenderinfo maximumhistorycount
    formatenumerationlimit outputencoding psdefaultparametervalues psemailserver pssessionapplicationname
    pssessionconfigurationname pssessionoption errorview transcript""".split())
_PS_VAR = re.compile(r"(?<![\w`$])\$(?:\{(?P<brace>[^}\n]*)\}|(?:(?P<scope>[A-Za-z]+):(?!:))?(?P<name>[A-Za-z_]\w*))")
_PS_BRACED = re.compile(r"(?:(?P<scope>[A-Za-z]+):)?(?P<name>[A-Za-z_]\w*)")
_PS_SPLAT = re.compile(r"(?<![\w@$`])@(?P<name>[A-Za-z_]\w*)(?![\w\"'({])")
_PS_SCOPES = frozenset({"script", "global", "local", "private", "using"})
_PS_ASSIGN = re.compile(r"\$(?:(?:script|global|local|private):)?([A-Za-z_]\w*)\s*(?:=(?!=)|[-+*/%]=|\+\+|--)", re.I)
_PS_FOREACH = re.compile(r"\bforeach\s*\(\s*\$([A-Za-z_]\w*)\s+in\b", re.I)
_PS_PARAMS = re.compile(r"(?:\bparam|\bfunction\s+[\w-]+)\s*\(", re.I)


def _balanced(s: str, i: int) -> str:
    """s[i:] up to the parenthesis closing one already open before i."""
    depth = 1
    for j in range(i, len(s)):
        depth += {"(": 1, ")": -1}.get(s[j], 0)
        if depth == 0:
            return s[i:j]
    return s[i:]


def _ps_var_parts(m: re.Match) -> tuple[str | None, str] | None:
    if m["brace"] is None:
        return m["scope"], m["name"]
    inner = _PS_BRACED.fullmatch(m["brace"])
    return (inner["scope"], inner["name"]) if inner else None


def _rename_powershell(text: str, rng: random.Random) -> str:
    lx = _Lexed(text, "powershell")
    code = lx.masked()
    bound = {m[1].lower() for m in _PS_ASSIGN.finditer(code)} | {m[1].lower() for m in _PS_FOREACH.finditer(code)}
    for m in _PS_PARAMS.finditer(code):
        bound.update(v.lower() for v in re.findall(r"\$([A-Za-z_]\w*)", _balanced(code, m.end())))
    # Keep names the script may reach another way: .Property, -Parameter (a function's named argument), bare words
    # (Get-Variable name); plus automatic and preference variables.
    code_and_strings = lx.masked(("code", "istr"))
    banned = {w.lower() for w in re.findall(r"\.([A-Za-z_]\w*)", code_and_strings)}
    banned |= {w.lower() for w in re.findall(r"(?<![\w$])-([A-Za-z_]\w*)", code)}
    banned |= {w.lower() for w in re.findall(r"(?<![\w$@.`:{-])[A-Za-z_]\w*", code)}
    names = sorted(n for n in bound - banned - _PS_AUTOMATIC if not n.endswith("preference"))
    if not names:
        return text
    fresh = _Namer(rng, _words(text) | _PS_AUTOMATIC, "camel", fold_case=True)
    mapping = {n: fresh() for n in names}
    edits = []
    for m in _PS_VAR.finditer(text):
        kind = lx.kind_at(m.start())
        parts = _ps_var_parts(m) if kind in ("code", "istr") else None
        if parts is None or parts[1].lower() not in mapping or (parts[0] and parts[0].lower() not in _PS_SCOPES):
            continue
        new = (parts[0] + ":" if parts[0] else "") + mapping[parts[1].lower()]
        edits.append((m.start(), m.end(), "${" + new + "}" if m["brace"] is not None else "$" + new))
    for m in _PS_SPLAT.finditer(code):
        if m["name"].lower() in mapping:
            edits.append((m.start("name"), m.end("name"), mapping[m["name"].lower()]))
    return _apply_edits(text, edits)


# ----------------------------------------------------------------------------------------------- rename: bash
_BASH_ENV = frozenset("""HOME PATH USER LOGNAME SHELL PWD OLDPWD IFS PS1 PS2 PS3 PS4 LANG LANGUAGE TERM HOSTNAME
    HOSTTYPE OSTYPE MACHTYPE UID EUID GROUPS PPID RANDOM SECONDS LINENO REPLY OPTARG OPTIND OPTERR PIPESTATUS FUNCNAME
    BASH BASHPID BASH_SOURCE BASH_LINENO BASH_REMATCH BASH_VERSION BASH_ENV TMPDIR TMP TEMP DISPLAY EDITOR VISUAL
    PAGER MAIL HISTFILE HISTSIZE HISTFILESIZE HISTCONTROL LD_PRELOAD LD_LIBRARY_PATH PYTHONPATH JAVA_HOME CDPATH
    PROMPT_COMMAND TZ SHLVL COLUMNS LINES SUDO_USER DEBIAN_FRONTEND SSH_AUTH_SOCK SSH_CLIENT SSH_CONNECTION
    http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY ftp_proxy all_proxy""".split())
_BASH_VAR = re.compile(r"(?<![\\$])\$(?:\{[#!]?)?(?P<name>[A-Za-z_]\w*)")
_BASH_ASSIGN = re.compile(r"(?:^|(?<=[;&|({!])|(?<=\bthen)|(?<=\bdo)|(?<=\belse))[ \t]*"
                          r"(?:(?:local|declare|typeset|readonly)(?:[ \t]+-[A-Za-z]+)*[ \t]+)?"
                          r"(?P<name>[A-Za-z_]\w*)(?:\[[^\]\n]*\])?\+?=", re.M)
_BASH_FOR = re.compile(r"\bfor[ \t]+(?P<name>[A-Za-z_]\w*)[ \t]+in\b")
_BASH_NAMELIST = re.compile(r"\b(?P<cmd>read|local|declare|typeset|readonly|unset|export)(?:[ \t]+-[A-Za-z]+)*"
                            r"(?P<names>(?:[ \t]+[A-Za-z_]\w*)+)[ \t]*(?=$|[;&|)<])", re.M)
_BASH_EXPORT = re.compile(r"\bexport(?:[ \t]+-[A-Za-z]+)*[ \t]+(?P<name>[A-Za-z_]\w*)")
_BASH_ARITH = re.compile(r"\(\((?P<expr>[^\n]*?)\)\)")
_BASH_ARITH_NAME = re.compile(r"(?<![\w$])[A-Za-z_]\w*")
# A word that could be a variable name: not $name/${name}, not an option (-f), not part of a path (/tmp, a.name).
_BASH_BARE = re.compile(r"(?<![\w$./-])(?<!\$\{)(?<!\$\{[#!])[A-Za-z_]\w*")


def _rename_bash(text: str, rng: random.Random) -> str:
    lx = _Lexed(text, "bash")
    code = lx.masked()
    bound, where = set(), {}  # where: offset of each bare-word occurrence we know how to rename -> name
    for m in list(_BASH_ASSIGN.finditer(code)) + list(_BASH_FOR.finditer(code)):
        bound.add(m["name"])
        where[m.start("name")] = m["name"]
    exported = {m["name"] for m in _BASH_EXPORT.finditer(code)}
    for m in _BASH_NAMELIST.finditer(code):
        for w in re.finditer(r"[A-Za-z_]\w*", m["names"]):
            bound.add(w[0])
            where[m.start("names") + w.start()] = w[0]
            if m["cmd"] == "export" or re.search(r"\s-[A-Za-z]*x", m[0]):  # export a b / declare -x a
                exported.add(w[0])
    for m in _BASH_ARITH.finditer(code):
        for w in _BASH_ARITH_NAME.finditer(m["expr"]):
            where[m.start("expr") + w.start()] = w[0]
    # Exported and environment variables reach other programs; a name also used as a bare word we do not
    # understand (a command, `[[ -v name ]]`, `printf -v name`) could be the variable: keep both.
    banned = exported | _BASH_ENV
    banned |= {m[0] for m in _BASH_BARE.finditer(code) if m[0] in bound and m.start() not in where}
    names = sorted(n for n in bound - banned if not n.startswith("LC_"))
    if not names:
        return text
    fresh = _Namer(rng, _words(text) | _BASH_ENV, "snake")
    mapping = {n: fresh() for n in names}
    edits = [(m.start("name"), m.end("name"), mapping[m["name"]]) for m in _BASH_VAR.finditer(text)
             if m["name"] in mapping and lx.kind_at(m.start()) in ("code", "istr", "iheredoc")]
    edits += [(i, i + len(n), mapping[n]) for i, n in where.items() if n in mapping]
    return _apply_edits(text, edits)


# ---------------------------------------------------------------------------------------- rename: javascript
_JS_KEEP = frozenset("""break case catch class const continue debugger default delete do else enum export extends
    false finally for function if import in instanceof let new null return super switch this throw true try typeof
    var void while with yield await async of static get set implements interface package private protected public
    arguments eval undefined NaN Infinity window document console require module exports process global globalThis
    Buffer setTimeout setInterval clearTimeout clearInterval JSON Math Object Array String Number Boolean Date RegExp
    Error Promise Symbol Map Set WeakMap Function parseInt parseFloat escape unescape encodeURIComponent
    decodeURIComponent encodeURI decodeURI atob btoa fetch navigator location alert XMLHttpRequest ActiveXObject
    WScript GetObject Enumerator __dirname __filename self""".split())
_JS_ID = r"[A-Za-z_$][\w$]*"
_JS_TOKEN = re.compile(rf"(?<![\w$]){_JS_ID}|[^\s\w$\0]")
_JS_DECL = re.compile(rf"\b(?:var|let|const)\s+({_JS_ID})")
_JS_FUNC = re.compile(rf"\bfunction\b\s*\*?\s*({_JS_ID})?\s*\(([^()]*)\)")
_JS_ARROW = re.compile(rf"\(([^()]*)\)\s*=>|(?<![\w$.])({_JS_ID})\s*=>")
_JS_CATCH = re.compile(rf"\bcatch\s*\(\s*({_JS_ID})\s*\)")
_JS_IMPORT_LINE = re.compile(r"^[ \t]*(?:import\b|export\b.*\bfrom\b).*$|^.*\brequire\s*\(.*$", re.M)


def _js_params(params: str) -> Iterable[str]:
    for part in params.split(","):
        m = re.match(rf"\s*(?:\.\.\.)?({_JS_ID})\s*(?:=|$)", part)
        if m:
            yield m[1]


def _rename_javascript(text: str, rng: random.Random) -> str:
    lx = _Lexed(text, "javascript")
    code = lx.masked()
    declared = {m[1] for m in _JS_DECL.finditer(code)} | {m[1] for m in _JS_CATCH.finditer(code)}
    for m in _JS_FUNC.finditer(code):
        declared.update(filter(None, [m[1], *_js_params(m[2])]))
    for m in _JS_ARROW.finditer(code):
        declared.update(_js_params(m[1]) if m[1] is not None else [m[2]])
    banned = set(_JS_KEEP)
    for m in _JS_IMPORT_LINE.finditer(code):  # imported modules keep their names, like Python imports
        banned.update(re.findall(_JS_ID, m[0]))
    for s in lx.spans:  # names used inside template literals `${...}` would need renaming there too
        if s.kind == "istr":
            banned.update(re.findall(_JS_ID, text[s.start:s.end]))
    toks, stack, uses = list(_JS_TOKEN.finditer(code)), [], []
    for k, m in enumerate(toks):
        tok = m[0]
        if tok in ("(", "[", "{"):
            stack.append(tok)
        elif tok in (")", "]", "}"):
            if stack:
                stack.pop()
        elif tok in declared:
            prev, prev2 = (toks[k - 1][0] if k else ""), (toks[k - 2][0] if k > 1 else "")
            nxt = toks[k + 1][0] if k + 1 < len(toks) else ""
            in_object = bool(stack) and stack[-1] == "{" and prev in ("{", ",")
            if in_object and nxt in (",", "}"):  # shorthand {name}: the key would change with the variable
                banned.add(tok)
            elif not (prev == "." and prev2 != ".") and not (in_object and nxt == ":"):  # skip .prop and keys
                uses.append(m)
    names = sorted(declared - banned)
    if not names:
        return text
    fresh = _Namer(rng, _words(text) | _JS_KEEP, "camel")
    mapping = {n: fresh() for n in names}
    return _apply_edits(text, [(m.start(), m.end(), mapping[m[0]]) for m in uses if m[0] in mapping])


# ------------------------------------------------------------------------------------------- rename: vbscript
_VBS_DIM = re.compile(r"^[ \t]*(?:Dim|ReDim(?:[ \t]+Preserve)?)[ \t]+([^\n:]+)", re.I | re.M)
_VBS_PARAMS = re.compile(r"\b(?:Function|Sub)[ \t]+\w+[ \t]*\(([^)\n]*)\)", re.I)


def _rename_vbscript(text: str, rng: random.Random) -> str:
    lx = _Lexed(text, "vbscript")
    code = lx.masked()
    bound = set()
    for m in _VBS_DIM.finditer(code):
        bound.update(w[1].lower() for part in m[1].split(",") if (w := re.match(r"\s*([A-Za-z]\w*)", part)))
    for m in _VBS_PARAMS.finditer(code):
        bound.update(w[1].lower() for part in m[1].split(",")
                     if (w := re.match(r"\s*(?:(?:ByVal|ByRef|Optional)\s+)*([A-Za-z]\w*)", part, re.I)))
    banned = {w.lower() for w in re.findall(r"\.\s*([A-Za-z]\w*)", code)}  # object members, With-block .Names
    names = sorted(bound - banned)
    if not names:
        return text
    fresh = _Namer(rng, _words(text), "camel", fold_case=True)
    mapping = {n: fresh() for n in names}
    return _apply_edits(text, [(m.start(), m.end(), mapping[m[0].lower()])
                               for m in re.finditer(r"(?<![\w.])[A-Za-z]\w*", code) if m[0].lower() in mapping])


# ---------------------------------------------------------------------------------------------- rename: batch
_BAT_ENV = frozenset("""path pathext temp tmp userprofile appdata localappdata programdata programfiles
    programfiles(x86) commonprogramfiles systemroot systemdrive windir comspec computername username userdomain
    homedrive homepath public allusersprofile os processor_architecture number_of_processors errorlevel cd date time
    random cmdcmdline cmdextversion prompt""".split())
_BAT_SET = re.compile(r"\bset[ \t]+(?:/[ap][ \t]*)?\"?(?P<name>[A-Za-z_]\w*)[ \t]*(?:[-+*/%&|^]|<<|>>)?=", re.I)
_BAT_VAR = re.compile(r"(?<!%)%(?P<name>[A-Za-z_]\w*)(?=[%:])|(?<![!\w])!(?P<dname>[A-Za-z_]\w*)(?=[!:])")


def _rename_batch(text: str, rng: random.Random) -> str:
    lx = _Lexed(text, "batch")
    code = lx.masked(("code", "istr"))
    where = {m.start("name"): m["name"].lower() for m in _BAT_SET.finditer(code)}
    bound = set(where.values())
    for m in _BAT_VAR.finditer(code):
        where[m.start(m.lastgroup)] = m[m.lastgroup].lower()
    # A bound name also used as a plain word (`set /a x=y+1`, `echo name`) may be the variable: keep it.
    banned = {m[0].lower() for m in re.finditer(r"(?<![\w%!])[A-Za-z_]\w*", code)
              if m[0].lower() in bound and m.start() not in where} | _BAT_ENV
    names = sorted(bound - banned)
    if not names:
        return text
    fresh = _Namer(rng, _words(text) | _BAT_ENV, "snake", fold_case=True)
    mapping = {n: fresh() for n in names}
    return _apply_edits(text, [(i, i + len(n), mapping[n]) for i, n in where.items() if n in mapping])


_RENAMERS = {"python": _rename_python, "powershell": _rename_powershell, "bash": _rename_bash,
             "javascript": _rename_javascript, "vbscript": _rename_vbscript, "batch": _rename_batch}


def rename_identifiers(text: str, lang: str, rng: random.Random) -> str:
    """Rename the script's own variables (and Python/JS functions) consistently to fresh plausible names.

    Only names the script binds are touched; imports, builtins, environment/automatic variables, attributes after
    `.`, keyword-argument names and string contents keep their spelling."""
    renamer = _RENAMERS.get(lang)
    return renamer(text, rng) if renamer else text


# -------------------------------------------------------------------------------------------------- whitespace
_PY_SPACED_OPS = ("=", "==", "!=", "<=", ">=", "<", ">", "+=", "-=", "*=", "/=", "+", "%", "|", "&")
_INDENT_UNITS = ("  ", "   ", "    ", "        ", "\t")


def _py_reindent(src: _PySource, rng: random.Random) -> str:
    """Re-indent every logical line to `level * new unit`; multi-line string interiors are left alone."""
    old_by_ws: dict[str, int] = {"": 0}
    level, at_start, new_lead = 0, True, {}
    for t in src.toks:
        if t.type == tokenize.INDENT:
            level += 1
            old_by_ws.setdefault(t.string, level)
        elif t.type == tokenize.DEDENT:
            level -= 1
        elif t.type == tokenize.NEWLINE:
            at_start = True
        elif at_start and t.type not in _LAYOUT_TOKENS:
            new_lead[t.start[0]] = (level, t.start[1])
            at_start = False
    if len(old_by_ws) < 2:
        return src.text
    units = [u for u in _INDENT_UNITS if u not in old_by_ws]
    if not units:
        return src.text
    unit = rng.choice(units)
    lines = list(src.lines)
    for t in src.toks:  # comment-only lines at a known indentation follow their block
        ws = _leading(t.line)
        if t.type == tokenize.COMMENT and t.start[1] == len(ws) and ws in old_by_ws and t.start[0] not in new_lead:
            new_lead[t.start[0]] = (old_by_ws[ws], len(ws))
    for row, (lvl, col) in new_lead.items():
        lines[row - 1] = unit * lvl + lines[row - 1][col:]
    return "".join(lines)


def _py_blank_lines(src: _PySource, rng: random.Random) -> str:
    lines = list(src.lines)
    blank = sorted({t.start[0] for t in src.toks if t.type == tokenize.NL and not src.lines[t.start[0] - 1].strip()})
    if blank and rng.random() < 0.5:
        drop = {r for r in blank if rng.random() < 0.5} or {rng.choice(blank)}
        return "".join(line for row, line in enumerate(lines, 1) if row not in drop)
    rows = src.line_end_rows()
    if not rows:
        return src.text
    for row in sorted(rng.sample(rows, min(len(rows), rng.randint(1, 3))), reverse=True):
        _insert_line(lines, row, "", _eol(src.text))
    return "".join(lines)


def _py_op_spacing(src: _PySource, rng: random.Random) -> str:
    """Space or tighten binary operators and commas, one style per operator for the whole script (like a formatter)."""
    if any(t.type in _FSTRING_TOKENS for t in src.toks):  # spaces inside f-string fields are part of the output
        return src.text
    style = {op: rng.choice(("", " ")) for op in _PY_SPACED_OPS}
    comma = rng.choice(("", " "))
    sig = [t for t in src.toks if t.type not in _LAYOUT_TOKENS]

    def operand_end(t):
        return t.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING) or t.string in (")", "]", "}")

    def operand_start(t):
        return t.type in (tokenize.NAME, tokenize.NUMBER, tokenize.STRING) or t.string in ("(", "[", "{")

    edits = []
    for a, b in zip(sig, sig[1:]):
        if a.end[0] != b.start[0]:
            continue
        if b.type == tokenize.OP and b.string in style and operand_end(a):
            gap = style[b.string]
        elif a.type == tokenize.OP and a.string in style and operand_start(b):
            gap = style[a.string]
        elif a.string == "," and operand_start(b):
            gap = comma
        else:
            continue
        edits.append((src.offset(a.end), src.offset(b.start), gap))
    return _apply_edits(src.text, edits)


def _whitespace_python(text: str, rng: random.Random) -> str:
    ops = [_py_reindent, _py_blank_lines, _py_op_spacing]
    rng.shuffle(ops)
    original = text
    for op in ops:  # at least one, then each further one with probability 1/2
        if text == original or rng.random() < 0.5:
            src = _PySource.read(text)
            if src is not None:
                text = _py_guard(text, op(src, rng), same_meaning=True)
    return text


def _reindent_generic(text: str, lang: str, rng: random.Random) -> str:
    lx = _Lexed(text, lang)
    lines = []
    for j in lx.line_starts_in_code():
        ws = re.match(r"[ \t]*", text[j:j + 256])[0]
        if ws and text[j + len(ws):j + len(ws) + 1] not in ("", "\r", "\n"):
            lines.append((j, len(ws), len(ws.expandtabs(4))))
    if not lines:
        return text
    old = min(width for _, _, width in lines)
    unit = rng.choice([u for u in (2, 3, 4, 8, "\t") if u != old])

    def lead(width: int) -> str:
        levels, rest = divmod(width, old)
        return "\t" * levels + " " * rest if unit == "\t" else " " * (levels * unit + rest)

    return _apply_edits(text, [(j, j + n, lead(width)) for j, n, width in lines])


def _blank_lines_generic(text: str, lang: str, rng: random.Random) -> str:
    lx = _Lexed(text, lang)
    cont = _CONTINUATION.get(lang)
    blank = []
    for j in lx.line_starts_in_code():
        end = text.find("\n", j)
        prev = text[text.rfind("\n", 0, max(j - 1, 0)) + 1:max(j - 1, 0)].rstrip()
        if end > 0 and not text[j:end].strip() and not (cont and j and prev.endswith(cont)):
            blank.append((j, end + 1))
    if blank and rng.random() < 0.5:
        drop = [b for b in blank if rng.random() < 0.5] or [rng.choice(blank)]
        return _apply_edits(text, [(j, end, "") for j, end in drop])
    points = [p for p in lx.insertion_points() if p < len(text)]
    if not points:
        return text
    return _apply_edits(text, [_new_line(text, p, "") for p in rng.sample(points, min(len(points), rng.randint(1, 3)))])


def whitespace(text: str, lang: str, rng: random.Random) -> str:
    """Change indentation width and blank lines (and, in Python, spaces around operators) without changing meaning."""
    if lang == "python":
        return _whitespace_python(text, rng)
    if lang not in _CONTINUATION and lang != "javascript":
        return text
    ops = [_reindent_generic, _blank_lines_generic]
    rng.shuffle(ops)
    original = text
    for op in ops:
        if text == original or rng.random() < 0.5:
            text = op(text, lang, rng)
    return text


# ---------------------------------------------------------------------------------------------------- comments
_COMMENT_MARK = {"python": "#", "bash": "#", "powershell": "#", "javascript": "//", "batch": "REM", "vbscript": "'"}


def _comments_python(text: str, rng: random.Random) -> str:
    src = _PySource.read(text)
    if src is None:
        return text
    header = src.header_rows()
    own_line = sorted({t.start[0] for t in src.toks if t.type == tokenize.COMMENT and t.start[0] > header
                       and not src.lines[t.start[0] - 1][:t.start[1]].strip()})
    lines = list(src.lines)
    if own_line and rng.random() < 0.5:
        drop = {r for r in own_line if rng.random() < 0.5} or {rng.choice(own_line)}
        new = "".join(line for row, line in enumerate(lines, 1) if row not in drop)
        return _py_guard(text, new, same_meaning=True) if new.strip() else text
    rows = [r for r in src.line_end_rows() if r >= header]
    if not rows:
        return text
    for row in sorted(rng.sample(rows, min(len(rows), rng.randint(1, 3))), reverse=True):
        nxt = lines[row] if row < len(lines) and lines[row].strip() else lines[row - 1]
        _insert_line(lines, row, f"{_leading(nxt)}# {rng.choice(_COMMENTS)}", _eol(text))
    return _py_guard(text, "".join(lines), same_meaning=True)


def _comments_generic(text: str, lang: str, rng: random.Random) -> str:
    lx = _Lexed(text, lang)
    cont = _CONTINUATION.get(lang)
    whole_line = []
    for s in lx.spans:
        if s.kind != "comment" or "\n" in text[s.start:s.end] or (s.start == 0 and text.startswith("#!")):
            continue
        j, k = text.rfind("\n", 0, s.start) + 1, text.find("\n", s.end)
        k = len(text) if k < 0 else k
        prev = text[text.rfind("\n", 0, max(j - 1, 0)) + 1:max(j - 1, 0)].rstrip()
        if text[j:s.start].strip() or text[s.end:k].strip() or (cont and j and prev.endswith(cont)):
            continue
        if re.match(r"#\s*requires\b", text[s.start:s.end], re.I):  # PowerShell #Requires is a directive
            continue
        whole_line.append((j, min(k + 1, len(text))))
    if whole_line and rng.random() < 0.5:
        drop = [c for c in whole_line if rng.random() < 0.5] or [rng.choice(whole_line)]
        new = _apply_edits(text, [(j, k, "") for j, k in drop])
        return new if new.strip() else text
    points = lx.insertion_points()
    if not points:
        return text
    edits = []
    for p in rng.sample(points, min(len(points), rng.randint(1, 3))):
        nxt_end = text.find("\n", p)
        nxt = text[p:len(text) if nxt_end < 0 else nxt_end]
        indent = _leading(nxt) if nxt.strip() else _leading(text[text.rfind("\n", 0, max(p - 1, 0)) + 1:p])
        edits.append(_new_line(text, p, f"{indent}{_COMMENT_MARK[lang]} {rng.choice(_COMMENTS)}"))
    return _apply_edits(text, edits)


def comments(text: str, lang: str, rng: random.Random) -> str:
    """Insert neutral comments on their own lines at safe places, or remove whole-line comments (never shebangs)."""
    if lang == "python":
        return _comments_python(text, rng)
    return _comments_generic(text, lang, rng) if lang in _COMMENT_MARK else text


# -------------------------------------------------------------------------------------------------- case_change
_PS_VERBS = ("Add|Approve|Assert|Backup|Block|Checkpoint|Clear|Close|Compare|Complete|Compress|Confirm|Connect|"
             "ConvertFrom|ConvertTo|Convert|Copy|Debug|Deny|Disable|Disconnect|Dismount|Edit|Enable|Enter|Exit|"
             "Expand|Export|Find|ForEach|Format|Get|Grant|Group|Hide|Import|Initialize|Install|Invoke|Join|Limit|"
             "Lock|Measure|Merge|Mount|Move|New|Open|Optimize|Out|Ping|Pop|Protect|Publish|Push|Read|Receive|Redo|"
             "Register|Remove|Rename|Repair|Request|Reset|Resize|Resolve|Restart|Restore|Resume|Revoke|Save|Search|"
             "Select|Send|Set|Show|Skip|Sort|Split|Start|Step|Stop|Submit|Suspend|Switch|Sync|Tee|Test|Trace|"
             "Unblock|Undo|Uninstall|Unlock|Unprotect|Unpublish|Unregister|Update|Use|Wait|Watch|Where|Write")
_NOT_AFTER = r"(?<![\w$\-.:`])"
_CASE_WORDS = {
    "powershell": [re.compile(p, re.I) for p in (
        rf"{_NOT_AFTER}(?P<w>(?:{_PS_VERBS})-[A-Za-z][A-Za-z0-9]*)(?![\w-])",
        rf"{_NOT_AFTER}(?P<w>if|elseif|foreach|while|switch|for|until|param)(?=\s*\()",
        rf"{_NOT_AFTER}(?P<w>else|try|finally|do|begin|process|end)(?=\s*\{{)",
        rf"{_NOT_AFTER}(?P<w>function|filter)(?=\s+[A-Za-z_])",
        rf"{_NOT_AFTER}(?P<w>catch)(?=\s*[\[{{])")],
    # cmd's built-in commands and Windows program names are case-insensitive; only command positions are touched.
    "batch": [re.compile(r"(?:^|(?<=[&|(]))[ \t]*@?(?P<w>echo|set|if|for|goto|call|exit|start|copy|del|erase|move|"
                         r"ren|rename|mkdir|md|rmdir|rd|cd|chdir|pushd|popd|setlocal|endlocal|cls|pause|type|title|"
                         r"color|shift|timeout|ping|reg|taskkill|xcopy|find|findstr|net|powershell|cmd)(?![\w-])",
                         re.I | re.M)],
}


def _recase(word: str, rng: random.Random) -> str:
    style = rng.choice(("lower", "upper", "title", "random"))
    if style == "lower":
        return word.lower()
    if style == "upper":
        return word.upper()
    if style == "title":
        return "-".join(part.capitalize() for part in word.split("-"))
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)


def case_change(text: str, lang: str, rng: random.Random) -> str:
    """Change the letter case of PowerShell cmdlets and keywords, or batch commands (both case-insensitive)."""
    patterns = _CASE_WORDS.get(lang)
    if not patterns:
        return text
    code = _Lexed(text, lang).masked()
    hits = sorted({(m.start("w"), m.end("w")) for p in patterns for m in p.finditer(code)})
    edits = []
    for s, e in hits:
        if rng.random() < 0.5:
            edits.append((s, e, _recase(text[s:e], rng)))
    if hits and all(text[s:e] == new for s, e, new in edits):
        s, e = rng.choice(hits)
        for _ in range(8):  # a word already in the drawn style needs another draw
            if (new := _recase(text[s:e], rng)) != text[s:e]:
                edits.append((s, e, new))
                break
    return _apply_edits(text, edits)


# ------------------------------------------------------------------------------------------------- string_split
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


# ------------------------------------------------------------------------------------------ obfuscating wrappers
# OFF by default. They only build text around an encoded copy of the script; nothing is decoded or run here.
_B64_WRAPPERS = {
    "python": "exec(__import__('base64').b64decode('{0}').decode())",
    "powershell": "Invoke-Expression ([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String("
                  "'{0}')))",
    "javascript": "eval(Buffer.from('{0}', 'base64').toString('utf8'));",
    "bash": "echo '{0}' | base64 -d | bash",
}
_HEX_WRAPPERS = {
    "python": "exec(bytes.fromhex('{0}').decode())",
    "powershell": "Invoke-Expression ([System.Text.Encoding]::UTF8.GetString([byte[]] -split ('{0}' -replace '..', "
                  "'0x$& ')))",
    "javascript": "eval(Buffer.from('{0}', 'hex').toString('utf8'));",
    "bash": "echo '{0}' | xxd -r -p | bash",
    "vbscript": 'h = "{0}"\ns = ""\nFor i = 1 To Len(h) Step 2\n    s = s & Chr(CLng("&H" & Mid(h, i, 2)))\nNext\n'
                "Execute s",
}


def _wrap(text: str, template: str | None, encode: Callable[[bytes], str]) -> str:
    if template is None or not text.strip():
        return text
    head = text[:text.find("\n") + 1] if text.startswith("#!") and "\n" in text else ""  # the shebang stays first
    body = text[len(head):].encode("utf-8", "surrogatepass")
    return head + template.format(encode(body)) + _eol(text)


def base64_wrap(text: str, lang: str, rng: random.Random) -> str:
    """Wrap the whole script in a base64 decode-and-run one-liner of its own language (text only)."""
    return _wrap(text, _B64_WRAPPERS.get(lang), lambda b: base64.b64encode(b).decode("ascii"))


def hex_wrap(text: str, lang: str, rng: random.Random) -> str:
    """Wrap the whole script in a hex decode-and-run snippet of its own language (text only)."""
    return _wrap(text, _HEX_WRAPPERS.get(lang), bytes.hex)


# ---------------------------------------------------------------------------------------------------- registry
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
