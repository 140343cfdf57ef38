"""Render a report's blocks as one self-contained HTML page: inline CSS, plots as base64 data URIs, no script, no
external resource. Every string that can come from the data goes through html.escape: a sample is text, never markup.
"""
from __future__ import annotations

import base64
import html

from .blocks import Alarm, Block, Code, Heading, Highlight, Image, Para, Table

CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 0.6rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
.alarm { background: #fde8e8; border: 2px solid #c00; padding: 0.8rem; font-weight: 600; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 100%; }
mark { background: #f6b0b0; } mark.neg { background: #b0c8f6; }
"""


# Defence in depth: even if some string escaped escaping, the page may run no script and load nothing from outside.
CSP = ('<meta http-equiv="Content-Security-Policy" '
       "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">")


def esc(value) -> str:
    return html.escape(str(value).replace("\x00", ""), quote=True)


def to_html(blocks: list[Block], title: str, images: dict[str, bytes]) -> str:
    out = []
    for b in blocks:
        match b:
            case Heading():
                out.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
            case Para():
                out.append(f"<p>{esc(b.text)}</p>")
            case Alarm():
                out.append(f'<div class="alarm">ALARM: {esc(b.text)}</div>')
            case Table():
                head = "".join(f"<th>{esc(h)}</th>" for h in b.header)
                body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in b.rows)
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            case Code():
                out.append(f"<pre><code>{esc(b.text)}</code></pre>")
            case Highlight():
                lines = [f'<mark{"" if b.marks[n] >= 0 else " class=neg"} title="{b.marks[n]:+.4f}">{esc(line)}</mark>'
                         if n in b.marks else esc(line) for n, line in enumerate(b.text.split("\n"), 1)]
                out.append("<pre><code>" + "\n".join(lines) + "</code></pre>")
            case Image():
                data = base64.b64encode(images[b.file]).decode("ascii")
                out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(b.caption)}">'
                           f"<figcaption>{esc(b.caption)}</figcaption></figure>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' + CSP +
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(out) + "\n</body></html>\n")
