"""Fixtures for data tests: the shared real datasets (skipped when absent) and tiny files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$RECADAPT_SHARED_DATA``, else ``<repo root>/../shared/data``."""
    default = REPO_ROOT.parent / "shared" / "data"
    return Path(os.environ.get("RECADAPT_SHARED_DATA", default)).expanduser()


@pytest.fixture
def shared_data():
    """A function: ``shared_data("ml-100k")`` → its path, or skip the test with a reason."""

    def locate(name: str) -> Path:
        path = shared_data_dir() / name
        if not path.exists():
            pytest.skip(f"real data {path} is absent (set RECADAPT_SHARED_DATA to its folder)")
        return path

    return locate


@pytest.fixture
def write(tmp_path):
    """``write("a/b.tsv", text_or_bytes)`` → path under tmp_path, parents created."""

    def _write(relative: str, content: str | bytes) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write
