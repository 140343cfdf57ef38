"""rename_identifiers: rename a script's own variables (and Python/JS functions) to fresh plausible names, one
renamer per language, each careful to leave alone any name that could refer to something outside the script."""
from __future__ import annotations

import ast
import builtins
import keyword
import random
import re
import tokenize
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterable, Iterator

from .lexing import _Lexed, _apply_edits
from .python_source import _LAYOUT_TOKENS, _PySource, _parse_python, _py_guard

# --------------------------------------------------------------------------------------------------- new names
# Fallback vocabulary for new identifiers, used only when no vocabulary drawn from the data is in force (a direct
# call of the transform, or a train split too small to have one). A fixed list is itself a pattern a model can learn
# (these words appear in renamed variants only), so the augment stage draws words from the train split's own
# identifiers instead: see `NameVocabulary`.
_WORDS = ("amount", "base", "batch", "block", "cache", "chunk", "count", "cursor", "data", "delta", "entry", "field",
          "flag", "frame", "group", "handle", "index", "info", "item", "label", "level", "limit", "line", "mark",
          "mode", "node", "note", "offset", "option", "part", "point", "record", "result", "row", "slot", "span",
          "stage", "state", "step", "store", "tag", "temp", "total", "unit", "value", "width")
# Words that are keywords in some language we rename in: never a whole new name (JS `return`, VBScript `next`, ...).
_RESERVED = frozenset(w.lower() for w in keyword.kwlist + keyword.softkwlist) | frozenset("""abstract arguments
    async await boolean break byref byval call case catch class const continue debugger default delete dim do done
    each else elseif empty end enum eqv erase error esac eval exit explicit export extends false fi finally for
    function get goto implements import imp in instanceof interface is let loop me mod new next not nothing null of
    on option or preserve private property protected public redim rem resume return select set static step stop sub
    super switch then this throw to true try typeof undefined until var void wend while with xor yield""".split())
_WORD_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")  # camelCase / snake_case / SCREAMING parts


@dataclass(frozen=True)
class NameVocabulary:
    """Words for new identifiers, with weights, per language (key None: all languages pooled).

    Built from the TRAIN split's own identifiers so that a renamed variant uses words real scripts of its language
    use. To carry no class signal a word must be used by scripts of BOTH labels, and its weight is the smaller of its
    two per-label document frequencies: a word common in malicious scripts only is never drawn, so "has this word"
    cannot become a cue that a variant of a benign script now shares with malicious ones (or the reverse).
    """
    words: dict  # lang | None -> (tuple of words, tuple of cumulative weights)

    MIN_WORDS = 20  # below this many shared words a language borrows the pooled list

    @classmethod
    def from_scripts(cls, scripts: Iterable[tuple[str, str, str]], top: int = 2000) -> "NameVocabulary":
        """`scripts`: (text, lang, label) of the training originals. Keeps the `top` words per language."""
        df: dict[tuple, Counter] = {}
        docs: Counter = Counter()
        for text, lang, label in scripts:
            parts = _identifier_words(text, lang)
            for key in (lang, None):
                df.setdefault((key, label), Counter()).update(parts)
                docs[(key, label)] += 1
        out = {}
        for key in {k for k, _ in df}:
            labels = [lab for (k, lab) in df if k == key]
            if len(labels) < 2:
                continue
            shared = set.intersection(*(set(df[(key, lab)]) for lab in labels)) - _RESERVED
            weight = {w: min(df[(key, lab)][w] / docs[(key, lab)] for lab in labels) for w in shared}
            chosen = sorted(weight, key=lambda w: (-weight[w], w))[:top]
            if len(chosen) >= cls.MIN_WORDS:
                cum, total = [], 0.0
                for w in chosen:
                    total += weight[w]
                    cum.append(total)
                out[key] = (tuple(chosen), tuple(cum))
        return cls(out)

    def draw(self, rng: random.Random, lang: str | None) -> str | None:
        """One word (None when there is no vocabulary for this language nor a pooled one)."""
        entry = self.words.get(lang) or self.words.get(None)
        if entry is None:
            return None
        words, cum = entry
        return rng.choices(words, cum_weights=cum)[0]

    def to_json(self) -> dict:
        return {str(k): len(v[0]) for k, v in sorted(self.words.items(), key=lambda kv: str(kv[0]))}


