"""A report as a list of plain blocks, so the HTML and Markdown renderers show the same content
(``report/html.py``, ``report/markdown.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    """A paragraph; ``note`` paragraphs are shown muted (missing files, skipped sections)."""

    text: str
    note: bool = False


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    #: element id in HTML (tests and readers find the metrics table by it)
    id: str | None = None


@dataclass
class Image:
    png: bytes
    alt: str


@dataclass
class Code:
    text: str


@dataclass
class Details:
    """A collapsed group (full configs, validation metrics)."""

    summary: str
    blocks: list[Block] = field(default_factory=list)


Block = Union[Heading, Text, Table, Image, Code, Details]  # noqa: UP007 (runtime alias, py3.10)


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)
