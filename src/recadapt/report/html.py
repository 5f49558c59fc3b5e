"""One self-contained HTML file: inline CSS, images as base64 PNG data URIs, no scripts and no
external resources, so it opens offline and can be mailed or archived as is."""

from __future__ import annotations

import base64
from html import escape

from recadapt.report.document import Block, Code, Details, Document, Heading, Image, Table, Text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #666; font-style: italic; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
details { margin: 0.6em 0; } summary { cursor: pointer; font-weight: 600; }
.scroll { overflow-x: auto; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
"""


def render_html(document: Document) -> str:
    body = "\n".join(_block(block) for block in document.blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(document.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n<h1>{escape(document.title)}</h1>\n{body}\n</body>\n</html>\n")


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f'<p class="note">{escape(block.text)}</p>' if block.note else (
            f"<p>{escape(block.text)}</p>")
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Code):
        return f"<pre>{escape(block.text)}</pre>"
    if isinstance(block, Details):
        inner = "\n".join(_block(b) for b in block.blocks)
        return f"<details>\n<summary>{escape(block.summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _table(table: Table) -> str:
    ident = f' id="{escape(table.id)}"' if table.id else ""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    rows = "\n".join(
        "<tr>" + "".join(f'<td class="num">{escape(cell)}</td>' if _numeric(cell)
                         else f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows)
    return (f'<div class="scroll"><table{ident}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            f"{rows}\n</tbody>\n</table></div>")


def _numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("*"))
    except ValueError:
        return False
    return True
