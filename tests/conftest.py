"""Shared fixtures: the real datasets of ../shared/data (skipped when absent), a tiny sequential
dataset with a learnable pattern, and configs for it; a toy dataset with feature columns."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recadapt.config import RunConfig, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
MICROLENS_SAMPLES = ("1002", "10034", "10040")


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


@pytest.fixture(scope="session")
def microlens_sample() -> Path:
    """The folder of the three real MicroLens MP4s (HEVC + AAC), or skip."""
    folder = shared_data_dir() / "microlens_sample"
    if not all((folder / f"{n}.mp4").is_file() for n in MICROLENS_SAMPLES):
        pytest.skip(f"real data {folder} is absent (set RECADAPT_SHARED_DATA to its folder)")
    return folder


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


PLANTED_WORDS = ["apple", "river", "garden", "candle", "forest", "violin", "harbor", "meadow"]


def write_planted_titles(folder: Path, users: int = 20, per_user: int = 8, seed: int = 0) -> Path:
    """CTR data whose labels the item *title* decides: "sunny X" items are rated 5 by
    everyone, "rainy X" items 1 (16 items; ``inter.csv`` + ``items.csv`` in ``folder``), a
    pattern only a model that reads the text can learn from few samples."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(users):
        for step, item in enumerate(rng.choice(16, size=per_user, replace=False)):
            rows.append(f"u{user},i{item},{step * 100 + user},{5 if item % 2 else 1}")
    (folder / "inter.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    items = ["item_id,title"] + [f"i{k},{'sunny' if k % 2 else 'rainy'} {PLANTED_WORDS[k % 8]}"
                                 for k in range(16)]
    (folder / "items.csv").write_text("\n".join(items) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def planted_titles_writer():
    """``write_planted_titles`` for module-scoped fixtures (test modules cannot import
    conftest)."""
    return write_planted_titles


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


class FakeEncoder:
    """Factory namespace for a tiny deterministic :class:`FrozenEncoder` used by model tests:
    each content string hashes to a fixed random embedding (layer 0), and every block is a
    small ``tanh(Linear)``, so states differ per item and per layer without any download."""

    @staticmethod
    def make(num_layers: int = 4, dim: int = 8, name: str = "fake", seed: int = 0):
        import zlib

        import torch
        from torch import nn

        from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers

        class _Fake(FrozenEncoder):
            def __init__(self) -> None:
                super().__init__()
                generator = torch.Generator().manual_seed(seed)
                self.embed = nn.Embedding(4099, dim)
                nn.init.normal_(self.embed.weight, generator=generator)
                self.blocks = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))
                self.info = EncoderInfo(f"test:{name}", "1", "text", num_layers,
                                        (dim,) * (num_layers + 1), "mean", {"seed": seed})
                self.freeze()

            def prepare(self, contents):
                codes = [zlib.crc32(str(c).encode()) % 4099 for c in contents]
                return {"ids": torch.tensor(codes, dtype=torch.long)}

            def hidden_states(self, inputs, layers=None):
                layers = check_layers(layers, num_layers)
                states = [self.embed(inputs["ids"])]
                for block in self.blocks:
                    states.append(torch.tanh(block(states[-1])))
                return [states[i] for i in layers]

            def backbone(self):
                return self

        return _Fake()


@pytest.fixture
def fake_encoder():
    return FakeEncoder.make


@pytest.fixture(scope="session")
def fake_encoder_factory():
    """``FakeEncoder.make`` for fixtures of wider scope (a module-scoped trained run)."""
    return FakeEncoder.make


