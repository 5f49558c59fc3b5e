"""Tiny trained runs for the service tests: SASRec (an ID model) and cached IISAN over two fake
encoders (a content model), on the cyclic data with item titles."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadapt.config import validate_config
from recadapt.models import content
from recadapt.train.loop import train_run


def _write_items(folder: Path) -> Path:
    items = folder / "items.csv"
    items.write_text("item_id,title,kind\n" + "".join(
        f"i{i},title of item {i},kind {i % 3}\n" for i in range(1, 31)), encoding="utf-8")
    return items


def _config(inter: Path, items: Path, model: dict, cache_dir: Path | None = None):
    raw = {
        "data": {"source": str(inter), "item_path": str(items), "max_seq_len": 10},
        "model": model,
        "train": {"epochs": 15, "batch_size": 32, "lr": 0.01, "patience": 15,
                  "num_threads": 1},
        "eval": {"ks": [5, 10]},
    }
    if cache_dir is not None:
        raw["encoders"] = [{"name": "title", "model": "fake-a", "fields": ["title"]},
                           {"name": "kind", "model": "fake-b", "fields": ["title", "kind"]}]
        raw["cache"] = {"dir": str(cache_dir), "dtype": "fp16"}
    return validate_config(raw)


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory, cyclic_writer) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("serve-data")
    return cyclic_writer(root / "cyclic.csv"), _write_items(root)


@pytest.fixture(scope="session")
def sasrec_run(tmp_path_factory, serve_data) -> Path:
    out = tmp_path_factory.mktemp("serve-sasrec") / "run"
    train_run(_config(*serve_data, {"name": "sasrec", "hidden_size": 32}), out, progress=False)
    return out


@pytest.fixture(scope="session")
def serve_encoders(fake_encoder_factory) -> list:
    """The two fake encoders of the IISAN run: training and reopening it must see the same."""
    return [fake_encoder_factory(4, 8, "a"), fake_encoder_factory(4, 8, "b", seed=1)]


def _patch_load_encoders(encoders: list) -> pytest.MonkeyPatch:
    def load(run, needed=None, model_name="", reuse=False):
        return encoders[:needed] if needed else encoders

    patch = pytest.MonkeyPatch()
    patch.setattr(content, "load_encoders", load)
    return patch


@pytest.fixture
def fake_encoders_loaded(serve_encoders):
    """``load_encoders`` returns the fake encoders during one test, and only then: a
    session-wide patch leaked into later test folders (the distributed tests loaded fakes
    in-process and real MiniLM in their launched processes)."""
    patch = _patch_load_encoders(serve_encoders)
    yield serve_encoders
    patch.undo()


@pytest.fixture(scope="session")
def iisan_run(tmp_path_factory, serve_data, serve_encoders) -> Path:
    root = tmp_path_factory.mktemp("serve-iisan")
    model = {"name": "iisan", "hidden_size": 32, "adapter_size": 16}
    patch = _patch_load_encoders(serve_encoders)
    try:
        train_run(_config(*serve_data, model, root / "cache"), root / "run", progress=False)
    finally:
        patch.undo()
    return root / "run"
