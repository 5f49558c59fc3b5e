"""Where content models get item states from: the cache, or the frozen encoder run live.

A content model reads, per modality, the pooled states of some layers of a frozen encoder for
the items of a batch. :class:`CachedStates` gathers them from tensors loaded out of the
on-disk cache (``recadapt.cache``); :class:`LiveStates` runs the encoder on the items' contents
at every step (IISAN "uncached", and the embedded-PEFT baselines whose backbone trains). Both
answer the same call, so a model is cached or not by configuration alone.

:class:`ContentRecommender` is the base every content model uses to build itself from a run
config: load the encoders, pick the layers it reads, then open (or build) the caches or wire the
live encoders. ``recadapt cache build`` calls the same :func:`build_state_caches`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import torch
from pydantic import BaseModel
from torch import nn

from recadapt.errors import ConfigError, DataError, RecAdaptError
from recadapt.models.sequential import SASRecEncoderConfig, SequentialRecommender
from recadapt.nn.sequence import SASRecEncoder

if TYPE_CHECKING:
    from recadapt.cache import StateCache
    from recadapt.config import RunConfig
    from recadapt.data.dataset import Dataset
    from recadapt.encoders.base import EncoderInfo, FrozenEncoder


class CachedStates(nn.Module):
    """Per-layer states of every item, held as non-persistent buffers (they move with the
    model but stay out of checkpoints); row 0 is the padding item (zeros).

    ``encoder`` (the frozen encoder the cache was built with, kept outside the module tree)
    lets :meth:`append` encode items added after training."""

    def __init__(self, states: Sequence[torch.Tensor], layers: Sequence[int],
                 encoder: FrozenEncoder | None = None, cache_bytes: int | None = None) -> None:
        super().__init__()
        self.layers = list(layers)
        self.cache_bytes = cache_bytes  # the cache folder on disk (efficiency.json)
        self._encoder = (encoder,) if encoder is not None else ()
        for layer, table in zip(self.layers, states, strict=True):
            padded = torch.cat([torch.zeros_like(table[:1]), table])
            self.register_buffer(f"layer_{layer}", padded, persistent=False)

    @property
    def backbone_encoder(self) -> FrozenEncoder:
        if not self._encoder:
            raise RecAdaptError("these cached states were loaded without their encoder, so "
                                "new items cannot be encoded")
        return self._encoder[0]

    def forward(self, item_ids: torch.Tensor) -> list[torch.Tensor]:
        return [getattr(self, f"layer_{layer}")[item_ids].float() for layer in self.layers]

    def append(self, contents: Sequence[Any]) -> None:
        """Encode new items and add their states after the last row (rounded to the cache's
        dtype, exactly as the cache stored the catalogue's)."""
        states = self.backbone_encoder.encode(list(contents), self.layers)
        for layer, new in zip(self.layers, states, strict=True):
            table = getattr(self, f"layer_{layer}")
            setattr(self, f"layer_{layer}", torch.cat([table, new.to(table)]))


class LiveStates(nn.Module):
    """Runs an encoder on the items' contents at every call.

    A frozen encoder is kept *outside* the module tree (not in ``parameters()`` or
    checkpoints, always in eval mode, run under ``no_grad``) but still follows ``.to()``; a
    trainable one (embedded PEFT) is a regular submodule, saved with the model.
    """

    def __init__(self, encoder: FrozenEncoder, contents: Sequence[Any], layers: Sequence[int],
                 batch_size: int = 32, trainable: bool = False) -> None:
        super().__init__()
        self.layers = list(layers)
        self.contents = list(contents)  # items 1..num_items
        self.batch_size = batch_size
        self.trainable = trainable
        if trainable:
            self.encoder = encoder
        else:
            self._frozen = (encoder.freeze(),)

    @property
    def backbone_encoder(self) -> FrozenEncoder:
        return self.encoder if self.trainable else self._frozen[0]

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        if not self.trainable:
            self._frozen[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def append(self, contents: Sequence[Any]) -> None:
        """New items are encoded like the others, live at every call."""
        self.contents = [*self.contents, *contents]

    def forward(self, item_ids: torch.Tensor) -> list[torch.Tensor]:
        encoder = self.backbone_encoder
        real = (item_ids > 0).nonzero(as_tuple=True)[0]
        ids = item_ids[real].tolist()
        dims = [encoder.info.layer_dims[layer] for layer in self.layers]
        parts: list[list[torch.Tensor]] = [[] for _ in self.layers]
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            for begin in range(0, len(ids), self.batch_size):
                chunk = [self.contents[i - 1] for i in ids[begin:begin + self.batch_size]]
                inputs = {k: v.to(item_ids.device) for k, v in encoder.prepare(chunk).items()}
                for slot, state in enumerate(encoder.hidden_states(inputs, self.layers)):
                    parts[slot].append(state.float())
        out = []
        for slot, dim in enumerate(dims):
            full = torch.zeros(len(item_ids), dim, device=item_ids.device)
            if parts[slot]:
                full = full.index_put((real,), torch.cat(parts[slot]))
            out.append(full)
        return out


#: frozen encoders already loaded in this process, by their spec (see :func:`load_encoders`)
_LOADED: dict[str, FrozenEncoder] = {}
_LOADED_MAX = 8


def load_encoders(run: RunConfig, needed: int | None = None,
                  model_name: str = "", reuse: bool = False) -> list[FrozenEncoder]:
    """The run's encoders, in config order; ``needed`` checks how many the model reads.

    ``reuse``: for models that never modify their encoders (frozen, side-adapter models), an
    encoder loaded earlier in this process for the same spec is returned again instead of
    being reloaded — benchmarks train many such models in one process — and an encoder whose
    info is memoised under the cache root is not loaded at all until it must run
    (:mod:`recadapt.encoders.lazy`: a run whose caches are complete never reads the weights).
    Models that fine-tune the backbone always get a fresh copy."""
    from recadapt.encoders import load_encoder
    from recadapt.encoders.lazy import load_encoder_memoized

    def load(position: int, spec: Any) -> FrozenEncoder:
        if not reuse:
            return load_encoder(spec, position=position)
        key = spec.model_dump_json()
        if key not in _LOADED:
            if len(_LOADED) >= _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = load_encoder_memoized(spec, _cache_root(run), position).freeze()
        return _LOADED[key]

    if needed is not None and len(run.encoders) != needed:
        raise ConfigError(
            f"encoders: model {model_name!r} reads exactly {needed} encoder(s), the config lists "
            f"{len(run.encoders)}; add them under `encoders:` (name, model, fields)"
        )
    if not run.encoders:
        raise ConfigError(
            f"encoders: model {model_name!r} needs at least one encoder under `encoders:`"
        )
    return [load(i, spec) for i, spec in enumerate(run.encoders)]


def _cache_root(run: RunConfig) -> Path:
    return Path(run.cache.dir).expanduser()


def contents_for(run: RunConfig, dataset: Dataset, position: int,
                 encoder: FrozenEncoder) -> list[Any]:
    """Item contents for the ``position``-th encoder; relative media paths are resolved
    against the dataset's folder."""
    from recadapt.encoders import item_contents

    source = Path(run.data.source).expanduser()
    base = source if source.is_dir() else source.parent
    return item_contents(dataset, run.encoders[position], encoder.info.modality,
                         base_dir=base, position=position)


def new_item_contents(run: RunConfig, dataset: Dataset, model: ContentRecommender,
                      rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Per-encoder contents of items that are not in the dataset (``rows``: item column →
    value, e.g. ``{"title": ..., "image": "covers/1.jpg"}``), built by the same rules as the
    catalogue's, so equal columns give equal contents; for :meth:`ContentRecommender.add_items`."""
    from recadapt.encoders.contents import rows_contents

    columns = [c for c in dataset.item_features.columns if c != "item_id"]
    for position, row in enumerate(rows):
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise DataError(f"items[{position}].fields: unknown item column {unknown[0]!r}; "
                            f"the dataset's item columns are {columns}")
    table = pd.DataFrame(list(rows), columns=list(dataset.item_features.columns))
    source = Path(run.data.source).expanduser()
    base = source if source.is_dir() else source.parent
    return [rows_contents(table, spec, model.sources[position].backbone_encoder.info.modality,
                          base_dir=base, position=position, text_fields=dataset.text_fields,
                          dataset_name=dataset.name)
            for position, spec in enumerate(run.encoders)]


def open_state_caches(run: RunConfig, dataset: Dataset, encoders: Sequence[FrozenEncoder],
                      layers: Sequence[Sequence[int]], progress: bool = True) -> list[StateCache]:
    """Open each encoder's cache for exactly these contents and layers, building (or
    resuming) it when missing; a cache built for anything else is never reused."""
    from recadapt.cache import build_cache
    from recadapt.distributed import compute_device

    device = compute_device(run.cache.device)
    caches = []
    for position, (spec, encoder, chosen) in enumerate(zip(run.encoders, encoders, layers,
                                                           strict=True)):
        caches.append(build_cache(
            encoder, contents_for(run, dataset, position, encoder), list(chosen),
            _cache_root(run), run.cache.dtype,
            shard_items=run.cache.shard_items, batch_size=spec.batch_size, progress=progress,
            name=f"{dataset.name}-{spec.name}", device=device,
        ))
    return caches


class ContentRecommender(SequentialRecommender):
    """SASRec over item vectors computed from encoder states: the shape of every content model
    (IISAN, frozen backbone, embedded PEFT). Subclasses declare :meth:`select_layers`, build
    their item tower in ``__init__`` and implement ``item_vectors``; ``create`` wires the
    sources (cached when the config says ``cached: true`` and the model is cacheable, live
    otherwise; trainable when not cacheable)."""

    #: how many encoders the model reads (``None``: any number ≥ 1)
    num_encoders: ClassVar[int | None] = None
    #: ``False`` for models whose encoders train (embedded PEFT): their states never stay valid
    cacheable: ClassVar[bool] = True

    def __init__(self, config: SASRecEncoderConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList) -> None:
        encoder = SASRecEncoder(config.hidden_size, config.num_layers, config.num_heads,
                                config.dropout, max_seq_len, config.inner_size)
        super().__init__(config, num_items, encoder)
        self.sources = sources

    @classmethod
    def select_layers(cls, config: BaseModel, infos: Sequence[EncoderInfo]) -> list[list[int]]:
        """The layers read from each encoder (layer 0 = embeddings)."""
        raise NotImplementedError

    @classmethod
    def encoders_and_layers(cls, config: BaseModel, run: RunConfig
                            ) -> tuple[list[FrozenEncoder], list[list[int]]]:
        """The run's encoders, checked against :attr:`num_encoders`, and the layers read."""
        encoders = load_encoders(run, cls.num_encoders, cls.name, reuse=cls.cacheable)
        return encoders, cls.select_layers(config, [encoder.info for encoder in encoders])

    @classmethod
    def state_sources(cls, config: BaseModel, dataset: Dataset, run: RunConfig,
                      cached: bool, trainable: bool = False,
                      progress: bool = True) -> tuple[nn.ModuleList, list[EncoderInfo]]:
        encoders, layers = cls.encoders_and_layers(config, run)
        if cached:
            caches = open_state_caches(run, dataset, encoders, layers, progress)
            dtype = torch.float16 if run.cache.dtype == "fp16" else torch.float32
            sources = [CachedStates(cache.load(chosen, dtype=dtype), chosen, encoder,
                                    cache.nbytes)
                       for cache, chosen, encoder in zip(caches, layers, encoders, strict=True)]
        else:
            sources = [
                LiveStates(encoder, contents_for(run, dataset, position, encoder), chosen,
                           spec.batch_size, trainable)
                for position, (spec, encoder, chosen) in enumerate(
                    zip(run.encoders, encoders, layers, strict=True))
            ]
        return nn.ModuleList(sources), [encoder.info for encoder in encoders]

    @classmethod
    def create(cls, config: SASRecEncoderConfig, dataset: Dataset,  # type: ignore[override]
               run: RunConfig) -> ContentRecommender:
        cached = cls.cacheable and bool(getattr(config, "cached", False))
        sources, infos = cls.state_sources(config, dataset, run, cached=cached,
                                           trainable=not cls.cacheable)
        return cls(config, dataset.num_items, run.data.max_seq_len, sources, infos)

    @torch.no_grad()
    def add_items(self, contents: Sequence[Sequence[Any]]) -> torch.Tensor:
        """Content towers embed unseen items: each source encodes its contents through the
        frozen encoder (or appends them to its live list), the catalogue grows, and the new
        items' vectors come from the trained tower like every other item's."""
        if len(contents) != len(self.sources):
            raise RecAdaptError(f"add_items: give contents for each of the model's "
                                f"{len(self.sources)} encoders, got {len(contents)}")
        count = len(contents[0])
        if any(len(part) != count for part in contents):
            raise RecAdaptError("add_items: every encoder needs the same number of contents")
        for source, part in zip(self.sources, contents, strict=True):
            source.append(part)
        first = self.num_items + 1
        self.num_items += count
        unseen = self.log_popularity.min().expand(count)  # never trained on: least popular
        self.log_popularity = torch.cat([self.log_popularity, unseen])
        self._item_table = None
        ids = torch.arange(first, self.num_items + 1, device=self.log_popularity.device)
        return self.item_vectors(ids)


class LastLayerFusion(nn.Module):
    """Each encoder's last-layer state, layer-normalised, concatenated and mapped linearly to
    the item vector: the item tower of the frozen-backbone and embedded-PEFT models."""

    def __init__(self, infos: Sequence[EncoderInfo], hidden_size: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(info.dim) for info in infos)
        self.fusion = nn.Linear(sum(info.dim for info in infos), hidden_size)

    def forward(self, sources: nn.ModuleList, item_ids: torch.Tensor) -> torch.Tensor:
        parts = [norm(source(item_ids)[0]) for norm, source in zip(self.norms, sources,
                                                                     strict=True)]
        return self.fusion(torch.cat(parts, dim=-1))


def build_state_caches(run: RunConfig, progress: bool = True) -> list[StateCache]:
    """``recadapt cache build``: the caches the configured model will read, built ahead."""
    from recadapt.data.load import load_dataset
    from recadapt.models.registry import get_model, model_config

    entry = get_model(run.model["name"])
    model_class = entry.model_class
    if not issubclass(model_class, ContentRecommender):
        raise ConfigError(
            f"model.name: {run.model['name']!r} reads no encoder states, so there is nothing to "
            "cache; choose a content model such as iisan or frozen"
        )
    if not model_class.cacheable:
        raise ConfigError(
            f"model.name: {run.model['name']!r} fine-tunes its encoders inside the training graph, "
            "so their states change at every step and cannot be cached; train it directly"
        )
    config = model_config(run)
    dataset = load_dataset(run.data)  # the splits do not change the catalogue
    encoders, layers = model_class.encoders_and_layers(config, run)
    return open_state_caches(run, dataset, encoders, layers, progress)
