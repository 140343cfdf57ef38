"""Rendering explanations: terminal (rich, shaded by contribution), json, jsonl, and one self-contained HTML page.

Line texts arrive already neutralised (`safe_display` in explain.py: no escape sequences, no bidi overrides); the
terminal view passes them to rich as Text (never markup), HTML escapes every string and forbids scripts and remote
loads (the report's CSP). JSON carries the neutralised text, so a consumer that prints it cannot be attacked either.
"""
from __future__ import annotations

import json
import sys
from typing import Iterable

from .explain import Explanation
from pipeline.inputs.readers import safe_display

FORMATS = ("terminal", "json", "jsonl", "html")


def _shade(contribution: float, scale: float) -> float:
    """0..1 intensity of a contribution relative to the script's largest |contribution|."""
    return min(1.0, abs(contribution) / scale) if scale > 0 else 0.0


def _scale(e: Explanation) -> float:
    return max((abs(u.contribution) for u in e.lines), default=0.0)


def _summary(e: Explanation) -> str:
    if e.error:
        return f"error: {e.error}"
    extra = f", windows of {e.window} lines" if e.window > 1 else ""
    unread = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in e.unread)
    return (f"P(malicious) {e.score:.4f} -> {e.verdict}{extra}" +
            (f"; lines {unread} were cut by truncation (not read, not attributed)" if unread else ""))


def render_terminal(explanations: Iterable[Explanation], top: int, out) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, highlight=False)
    for e in explanations:
        console.print(Text(safe_display(e.location), style="bold"), Text("  " + safe_display(_summary(e))))
        scale = _scale(e)
        for u in (e.lines[:top] if top > 0 else e.lines):
            level = int(round(_shade(u.contribution, scale) * 4))  # 5 shades: rich styles, no sample bytes in them
            colour = ("red", "bright_red", "red3", "red1", "bold red") if u.contribution >= 0 else \
                ("blue", "bright_blue", "blue3", "blue1", "bold blue")
            where = f"L{u.line}" if u.line == u.line_end else f"L{u.line}-{u.line_end}"
            row = Text(f"  {u.contribution:+.4f} {where:>9}  ", style=colour[level])
            row.append(Text(u.text))  # Text: "[red]" in a sample is shown, not interpreted
            console.print(row, overflow="ellipsis", no_wrap=True)


def render_html(explanations: Iterable[Explanation], top: int) -> str:
    from .report.html import CSP, esc

    parts = []
    for e in explanations:
        scale = _scale(e)
        rows = []
        for u in (e.lines[:top] if top > 0 else e.lines):
            alpha = _shade(u.contribution, scale) * 0.6
            rgb = "220,0,0" if u.contribution >= 0 else "0,70,220"
            where = str(u.line) if u.line == u.line_end else f"{u.line}-{u.line_end}"
            rows.append(f'<tr style="background:rgba({rgb},{alpha:.3f})"><td>{where}</td>'
                        f"<td>{u.contribution:+.4f}</td><td><code>{esc(u.text)}</code></td></tr>")
        parts.append(f"<section><h2>{esc(e.location)}</h2><p>{esc(_summary(e))}</p>" +
                     ("<table><thead><tr><th>line</th><th>contribution</th><th>text</th></tr></thead><tbody>" +
                      "".join(rows) + "</tbody></table>" if rows else "") + "</section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}"
             "code{white-space:pre-wrap;word-break:break-all}")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' + CSP +
            f"<title>sgpipe explain</title><style>{style}</style></head>\n<body><h1>sgpipe explain</h1>\n"
            "<p>Contribution: the drop in P(malicious) when the line is removed (red raises the score, blue lowers "
            "it).</p>\n" + "\n".join(parts) + "\n</body></html>\n")


def render(explanations: Iterable[Explanation], fmt: str, top: int = 10, out=None) -> None:
    """Write explanations in `fmt`; `top` > 0 keeps each script's `top` strongest lines (0: all)."""
    out = out or sys.stdout
    if fmt == "jsonl":
        for e in explanations:
            out.write(json.dumps(e.as_dict(top), ensure_ascii=False) + "\n")
    elif fmt == "json":
        out.write(json.dumps([e.as_dict(top) for e in explanations], ensure_ascii=False, indent=2) + "\n")
    elif fmt == "html":
        out.write(render_html(explanations, top))
    elif fmt == "terminal":
        render_terminal(explanations, top, out)
    else:
        raise ValueError(f"unknown format {fmt!r}: choose {', '.join(FORMATS)}")
