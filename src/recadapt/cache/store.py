"""Content-addressed on-disk store of per-layer item states.

A frozen encoder runs once per item; everything trainable reads its states from here. A cache
is one folder ``<root>/<slug>-<digest[:16]>`` whose name comes from a *key* covering everything
that changes the stored numbers (encoder source, revision, pooling, settings, layers, storage
dtype, and a hash of the item contents), so a changed input can never silently reuse old states.

Layout of a cache folder::

    manifest.json          key, digest, shapes, dtype, shard size, ``complete`` flag, times
    shards/S00000-L012.npy while building: items [0, shard_items) of layer 12 (one .npy per
                           shard and layer, each written atomically: temp name + os.replace)
    L012.npy               once complete: all items of layer 12, [num_items, dim], fp16/fp32

Shards are the unit of resumption: an interrupted build (Ctrl-C, crash, OOM) keeps every shard
already written and encodes only the rest when run again. Finalising concatenates each layer's
shards into one ``.npy`` (streamed through a memory map, then the shards are deleted) so readers
get a single memory-mappable array per layer, and marks ``complete: true`` in the manifest last.
Several processes may build disjoint shards of one folder (``shard_filter``, ``finalize=False``)
and one of them finalises afterwards (:func:`finalize_cache`). Under ``accelerate launch``
:func:`build_cache` does exactly that by itself: process ``r`` of ``N`` encodes the shards
``s % N == r``, the main process merges them into the one cache, and every process opens it
(``recadapt cache build`` and the training that builds a missing cache alike).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recadapt.cache.keys import FORMAT, key_difference
from recadapt.encoders.base import EncoderInfo
from recadapt.errors import RecAdaptError

MANIFEST = "manifest.json"
SHARDS = "shards"
CHECKSUM_SUFFIX = ".sha256"
_REBUILD_HINT = "build it with `recadapt cache build` or point cache.dir elsewhere"
_READ_CHUNK = 1 << 22
#: files whose checksum this process has verified: (path, size, mtime_ns)
_VERIFIED: set[tuple[str, int, int]] = set()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (a layer file can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def damaged(path: Path, file: str, problem: str) -> RecAdaptError:
    """The one-line error for a damaged cache file, with the command that rebuilds it."""
    return RecAdaptError(
        f"cache {path} is damaged: {file} {problem}; delete that folder and rebuild it with "
        "`recadapt cache build --config RUN.yaml` (a training run also builds a missing cache)")


def check_size(folder: Path, file: str, expected: dict[str, Any]) -> os.stat_result:
    """The cheap half of :func:`verify_file`: the file is there with the recorded size."""
    try:
        stat = (folder / file).stat()
    except FileNotFoundError:
        raise damaged(folder, file, "is missing") from None
    if stat.st_size != expected["bytes"]:
        raise damaged(folder, file, f"has {stat.st_size} bytes, the manifest says "
                      f"{expected['bytes']} (truncated or overwritten)")
    return stat


def verify_file(folder: Path, file: str, expected: dict[str, Any]) -> None:
    """Check ``folder/file`` against its manifest entry (``bytes``, ``sha256``): the size at
    every open, the checksum once per process for each version of the file on disk."""
    target = folder / file
    stat = check_size(folder, file, expected)
    seen = (str(target), stat.st_size, stat.st_mtime_ns)
    if seen in _VERIFIED:
        return
    if file_sha256(target) != expected["sha256"]:
        raise damaged(folder, file, "does not match its checksum (bytes changed on disk)")
    _VERIFIED.add(seen)



def _layer_file(layer: int) -> str:
    return f"L{layer:03d}.npy"


def _shard_file(shard: int, layer: int) -> str:
    return f"{SHARDS}/S{shard:05d}-L{layer:03d}.npy"


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise RecAdaptError(f"cache folder {path} does not exist")
    file = path / MANIFEST
    if not file.is_file():
        raise RecAdaptError(
            f"{path} is not a recadapt cache (no {MANIFEST}); build one with `recadapt cache build`"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RecAdaptError(
            f"{file} is damaged (not valid JSON); delete {path} and build the cache again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise RecAdaptError(f"cache {path} has format {found}, this recadapt reads format "
                            f"{FORMAT}; build it again")
    return manifest


def _check_key(path: Path, manifest: dict[str, Any], expected_key: dict[str, Any] | None) -> None:
    if expected_key is None:
        return
    diff = key_difference(manifest["key"], expected_key)
    if diff is not None:
        raise RecAdaptError(f"cache {path} {diff}; {_REBUILD_HINT}")


class StateCache:
    """A complete cache, read through memory maps: nothing is loaded until asked for.

    Attributes:
        path: the cache folder.
        key: what the states were computed from (see :func:`cache_key`); ``digest`` its hash.
        num_items: rows of every layer, in the order of the contents given to the build.
        layers: cached layer indices, ascending.
        layer_dims: ``{layer: width}``.
        dtype: storage precision, ``"fp16"`` or ``"fp32"``.
        nbytes: bytes on disk (manifest included).
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.key: dict[str, Any] = manifest["key"]
        self.digest: str = manifest["digest"]
        self.num_items: int = int(manifest["num_items"])
        self.layers: list[int] = [int(layer) for layer in manifest["layers"]]
        self.layer_dims: dict[int, int] = {
            int(layer): int(dim) for layer, dim in manifest["layer_dims"].items()
        }
        self.dtype: str = manifest["dtype"]
        self.nbytes: int = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        self._maps: dict[int, np.ndarray] = {}

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], expected_key: dict[str, Any] | None = None
    ) -> StateCache:
        """Open a complete cache; refuse one built for another key or not finished building."""
        path = Path(path).expanduser()
        manifest = _read_manifest(path)
        _check_key(path, manifest, expected_key)
        if not manifest.get("complete"):
            built = sum(_shard_done(path, s, manifest["layers"])
                        for s in range(manifest["num_shards"]))
            raise RecAdaptError(
                f"cache {path} is incomplete ({built} of {manifest['num_shards']} shards built); "
                "rerun the build to resume it"
            )
        for layer in manifest["layers"]:  # the checksum waits for the first read (layer())
            check_size(path, _layer_file(layer), manifest["checksums"][_layer_file(layer)])
        return cls(path, manifest)

    @property
    def info(self) -> EncoderInfo:
        """The identity of the encoder that produced the states (what models size layers by)."""
        return EncoderInfo.from_dict(self.key["encoder"])

    def _check_layer(self, layer: int) -> int:
        layer = int(layer)
        if layer not in self.layer_dims:
            raise RecAdaptError(
                f"cache {self.path} holds layers {self.layers}, not layer {layer}; "
                "build a cache with the layers this run needs"
            )
        return layer

    def layer(self, layer: int) -> np.ndarray:
        """All states of one layer, ``[num_items, dim]``, memory-mapped read-only (storage
        dtype): slicing it reads only the rows touched."""
        layer = self._check_layer(layer)
        if layer not in self._maps:
            file = _layer_file(layer)
            verify_file(self.path, file, self.manifest["checksums"][file])
            try:
                array = np.load(self.path / file, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise damaged(self.path, file, f"cannot be read ({err})") from None
            expected = (self.num_items, self.layer_dims[layer])
            if array.shape != expected:
                raise RecAdaptError(f"cache {self.path}: {_layer_file(layer)} has shape "
                                    f"{array.shape}, expected {expected}; build it again")
            self._maps[layer] = array
        return self._maps[layer]

    def rows(self, layer: int, index: np.ndarray | Sequence[int]) -> np.ndarray:
        """States of the items ``index`` (any order, repeats allowed) as an in-memory array,
        reading only those rows from disk."""
        return np.asarray(self.layer(layer)[np.asarray(index, dtype=np.int64)])

    def load(
        self, layers: Sequence[int] | None = None, dtype: torch.dtype = torch.float32
    ) -> list[torch.Tensor]:
        """Materialise layers (default: all cached) as tensors ``[num_items, dim]`` in the
        order asked: what a side network trains on when the states fit in memory."""
        chosen = self.layers if layers is None else [self._check_layer(i) for i in layers]
        numpy_dtype = {torch.float32: np.float32, torch.float16: np.float16,
                       torch.float64: np.float64}.get(dtype)
        out = []
        for layer in chosen:
            mapped = self.layer(layer)
            if numpy_dtype is not None:
                out.append(torch.from_numpy(np.array(mapped, dtype=numpy_dtype)))
            else:
                out.append(torch.from_numpy(np.array(mapped)).to(dtype))
        return out

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the path, not copies of mapped arrays; they re-map lazily.
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def __repr__(self) -> str:
        return (f"StateCache({str(self.path)!r}, items={self.num_items}, layers={self.layers}, "
                f"dtype={self.dtype})")


def describe(cache: StateCache) -> dict[str, Any]:
    """What a cache holds, as JSON-ready data (``recadapt cache info``)."""
    enc = cache.key["encoder"]
    return {
        "path": str(cache.path),
        "source": enc["source"],
        "revision": enc["revision"],
        "modality": enc["modality"],
        "pooling": enc["pooling"],
        "settings": enc.get("settings", {}),
        "items": cache.num_items,
        "layers": cache.layers,
        "dims": [cache.layer_dims[layer] for layer in cache.layers],
        "dtype": cache.dtype,
        "bytes": cache.nbytes,
        "built_at": cache.manifest.get("built_at"),
        "digest": cache.digest,
        "contents_sha256": cache.key["contents"]["sha256"],
    }


def format_description(d: dict[str, Any]) -> str:
    """A readable block of :func:`describe`'s output."""
    dims = sorted(set(d["dims"]))
    pairs = zip(d["layers"], d["dims"], strict=True)
    dims_text = (f"{dims[0]} each" if len(dims) == 1
                 else ", ".join(f"L{layer}:{dim}" for layer, dim in pairs))
    settings = ", ".join(f"{k}={v}" for k, v in sorted(d["settings"].items())) or "none"
    lines = [
        f"cache     {d['path']}",
        f"source    {d['source']}  (revision {d['revision']})",
        f"modality  {d['modality']}, pooling {d['pooling']}, settings: {settings}",
        f"items     {d['items']:,}",
        f"layers    {len(d['layers'])}: {_ranges(d['layers'])}  (dims {dims_text})",
        f"dtype     {d['dtype']}",
        f"size      {_human_bytes(d['bytes'])} ({d['bytes']:,} bytes)",
        f"built     {d['built_at']}",
        f"digest    {d['digest'][:16]}  contents sha256 {d['contents_sha256'][:16]}",
    ]
    return "\n".join(lines)


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 3, 6, 12]`` → ``"0-3, 6, 12"``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # unreachable


def find_superset(root: str | os.PathLike[str], key: dict[str, Any]) -> StateCache | None:
    """A complete cache under ``root`` built by the same job on a superset of ``key``'s layers
    (everything else equal), or None: the layers a model reads are a subset, so it is reused
    instead of encoding the items again."""
    root = Path(root)
    if not root.is_dir():
        return None
    want = {k: v for k, v in key.items() if k != "layers"}
    for folder in sorted(root.iterdir()):
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        have = manifest.get("key") if isinstance(manifest, dict) else None
        if (not isinstance(have, dict) or not manifest.get("complete")
                or manifest.get("format") != FORMAT):
            continue
        if ({k: v for k, v in have.items() if k != "layers"} == want
                and set(key["layers"]) <= set(have.get("layers", []))):
            return StateCache.open(folder)
    return None


def _shard_done(path: Path, shard: int, layers: Sequence[int]) -> bool:
    """A shard is done when each layer is on disk, as its shard file with its checksum beside
    it (written after the shard: a shard without one was cut short) or already merged."""
    return all(((path / _shard_file(shard, layer)).is_file()
                and (path / (_shard_file(shard, layer) + CHECKSUM_SUFFIX)).is_file())
               or (path / _layer_file(layer)).is_file()
               for layer in layers)
