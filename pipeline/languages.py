"""Which scripting language a text is written in: from its file extension, then its shebang, then content scoring.

Detection only reads the text with regular expressions: nothing here runs, imports or evaluates it.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

LANGS = ("powershell", "javascript", "python", "bash", "batch", "vbscript")
UNKNOWN = "unknown"

EXTENSIONS = {
    ".ps1": "powershell", ".psm1": "powershell", ".psd1": "powershell",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jse": "javascript",
    ".py": "python", ".pyw": "python",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash",
    ".bat": "batch", ".cmd": "batch",
    ".vbs": "vbscript", ".vbe": "vbscript",
}

# Spellings users and datasets give (lower case, without spaces, dashes, underscores or a leading dot).
_ALIASES = {
    **{k: "powershell" for k in ("powershell", "ps", "ps1", "psm1", "psd1", "pwsh", "posh")},
    **{k: "javascript" for k in ("javascript", "js", "node", "nodejs", "jscript", "ecmascript", "mjs", "cjs", "jse")},
    **{k: "python" for k in ("python", "py", "python2", "python3", "py2", "py3", "pyw")},
    **{k: "bash" for k in ("bash", "sh", "shell", "shellscript", "zsh", "ksh", "dash")},
    **{k: "batch" for k in ("batch", "bat", "cmd", "batchfile", "dos")},
    **{k: "vbscript" for k in ("vbscript", "vbs", "vbe", "visualbasicscript")},
    UNKNOWN: UNKNOWN,
}

# Interpreter names in a shebang (version digits stripped first: python3.11 -> python).
_INTERPRETERS = {
    "python": "python", "pypy": "python",
    "bash": "bash", "sh": "bash", "zsh": "bash", "ksh": "bash", "dash": "bash", "ash": "bash",
    "node": "javascript", "nodejs": "javascript", "deno": "javascript", "bun": "javascript",
    "pwsh": "powershell", "powershell": "powershell",
}

# Content cues, each worth its weight once when present. Weights favour cues no other language shares:
# `@echo off` is batch even when the batch file launches `powershell -ExecutionPolicy Bypass`.
_CUES: dict[str, list[tuple[re.Pattern, float]]] = {
    "powershell": [
        (re.compile(r"\$[A-Za-z_]\w*\s*=[^=]"), 1),
        (re.compile(r"\b(?:Get|Set|New|Invoke|Start|Stop|Write|Out|Add|Remove|Import|Export|ConvertTo|ConvertFrom|"
                    r"Convert|Select|Where|ForEach|Test|Copy|Move|Measure|Format|Join|Split|Clear|Enable|Disable|"
                    r"Register|Resolve|Restart|Wait|Read|Update)-[A-Z]\w+"), 3),  # capitalised: not get-pip.py
        (re.compile(r"-(?:ExecutionPolicy|EncodedCommand|NoProfile|WindowStyle|ErrorAction)\b", re.I), 2),
        (re.compile(r"\[(?:System\.)?[A-Z][\w.]*\]::"), 3),
        (re.compile(r"\$env:\w+", re.I), 2),
        (re.compile(r"\bparam\s*\(", re.I), 2),
        (re.compile(r"\|\s*(?:%|\?)\s*\{|\$_\.|\$PSItem\b"), 2),
        (re.compile(r"\b(?:iex|IEX)\b"), 2),
        (re.compile(r"^[ \t]*(?:powershell|pwsh)(?:\.exe)?\s+-", re.I | re.M), 2),
    ],
    "batch": [
        (re.compile(r"^[ \t]*@?echo\s+off\b", re.I | re.M), 4),
        (re.compile(r"%[A-Za-z_][\w]*%|%~[a-z]*\d"), 2),
        (re.compile(r"%%[A-Za-z]\b"), 2),
        (re.compile(r"^[ \t]*set\s+/[ap]\b", re.I | re.M), 2),
        (re.compile(r"\bgoto\s+:?\w+", re.I), 2),
        (re.compile(r"^[ \t]*(?:@?rem\b|::)", re.I | re.M), 2),
        (re.compile(r"^[ \t]*setlocal\b", re.I | re.M), 2),
        (re.compile(r"\bif\s+(?:not\s+)?(?:exist|defined|errorlevel)\b", re.I), 2),
    ],
    "vbscript": [
        (re.compile(r"^[ \t]*Dim\s+\w", re.I | re.M), 3),
        (re.compile(r"(?<!\.)\bCreateObject\s*\(", re.I), 3),  # JScript calls it as WScript.CreateObject
        (re.compile(r"\bWScript\.", re.I), 2),
        (re.compile(r"^[ \t]*End\s+(?:Sub|Function|If)\b", re.I | re.M), 3),
        (re.compile(r"^[ \t]*On\s+Error\s+Resume\s+Next\b", re.I | re.M), 3),
        (re.compile(r"^[ \t]*Set\s+\w+\s*=\s*\w", re.M), 2),
        (re.compile(r"\bThen\b|\bMsgBox\b|\bNothing\b"), 1),
    ],
    "python": [
        (re.compile(r"^[ \t]*def\s+\w+\s*\(.*\)\s*(?:->.*)?:", re.M), 3),
        (re.compile(r"^[ \t]*(?:import\s+\w|from\s+[\w.]+\s+import\b)", re.M), 3),
        (re.compile(r"\bself\."), 2),
        (re.compile(r"^[ \t]*class\s+\w+.*:\s*$", re.M), 2),
        (re.compile(r"if\s+__name__\s*==\s*['\"]__main__['\"]"), 4),
        (re.compile(r"\belif\b|^[ \t]*except\b.*:", re.M), 2),
        (re.compile(r"\b(?:None|True|False)\b"), 1),
        (re.compile(r"^[ \t]*python[\d.]*\s+-[cm]\s", re.M), 2),
    ],
    "javascript": [
        (re.compile(r"\bfunction\s*[\w$]*\s*\("), 2),
        (re.compile(r"^[ \t]*(?:var|let|const)\s+[A-Za-z_$][\w$]*\s*=", re.M), 3),
        (re.compile(r"=>"), 2),
        (re.compile(r"\brequire\s*\(\s*['\"]"), 3),
        (re.compile(r"\bconsole\.log\s*\("), 3),
        (re.compile(r"\b(?:document|window)\.\w"), 2),
        (re.compile(r"\bnew\s+ActiveXObject\s*\("), 3),
        (re.compile(r"===|!=="), 2),
        (re.compile(r"\bmodule\.exports\b"), 3),
        (re.compile(r";[ \t]*$", re.M), 1),
    ],
    "bash": [
        (re.compile(r"^[ \t]*(?:fi|done|esac)\b", re.M), 3),
        (re.compile(r"\$\("), 1),
        (re.compile(r"^[ \t]*echo\s", re.M), 1),
        (re.compile(r"\|\s*grep\b"), 2),
        (re.compile(r"^[ \t]*(?:if|while)\s+\[\[?\s", re.M), 3),
        (re.compile(r"\bthen\b"), 1),
        (re.compile(r"^[ \t]*(?:export\s+|local\s+)?[A-Za-z_]\w*=\S", re.M), 1),
        (re.compile(r"/dev/(?:null|tcp|udp)\b|\bchmod\s|\bwget\s|\bcurl\s+-"), 2),
        (re.compile(r"^[ \t]*(?:sudo|apt-get|apt|yum|dnf|systemctl|chmod|chown|mkfifo|ufw|crontab|nohup|awk|sed|find|"
                    r"tar|rm)\s", re.M), 2),
        (re.compile(r"<<-?\s*['\"]?[A-Za-z_]\w*['\"]?[ \t]*$", re.M), 2),
    ],
}
_MIN_SCORE = 2.0  # below this the evidence is one weak cue: say "unknown" rather than guess
_SCAN_CHARS = 50_000  # cues appear early; scoring a prefix keeps detection fast on huge files


def normalise_lang(name: str | None) -> str:
    """Map a user spelling ('PS1', 'node', 'sh', 'Batch'...) to a canonical name in LANGS, else 'unknown'."""
    key = re.sub(r"[\s_\-]+", "", str(name or "")).lower().lstrip(".")
    return _ALIASES.get(key, UNKNOWN)


def detect_language(text: str, filename: str | None = None) -> str:
    """The script's language: file extension first, then shebang, then content cues; 'unknown' if unsure."""
    if filename:
        lang = EXTENSIONS.get(_suffix(filename))
        if lang:
            return lang
    return _from_shebang(text) or _from_content(text)


def _suffix(filename: str) -> str:
    # Archive members and Windows paths both occur; take the last component whichever separator it uses.
    name = PureWindowsPath(PurePosixPath(filename).name).name
    return PurePosixPath(name).suffix.lower()


_SHEBANG = re.compile(r"\A\ufeff?#!\s*(\S+)([^\n]*)")


def _from_shebang(text: str) -> str | None:
    m = _SHEBANG.match(text)
    if not m:
        return None
    prog, args = PurePosixPath(m[1]).name, m[2].split()
    if prog == "env":  # "#!/usr/bin/env -S python3 -u": the first word that is neither a flag nor VAR=value
        words = [a for a in args if not a.startswith("-") and "=" not in a]
        if not words:
            return None
        prog = PurePosixPath(words[0]).name
    return _INTERPRETERS.get(re.sub(r"[\d.]+$", "", prog.lower()))


def _from_content(text: str) -> str:
    head = text[:_SCAN_CHARS]
    scores = {lang: sum(w for pattern, w in cues if pattern.search(head)) for lang, cues in _CUES.items()}
    best = max(LANGS, key=lambda lang: scores[lang])  # ties go to the earlier language in LANGS: deterministic
    return best if scores[best] >= _MIN_SCORE else UNKNOWN
