"""Shared fixtures: a tiny sequential dataset with a learnable pattern, and configs for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadapt.config import RunConfig, validate_config


def write_cyclic_csv(path: Path, num_users: int = 60, num_items: int = 30, seed: int = 0) -> Path:
    """Users walk the item cycle 1→2→…→num_items→1 from random starts: the next item is fully
    determined by the last one, which a sequence model learns and popularity cannot."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp"]
    for user in range(num_users):
        start = int(rng.integers(num_items))
        length = int(rng.integers(8, 16))
        for step in range(length):
            item = (start + step) % num_items + 1
            rows.append(f"u{user},i{item},{1000 * user + step}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def cyclic_writer():
    """``write_cyclic_csv`` for fixtures of wider scope (test modules cannot import conftest)."""
    return write_cyclic_csv


@pytest.fixture
def cyclic_csv(tmp_path: Path) -> Path:
    return write_cyclic_csv(tmp_path / "cyclic.csv")


def tiny_config(source: Path, **sections: dict) -> RunConfig:
    raw = {
        "data": {"source": str(source), "max_seq_len": 10},
        "model": {"name": "sasrec", "hidden_size": 32},
        "train": {"epochs": 20, "batch_size": 32, "lr": 0.01, "patience": 20,
                  "num_threads": 1},
        "eval": {"ks": [5, 10]},
    }
    for key, value in sections.items():
        replace = key == "model" and "name" in value  # another model: its own defaults
        raw[key] = dict(value) if replace else {**raw.get(key, {}), **value}
    return validate_config(raw)


@pytest.fixture
def make_config(cyclic_csv: Path):
    def make(**sections: dict) -> RunConfig:
        return tiny_config(cyclic_csv, **sections)

    return make
