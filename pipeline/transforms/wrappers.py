"""Obfuscating wrappers: the whole script, encoded, inside a decode-and-run snippet of its own language."""
from __future__ import annotations

import base64
import random
from typing import Callable

from .lexing import _eol

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
