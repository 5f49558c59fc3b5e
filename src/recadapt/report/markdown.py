"""The report as one Markdown file: pipe tables, images as base64 PNG data URIs (shown by
editors and most viewers offline; some web hosts strip them), ``<details>`` for collapsed
parts (GitHub-flavoured Markdown allows the tag)."""

from __future__ import annotations

import base64

from recadapt.report.document import Block, Code, Details, Document, Heading, Image, Table, Text


def render_markdown(document: Document) -> str:
    parts = [f"# {document.title}", *(_block(block) for block in document.blocks)]
    return "\n\n".join(parts) + "\n"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Text):
        return f"*{block.text}*" if block.note else block.text
    if isinstance(block, Table):
        header = "| " + " | ".join(_cell(c) for c in block.header) + " |"
        rule = "|" + "|".join("---" for _ in block.header) + "|"
        rows = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join([header, rule, *rows])
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f"![{block.alt}](data:image/png;base64,{data})"
    if isinstance(block, Code):
        fence = "````" if "```" in block.text else "```"
        return f"{fence}\n{block.text.rstrip()}\n{fence}"
    if isinstance(block, Details):
        inner = "\n\n".join(_block(b) for b in block.blocks)
        return f"<details>\n<summary>{block.summary}</summary>\n\n{inner}\n\n</details>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
