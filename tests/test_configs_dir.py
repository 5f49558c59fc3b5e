"""Every YAML config shipped in configs/ validates (keys, types, model section)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadapt.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.model["name"]


def test_there_are_configs():
    assert CONFIGS
