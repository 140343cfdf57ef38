"""Transforms that change how a script looks, not what it does: whitespace, comments, and the letter case of
case-insensitive PowerShell and batch words."""
from __future__ import annotations

import random
import re
import tokenize

from .lexing import _CONTINUATION, _Lexed, _apply_edits, _eol, _leading, _new_line
from .python_source import _FSTRING_TOKENS, _LAYOUT_TOKENS, _PySource, _insert_line, _py_guard

# Neutral comments to insert: phrases common in benign and malicious scripts alike.
_COMMENTS = ("TODO: review this", "helper section", "process the input", "update values", "check the result",
             "main logic", "set up variables", "handle output", "see notes above", "loop over items",
             "configuration", "end of section", "cleanup", "validate data", "initialisation", "utility code",
             "temporary values", "format the message", "keep for compatibility", "note: order matters",
             "added later", "fix later", "simple case", "default behaviour")


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