class ContentModels:
    """Build content models (IISAN, CROSSAN, IISAN-E, ...) over fake encoders without a dataset:
    ``NUM_ITEMS`` items whose contents are short strings, cached or live state sources."""

    NUM_ITEMS = 12
    CONTENTS = tuple(f"item number {i}" for i in range(1, NUM_ITEMS + 1))

    @staticmethod
    def batch():
        """Three left-padded training histories with next-item targets."""
        import torch

        history = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 8, 9]])
        target = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 9, 10]])
        return {"history": history, "target": target, "user": torch.arange(3)}

    @classmethod
    def build(cls, model_class, config, encoders, cached: bool):
        import torch
        from torch import nn

        from recadapt.models.content import CachedStates, LiveStates

        infos = [e.info for e in encoders]
        layers = model_class.select_layers(config, infos)
        if cached:
            sources = [CachedStates(e.encode(list(cls.CONTENTS), chosen), chosen)
                       for e, chosen in zip(encoders, layers, strict=True)]
        else:
            sources = [LiveStates(e, list(cls.CONTENTS), chosen, batch_size=5)
                       for e, chosen in zip(encoders, layers, strict=True)]
        model = model_class(config, cls.NUM_ITEMS, 4, nn.ModuleList(sources), infos)
        model.fit_statistics(torch.arange(cls.NUM_ITEMS + 1).float())
        return model


@pytest.fixture
def content_models():
    return ContentModels


def train_stopped_and_resumed(config: RunConfig, folder: Path, stop_after: int,
                              while_stopped: Callable[[Path], None] | None = None):
    """Train ``config`` straight through and, in a second folder, stopped after epoch
    ``stop_after`` then resumed; check both end with the same weights, metrics and losses.
    ``while_stopped(run_dir)`` inspects the stopped run. Returns ``(straight, resumed)``."""
    import torch
    from safetensors.torch import load_file

    from recadapt.train.loop import train_run

    straight = train_run(config, folder / "straight", progress=False)

    def interrupt(epoch: int, record: dict) -> None:
        if epoch == stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(config, folder / "resumed", progress=False, on_epoch_end=interrupt)
    assert not (folder / "resumed" / "metrics.json").exists()
    if while_stopped is not None:
        while_stopped(folder / "resumed")
    resumed = train_run(config, folder / "resumed", resume=True, progress=False)
    a = load_file(str(folder / "straight" / "model.safetensors"))
    b = load_file(str(folder / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics == straight.metrics
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    return straight, resumed


@pytest.fixture
def stopped_and_resumed():
    """:func:`train_stopped_and_resumed`, for tests in any folder."""
    return train_stopped_and_resumed


def small_feature_dataset():
    """8 users × 8 items; users: gender (one missing), a many-valued age, an ID-like code, an
    empty column; items: '|'-separated genres (one missing), a unique title, a 3-valued year."""
    import pandas as pd

    from recadapt.data.dataset import build_dataset

    inter = pd.DataFrame({"user": list("abcdefgh"), "item": [f"x{i}" for i in range(8)],
                          "timestamp": np.arange(8.0)})
    users = pd.DataFrame({"gender": ["F", "M", "M", None, "F", "F", "M", "F"],
                          "age": [18.0, 25.0, 33.0, 47.0, 51.0, 22.0, 29.0, 60.0],
                          "code": [f"k{i}" for i in range(8)],
                          "empty": [None] * 8}, index=list("abcdefgh"))
    items = pd.DataFrame({"genres": ["Drama|Comedy", "Action", None, "Drama", "Comedy",
                                     "Action|Drama", "Drama", "Comedy"],
                          "title": [f"T{i}" for i in range(8)],
                          "year": ["1990", "1995", "1999"] * 2 + ["1990", "1995"]},
                         index=[f"x{i}" for i in range(8)])
    return build_dataset("toy", inter, item_table=items, user_table=users)


@pytest.fixture
def feature_dataset():
    """:func:`small_feature_dataset`, for the feature-table and CTR-layer tests."""
    return small_feature_dataset


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A folder with a randomly initialised 2-layer Llama (hidden 32) and the packaged SmolLM2
    tokenizer (its chat template and single-token Yes/No): an LLM for fast TALLRec tests whose
    scores mean nothing."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from recadapt.encoders.sources import resolve_source

    folder = tmp_path_factory.mktemp("tiny-llm")
    tokenizer = AutoTokenizer.from_pretrained(resolve_source("smollm2-135m").location)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def alpaca_folder() -> Path:
    """The synthetic Alpaca example of the README (tests/data/alpaca: train 40, valid 12,
    test 12 records, half Yes)."""
    return REPO_ROOT / "tests" / "data" / "alpaca"
