"""Frozen encoders whose weights load only when they must run.

A cache key needs the encoder's :class:`EncoderInfo` (source, revision, layer widths, pooling,
settings), and the info used to come from loading the model and probing it. For a 7B LLM that
is minutes and tens of gigabytes spent on every run whose state caches are already complete.

So each time an encoder is loaded for a cacheable model, its info is written to a small *info
memo* under the cache root (``<cache.dir>/.encoder-info/<digest>.json``), keyed by everything
that determines it: the resolved source and its revision (package version, HF commit, or the
folder fingerprint), the encoder spec (minus the item fields it reads and its batch size), and
the versions of recadapt, transformers and torch. The next run finds the memo and gets a
:class:`LazyEncoder` carrying that info: opening a complete cache never touches the weights;
anything that must run the model (a missing shard, a live forward, a new item at serving time)
loads it then, and checks that the loaded model reports the same info.

An ``hf:`` model whose commit cannot be read (``revision`` ``unknown``) is never memoised:
nothing would tell a stale memo apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from recadapt.config import EncoderSpec
from recadapt.encoders.base import EncoderInfo, FrozenEncoder
from recadapt.errors import RecAdaptError
from recadapt.io import canonical_json, write_json

#: the folder under the cache root that holds the info memos
MEMO_DIR = ".encoder-info"
#: spec fields that do not change what the encoder computes for a given content
_NOT_IN_MEMO = {"name", "fields", "template", "batch_size"}


def same_info(a: EncoderInfo, b: EncoderInfo) -> bool:
    """Equal as the cache key sees them (JSON: tuples and lists compare equal)."""
    return canonical_json(a.as_dict()) == canonical_json(b.as_dict())


def memo_path(root: str | os.PathLike[str], spec: EncoderSpec,
              position: int | None = None) -> Path | None:
    """Where ``spec``'s info memo lives under the cache ``root``, or ``None`` when the model's
    revision cannot be pinned (then it is always loaded)."""
    import transformers

    from recadapt import __version__
    from recadapt.encoders import _config, _key, _revision, resolve_source

    key = _key(spec, position, "model")
    resolved = resolve_source(spec.model, key)
    revision = resolved.revision or _revision(resolved, _config(resolved, key))
    if not revision or revision == "unknown":
        return None
    identity = {
        "source": resolved.source, "revision": revision,
        "spec": spec.model_dump(exclude=_NOT_IN_MEMO),
        "versions": {"recadapt": __version__, "transformers": transformers.__version__,
                     "torch": torch.__version__.split("+")[0]},
    }
    digest = hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()
    return Path(root).expanduser() / MEMO_DIR / f"{digest[:32]}.json"


def read_memo(path: Path) -> EncoderInfo | None:
    """The memoised info, or ``None`` when the file is missing or unreadable (then the encoder
    is loaded and the memo rewritten)."""
    try:
        return EncoderInfo.from_dict(json.loads(path.read_text(encoding="utf-8"))["info"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_memo(path: Path, spec: EncoderSpec, info: EncoderInfo) -> None:
    """Atomically: a reader sees the old memo or the new one."""
    write_json(path, {"model": spec.model, "info": info.as_dict()})


class LazyEncoder(FrozenEncoder):
    """A frozen encoder known by its memoised :class:`EncoderInfo`; the model itself loads on
    the first call that needs it (``prepare``, ``hidden_states``, ``encode``, ``backbone`` or any
    attribute of the real encoder; every method of the :class:`FrozenEncoder` contract is the
    real encoder's). ``.to()`` calls made before that are replayed on it."""

    def __init__(self, spec: EncoderSpec, info: EncoderInfo, memo: Path,
                 position: int | None = None) -> None:
        super().__init__()
        self.info = info
        self.inner: FrozenEncoder | None = None
        self._spec, self._memo, self._position = spec, memo, position
        self._pending: list[tuple[Callable[..., Any], tuple, dict]] = []

    @property
    def loaded(self) -> bool:
        return self.inner is not None

    def load(self) -> FrozenEncoder:
        """The real encoder (loaded once); refuses one whose info differs from the memo's."""
        if self.inner is None:
            from recadapt.encoders import load_encoder

            real = load_encoder(self._spec, position=self._position).freeze()
            if not same_info(real.info, self.info):
                raise RecAdaptError(
                    f"{self._memo}: this encoder info memo no longer matches "
                    f"{self.info.source} as loaded now; delete the file and rerun"
                )
            for fn, args, kwargs in self._pending:
                real._apply(fn, *args, **kwargs)
            self._pending.clear()
            self.inner = real
        return self.inner

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        if self.inner is None:
            self._pending.append((fn, args, kwargs))
        return super()._apply(fn, *args, **kwargs)

    def freeze(self) -> LazyEncoder:
        if self.inner is not None:
            self.inner.freeze()
        return self.eval()

    @property
    def device(self) -> torch.device:
        return self.load().device

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        return self.load().prepare(contents)

    def hidden_states(self, inputs: dict[str, torch.Tensor],
                      layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        return self.load().hidden_states(inputs, layers)

    def _forward(self, inputs: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        return self.load()._forward(inputs)

    def pool(self, state: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.load().pool(state, inputs)

    def probe_dims(self, sample: Any) -> list[int]:
        return self.load().probe_dims(sample)

    def backbone(self) -> torch.nn.Module:
        return self.load().backbone()

    def batch_order(self, contents: Sequence[Any]) -> list[int] | None:
        return self.load().batch_order(contents)

    def encode(self, contents: Sequence[Any], layers: Sequence[int] | None = None,
               batch_size: int = 32, progress: bool = False,
               desc: str = "encoding") -> list[torch.Tensor]:
        return self.load().encode(contents, layers, batch_size, progress, desc)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or name == "inner":
                raise
            return getattr(self.load(), name)


def load_encoder_memoized(spec: EncoderSpec, root: str | os.PathLike[str],
                          position: int | None = None) -> FrozenEncoder:
    """A :class:`LazyEncoder` when ``root`` holds this model's info memo; otherwise the loaded
    encoder, whose info is memoised for the next run."""
    from recadapt.encoders import load_encoder

    path = memo_path(root, spec, position)
    info = read_memo(path) if path is not None else None
    if path is not None and info is not None:
        return LazyEncoder(spec, info, path, position)
    encoder = load_encoder(spec, position=position)
    if path is not None:
        write_memo(path, spec, encoder.info)
    return encoder
