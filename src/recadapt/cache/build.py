"""Building a cache folder: shards encoded and written atomically (the unit of resumption),
merged into one memory-mappable ``.npy`` per layer, several processes under ``accelerate
launch`` (layout and reading: :mod:`recadapt.cache.store`)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch

from recadapt import __version__
from recadapt.encoders.base import FrozenEncoder
from recadapt.errors import RecAdaptError
from recadapt.io import atomic_write, write_json, write_text
from recadapt.progress import progress_bar, tqdm

if TYPE_CHECKING:
    from recadapt.config import CacheConfig

from recadapt.cache.keys import (
    DTYPES,
    FORMAT,
    cache_key,
    cache_path,
    check_layers_or_error,
    content_fingerprint,
    key_difference,
    key_digest,
)
from recadapt.cache.store import (
    CHECKSUM_SUFFIX,
    MANIFEST,
    SHARDS,
    StateCache,
    _check_key,
    _layer_file,
    _read_manifest,
    _shard_done,
    _shard_file,
    file_sha256,
    find_superset,
)

_FP16_MAX = float(np.finfo(np.float16).max)



def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _start(path: Path, key: dict[str, Any], shard_items: int) -> dict[str, Any]:
    """The manifest of the build in ``path``: the existing one when it is the same job
    (resume), a new ``complete: false`` one when the folder is new; never overwrite another."""
    if (path / MANIFEST).is_file():
        manifest = _read_manifest(path)
        diff = key_difference(manifest["key"], key)
        if diff is not None:
            raise RecAdaptError(f"cache folder {path} holds another cache: it {diff}; refusing "
                                "to overwrite it: delete it or point cache.dir elsewhere")
        return manifest
    if path.exists():
        # Only our own traces may be there: a manifest being written by a concurrent process.
        foreign = [p.name for p in path.iterdir()
                   if p.name != SHARDS and not p.name.startswith(f".{MANIFEST}.")]
        if foreign:
            raise RecAdaptError(f"{path} exists and is not a recadapt cache (no {MANIFEST}); "
                                "refusing to write into it: point cache.dir elsewhere")
    num_items = key["contents"]["items"]
    manifest = {
        "format": FORMAT,
        "complete": False,
        "digest": key_digest(key),
        "key": key,
        "num_items": num_items,
        "layers": key["layers"],
        "layer_dims": {str(i): key["encoder"]["layer_dims"][i] for i in key["layers"]},
        "dtype": key["dtype"],
        "shard_items": shard_items,
        "num_shards": -(-num_items // shard_items),
        "files": {str(i): _layer_file(i) for i in key["layers"]},
        "created_at": _now(),
        "built_at": None,
        "recadapt_version": __version__,
    }
    (path / SHARDS).mkdir(parents=True, exist_ok=True)
    write_json(path / MANIFEST, manifest)
    return manifest


def _to_storage(state: torch.Tensor, dtype: str, layer: int, begin: int, path: Path) -> np.ndarray:
    """Cast one layer's states to the storage dtype, refusing NaN/inf and fp16 overflow (LLM
    hidden states have outliers in the thousands and beyond; fp16 tops out at 65504)."""
    array = state.detach().to("cpu", torch.float32).numpy()
    finite = np.isfinite(array)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise RecAdaptError(f"the encoder produced NaN/inf states at layer {layer} for item "
                            f"{begin + row}; check the encoder and its inputs")
    with np.errstate(over="ignore"):
        stored = array.astype(DTYPES[dtype])
    if not np.isfinite(stored).all():
        peak = float(np.abs(array).max())
        raise RecAdaptError(
            f"layer {layer} states reach {peak:.4g} (items from {begin}), beyond the fp16 range "
            f"±{_FP16_MAX:g}; store them as fp32: set `cache.dtype: fp32` (the partial fp16 "
            f"cache {path} can be deleted)"
        )
    return stored


def _encode_shards(
    encoder: FrozenEncoder,
    items: list[Any],
    path: Path,
    manifest: dict[str, Any],
    batch_size: int,
    progress: bool,
    desc: str,
    shard_filter: Callable[[int], bool] | None,
    device: str | torch.device | None = None,
) -> None:
    layers = manifest["layers"]
    size, num_items = manifest["shard_items"], manifest["num_items"]
    wanted = [s for s in range(manifest["num_shards"]) if shard_filter is None or shard_filter(s)]

    def span(shard: int) -> tuple[int, int]:
        return shard * size, min(num_items, (shard + 1) * size)

    _drop_damaged_shards(path, wanted, layers)
    todo = [s for s in wanted if not _shard_done(path, s, layers)]
    total = sum(e - b for b, e in map(span, wanted))
    remaining = sum(e - b for b, e in map(span, todo))
    if not todo:
        return
    bar = progress_bar(total=total, initial=total - remaining, desc=desc, unit="item",
               disable=not progress, dynamic_ncols=True)
    try:
        with on_device(encoder, device):
            _encode_todo(encoder, items, path, manifest, batch_size, todo, span, bar)
    finally:
        bar.close()


@contextlib.contextmanager
def on_device(encoder: FrozenEncoder, device: str | torch.device | None):
    """Run the ``with`` block with ``encoder`` on ``device`` (None: where it is), then move it
    back where it was, so a cache built on a GPU leaves the encoder as the caller had it."""
    target = torch.device(device) if device is not None else None
    before = encoder.device
    if target is None or target == before:
        yield encoder
        return
    encoder.to(target)
    try:
        yield encoder
    finally:
        encoder.to(before)
        if target.type == "cuda":
            torch.cuda.empty_cache()


def _encode_todo(encoder: FrozenEncoder, items: list[Any], path: Path, manifest: dict[str, Any],
                 batch_size: int, todo: list[int], span: Callable[[int], tuple[int, int]],
                 bar: Any) -> None:
    layers, dtype = manifest["layers"], manifest["dtype"]
    for shard in todo:
        begin, end = span(shard)
        states = encoder.encode(items[begin:end], layers=layers, batch_size=batch_size,
                                progress=False)
        if len(states) != len(layers):
            raise ValueError(f"{encoder.info.source}: encode returned {len(states)} layers "
                             f"for {len(layers)} requested")
        arrays = []
        for layer, state in zip(layers, states, strict=True):
            expected = (end - begin, manifest["layer_dims"][str(layer)])
            if tuple(state.shape) != expected:
                raise ValueError(f"{encoder.info.source}: layer {layer} states have shape "
                                 f"{tuple(state.shape)}, expected {expected}")
            arrays.append(_to_storage(state, dtype, layer, begin, path))
        for layer, array in zip(layers, arrays, strict=True):
            file = path / _shard_file(shard, layer)
            atomic_write(file, functools.partial(_save_npy, array=array))
            write_text(file.with_name(file.name + CHECKSUM_SUFFIX), file_sha256(file))
        bar.update(end - begin)


def _drop_damaged_shards(path: Path, shards: Sequence[int], layers: Sequence[int]) -> None:
    """Delete every shard file (of ``shards``) that does not match its checksum, so the build
    encodes just those items again; a shard is small, so checking all of them is cheap."""
    for shard in shards:
        for layer in layers:
            file = path / _shard_file(shard, layer)
            recorded = file.with_name(file.name + CHECKSUM_SUFFIX)
            if not (file.is_file() and recorded.is_file()):
                continue
            if file_sha256(file) != recorded.read_text(encoding="utf-8").strip():
                tqdm.write(f"cache {path}: {_shard_file(shard, layer)} does not match its "
                           "checksum; encoding its items again", file=sys.stderr)
                file.unlink()
                recorded.unlink()


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    # A file object, not a name: np.save would append ".npy" to the temp name.
    with open(tmp, "wb") as handle:
        np.save(handle, array)


def _merge_layer(tmp: Path, path: Path, manifest: dict[str, Any], layer: int) -> None:
    """Stream one layer's shards into a single ``.npy`` through a memory map (no full copy
    in RAM)."""
    num_items, size = manifest["num_items"], manifest["shard_items"]
    dim = manifest["layer_dims"][str(layer)]
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPES[manifest["dtype"]],
                                    shape=(num_items, dim))
    for shard in range(manifest["num_shards"]):
        begin, end = shard * size, min(num_items, (shard + 1) * size)
        part = np.load(path / _shard_file(shard, layer), mmap_mode="r")
        if part.shape != (end - begin, dim) or part.dtype != out.dtype:
            raise RecAdaptError(f"cache {path}: {_shard_file(shard, layer)} holds "
                                f"{part.shape} {part.dtype}, expected {(end - begin, dim)} "
                                f"{out.dtype}; delete that file and rerun the build")
        out[begin:end] = part
        del part
    out.flush()
    del out


def finalize_cache(
    path: str | os.PathLike[str], expected_key: dict[str, Any] | None = None
) -> StateCache:
    """Merge the shards of a fully built folder into one file per layer, mark it complete.

    Idempotent and resumable: a layer already merged is skipped, so a crash while finalising
    only costs the layer being merged. With several builder processes, call this on one of
    them after all have finished their shards.
    """
    path = Path(path).expanduser()
    manifest = _read_manifest(path)
    _check_key(path, manifest, expected_key)
    if manifest.get("complete"):
        return StateCache.open(path, expected_key)
    layers, num_shards = manifest["layers"], manifest["num_shards"]
    missing = [s for s in range(num_shards) if not _shard_done(path, s, layers)]
    if missing:
        raise RecAdaptError(
            f"cache {path}: {len(missing)} of {num_shards} shards are not built yet (first: "
            f"{missing[0]}); run the build again over every shard to finish it"
        )
    checksums = {}
    for layer in layers:
        target = path / _layer_file(layer)
        if not target.is_file():
            atomic_write(target, functools.partial(_merge_layer, path=path, manifest=manifest,
                                                   layer=layer))
        checksums[target.name] = {"bytes": target.stat().st_size, "sha256": file_sha256(target)}
        for shard in range(num_shards):
            (path / _shard_file(shard, layer)).unlink(missing_ok=True)
            (path / (_shard_file(shard, layer) + CHECKSUM_SUFFIX)).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty (a stray temp file) or gone: harmless
        (path / SHARDS).rmdir()
    manifest.update(complete=True, built_at=_now(), checksums=checksums)
    write_json(path / MANIFEST, manifest)
    return StateCache.open(path, expected_key)


@overload
def build_cache(
    encoder: FrozenEncoder, contents: Sequence[Any], layers: Sequence[int] | None,
    root: str | os.PathLike[str], dtype: str = ..., shard_items: int = ...,
    batch_size: int = ..., progress: bool = ..., name: str = ..., *,
    shard_filter: Callable[[int], bool] | None = ..., finalize: Literal[True] = ...,
    device: str | torch.device | None = ...,
) -> StateCache: ...


@overload
def build_cache(
    encoder: FrozenEncoder, contents: Sequence[Any], layers: Sequence[int] | None,
    root: str | os.PathLike[str], dtype: str = ..., shard_items: int = ...,
    batch_size: int = ..., progress: bool = ..., name: str = ..., *,
    shard_filter: Callable[[int], bool] | None = ..., finalize: Literal[False],
    device: str | torch.device | None = ...,
) -> Path: ...


def build_cache(
    encoder: FrozenEncoder,
    contents: Sequence[Any],
    layers: Sequence[int] | None,
    root: str | os.PathLike[str],
    dtype: str = "fp16",
    shard_items: int = 2048,
    batch_size: int = 32,
    progress: bool = True,
    name: str = "",
    *,
    shard_filter: Callable[[int], bool] | None = None,
    finalize: bool = True,
    device: str | torch.device | None = None,
) -> StateCache | Path:
    """Encode ``contents`` once and store the states of ``layers`` (``None``: all) under
    ``root``; reuse the folder when it already holds this exact job.

    A complete folder with the same key is opened without encoding anything; an incomplete
    one is resumed (only missing shards are encoded, in ``shard_items`` consecutive items
    each, ``shard_items`` taken from the folder's manifest so shard boundaries never move).

    Under ``accelerate launch`` (several processes, every one calling this with the same
    arguments) the items are encoded in parallel: each process builds every N-th shard, the
    main process merges them, and all return the same opened cache. A cache that is already
    complete is opened by each process without any synchronisation.

    Args:
        shard_filter: which shard indices this process encodes (e.g. ``lambda s: s % world ==
            rank``); default all (split across processes under ``accelerate launch``).
        finalize: merge the shards and mark the cache complete. Pass ``False`` on builder
            processes that share a folder; one process then calls :func:`finalize_cache`.
        device: where the encoder runs while shards are encoded (e.g. ``cuda``; None: where
            it is); it is moved back afterwards (:func:`on_device`).

    Returns:
        the opened :class:`StateCache`, or the folder's path when ``finalize`` is False.
    """
    if shard_items < 1:
        raise RecAdaptError(f"cache.shard_items must be at least 1, got {shard_items}")
    if batch_size < 1:
        raise RecAdaptError(f"batch size must be at least 1, got {batch_size}")
    items = list(contents)
    layer_list = check_layers_or_error(encoder.info, layers)
    key = cache_key(encoder.info, layer_list, dtype, content_fingerprint(items), len(items))
    path = cache_path(root, key, name)
    if finalize and shard_filter is None and not (path / MANIFEST).is_file():
        wider = find_superset(root, key)
        if wider is not None:  # e.g. IISAN's layers 0,2,4,6 serve a frozen model's layer 6
            return wider
    state = None if shard_filter is not None or not finalize else _processes()
    if state is not None and not _is_complete(path):
        return _build_in_parallel(state, encoder, items, key, path, shard_items, batch_size,
                                  progress, name, device)
    manifest = _start(path, key, shard_items)
    if not manifest.get("complete"):
        _encode_shards(encoder, items, path, manifest, batch_size, progress,
                       f"caching {name or encoder.info.source}", shard_filter, device)
    if not finalize:
        return path
    return finalize_cache(path, key)


def _processes() -> Any | None:
    """accelerate's process state when several processes run (``accelerate launch``)."""
    from recadapt.distributed import distributed_state

    return distributed_state()


def _is_complete(path: Path) -> bool:
    try:
        return bool(json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def _build_in_parallel(state: Any, encoder: FrozenEncoder, items: list[Any],
                       key: dict[str, Any], path: Path, shard_items: int, batch_size: int,
                       progress: bool, name: str,
                       device: str | torch.device | None = None) -> StateCache:
    """Every process encodes its shards (``s % N == rank``) into the one folder; the main
    process merges them and marks the cache complete; then every process opens it."""
    rank, world = state.process_index, state.num_processes
    with state.main_process_first():  # the main process writes the manifest, the rest read it
        manifest = _start(path, key, shard_items)
    if not manifest.get("complete"):
        _encode_shards(encoder, items, path, manifest, batch_size,
                       progress and state.is_local_main_process,
                       f"caching {name or encoder.info.source} (process {rank + 1}/{world})",
                       lambda shard: shard % world == rank, device)
    state.wait_for_everyone()  # every shard is on disk
    with state.main_process_first():  # the main process merges, the others open the result
        return finalize_cache(path, key)


def open_or_build(
    encoder: FrozenEncoder,
    contents: Sequence[Any],
    layers: Sequence[int] | None,
    config: CacheConfig,
    *,
    batch_size: int = 32,
    progress: bool = True,
    name: str = "",
) -> StateCache:
    """:func:`build_cache` with root, dtype, shard size and encoding device from a
    :class:`recadapt.config.CacheConfig` (``cache`` section): the one call a pipeline makes."""
    from recadapt.distributed import compute_device

    return build_cache(encoder, contents, layers, Path(config.dir), dtype=config.dtype,
                       shard_items=config.shard_items, batch_size=batch_size, progress=progress,
                       name=name, device=compute_device(config.device))