def _identifier_words(text: str, lang: str) -> set[str]:
    """Lower-case word parts (3-12 letters) of the identifiers in a script's code (not its strings or comments)."""
    code = _Lexed(text, lang).masked() if lang != "python" else text
    words = set()
    for ident in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code):
        words.update(p.lower() for p in _WORD_PART.findall(ident) if 3 <= len(p) <= 12)
    return words


_VOCABULARY: ContextVar[NameVocabulary | None] = ContextVar("sgpipe_name_vocabulary", default=None)


@contextmanager
def name_vocabulary(vocabulary: NameVocabulary | None) -> Iterator[None]:
    """Within the block, rename_identifiers draws new names from `vocabulary` (None: the fallback list)."""
    token = _VOCABULARY.set(vocabulary)
    try:
        yield
    finally:
        _VOCABULARY.reset(token)


class _Namer:
    """Fresh, plausible identifiers that collide with nothing already in the script, nor with each other."""

    def __init__(self, rng: random.Random, taken: Iterable[str], style: str, fold_case: bool = False,
                 lang: str | None = None):
        self.rng, self.style, self.fold, self.lang = rng, style, fold_case, lang
        self.taken = {t.lower() for t in taken} if fold_case else set(taken)
        self.vocabulary = _VOCABULARY.get()

    def _free(self, name: str) -> bool:
        key = name.lower() if self.fold else name
        if key in self.taken or name.lower() in _RESERVED:
            return False
        self.taken.add(key)
        return True

    def _word(self) -> str:
        drawn = self.vocabulary.draw(self.rng, self.lang) if self.vocabulary is not None else None
        return drawn if drawn is not None else self.rng.choice(_WORDS)

    def __call__(self) -> str:
        for _ in range(20):
            words = [self._word() for _ in range(self.rng.choice((1, 2)))]
            name = words[0] + ("".join(w.title() for w in words[1:]) if self.style == "camel" else
                               "".join("_" + w for w in words[1:]))
            if self.rng.random() < 0.3:
                name += str(self.rng.randint(1, 99))
            if self._free(name):
                return name
        base, n = self._word(), 100
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
    fresh = _Namer(rng, _words(text) | _PY_KEEP, "snake", lang="python")
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
    fresh = _Namer(rng, _words(text) | _PS_AUTOMATIC, "camel", fold_case=True, lang="powershell")
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
    fresh = _Namer(rng, _words(text) | _BASH_ENV, "snake", lang="bash")
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
    fresh = _Namer(rng, _words(text) | _JS_KEEP, "camel", lang="javascript")
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
    fresh = _Namer(rng, _words(text), "camel", fold_case=True, lang="vbscript")
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
    fresh = _Namer(rng, _words(text) | _BAT_ENV, "snake", fold_case=True, lang="batch")
    mapping = {n: fresh() for n in names}
    return _apply_edits(text, [(i, i + len(n), mapping[n]) for i, n in where.items() if n in mapping])


_RENAMERS = {"python": _rename_python, "powershell": _rename_powershell, "bash": _rename_bash,
             "javascript": _rename_javascript, "vbscript": _rename_vbscript, "batch": _rename_batch}


def rename_identifiers(text: str, lang: str, rng: random.Random) -> str:
    """Rename the script's own variables (and Python/JS functions) consistently to fresh plausible names.

    Only names the script binds are touched; imports, builtins, environment/automatic variables, attributes after
    `.`, keyword-argument names and string contents keep their spelling. New names come from the vocabulary set by
    `name_vocabulary` (the augment stage: the train split's own identifiers, shared by both labels), else from a
    small fixed list."""
    renamer = _RENAMERS.get(lang)
    return renamer(text, rng) if renamer else text
