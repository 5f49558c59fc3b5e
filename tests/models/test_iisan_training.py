"""Cached IISAN end to end through the training loop and the state cache, on fake encoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from recadapt.config import validate_config
from recadapt.models import content
from recadapt.train.loop import train_run


@pytest.fixture
def cyclic_with_titles(cyclic_writer, tmp_path: Path) -> tuple[Path, Path]:
    inter = cyclic_writer(tmp_path / "cyclic.csv")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,kind\n" + "".join(
        f"i{i},title of item {i},kind {i % 3}\n" for i in range(1, 31)), encoding="utf-8")
    return inter, items


def _config(inter: Path, items: Path, cache_dir: Path, model: dict) -> object:
    return validate_config({
        "data": {"source": str(inter), "item_path": str(items), "max_seq_len": 10},
        "encoders": [{"name": "title", "model": "fake-a", "fields": ["title"]},
                     {"name": "kind", "model": "fake-b", "fields": ["title", "kind"]}],
        "cache": {"dir": str(cache_dir), "dtype": "fp32", "shard_items": 8},
        "model": model,
        "train": {"epochs": 25, "batch_size": 16, "lr": 0.005, "patience": 25,
                  "num_threads": 1},
        "eval": {"ks": [5, 10]},
    })


@pytest.fixture
def fake_encoders(monkeypatch, fake_encoder):
    calls = {"encoded": 0}

    def load(run, needed=None, model_name="", reuse=False):
        encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
        for encoder in encoders:
            original = encoder.hidden_states

            def counted(inputs, layers=None, _original=original):
                calls["encoded"] += len(inputs["ids"])
                return _original(inputs, layers)

            encoder.hidden_states = counted
        return encoders[:needed] if needed else encoders

    monkeypatch.setattr(content, "load_encoders", load)
    return calls


def test_cached_iisan_beats_popularity_and_reuses_its_cache(cyclic_with_titles, tmp_path,
                                                            fake_encoders) -> None:
    inter, items = cyclic_with_titles
    cache_dir = tmp_path / "cache"
    iisan = train_run(_config(inter, items, cache_dir,
                              {"name": "iisan", "hidden_size": 32, "adapter_size": 16}),
                      tmp_path / "iisan", progress=False)
    assert fake_encoders["encoded"] == 2 * 30  # every item once per encoder, then cached
    popularity = train_run(_config(inter, items, cache_dir, {"name": "popularity"}),
                           tmp_path / "pop", progress=False)
    assert iisan.metrics["test"]["NDCG@10"] > popularity.metrics["test"]["NDCG@10"] + 0.2
    assert iisan.efficiency["trainable_params"] > 0
    # the storage cost of caching: both encoders' cache folders, byte for byte
    on_disk = sum(f.stat().st_size for f in cache_dir.rglob("*") if f.is_file())
    assert iisan.efficiency["cache_bytes"] == on_disk > 0
    assert "cache_bytes" not in popularity.efficiency
    # a second run (and `recommend`, `evaluate`) opens the caches without encoding
    train_run(_config(inter, items, cache_dir, {"name": "frozen", "hidden_size": 32}),
              tmp_path / "frozen", progress=False)
    assert len(list(cache_dir.iterdir())) == 2  # frozen's layer 4 is read from iisan's 0,2,4
    before = fake_encoders["encoded"]
    train_run(_config(inter, items, cache_dir,
                      {"name": "iisan", "hidden_size": 32, "adapter_size": 16}),
              tmp_path / "iisan2", progress=False)
    assert fake_encoders["encoded"] == before


def test_cache_build_refuses_models_that_cannot_be_cached(cyclic_with_titles, tmp_path) -> None:
    from recadapt.errors import ConfigError
    from recadapt.models.content import build_state_caches

    inter, items = cyclic_with_titles
    for name, message in (("lora", "cannot be cached"), ("sasrec", "nothing to cache")):
        with pytest.raises(ConfigError, match=message):
            build_state_caches(_config(inter, items, tmp_path, {"name": name}))
