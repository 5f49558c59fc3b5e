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

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch
from tqdm.auto import tqdm

from recadapt import __version__
from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers
from recadapt.errors import RecAdaptError
from recadapt.io import atomic_write, canonical_json, write_json

if TYPE_CHECKING:
    from recadapt.config import CacheConfig

FORMAT = 1
"""On-disk format version; part of the key, so a format change rebuilds instead of misreading."""
MANIFEST = "manifest.json"
SHARDS = "shards"
DTYPES: dict[str, type[np.floating]] = {"fp16": np.float16, "fp32": np.float32}
_FP16_MAX = float(np.finfo(np.float16).max)
_CHUNK = 1 << 20
_REBUILD_HINT = "build it with `recadapt cache build` or point cache.dir elsewhere"


# --------------------------------------------------------------------------- keys


def content_fingerprint(contents: Sequence[Any]) -> str:
    """sha256 over the ordered item contents, the part of the key that says *which items*.

    Strings are hashed as UTF-8 text and ``bytes`` as they are; ``os.PathLike`` items (image,
    audio, video files) by the bytes of the file they point to (streamed), so editing a file
    changes the key while moving the data folder does not; a folder is hashed by its files'
    relative names and bytes. numpy arrays (raw audio, ...) by dtype, shape and data; ``None``
    (an item missing this modality) by a tag of its own. Every record is tagged and
    length-prefixed, so
    ``["ab", "c"]`` and ``["a", "bc"]`` differ.
    """
    digest = hashlib.sha256(f"recadapt-contents-v{FORMAT}:{len(contents)}\n".encode())
    for index, item in enumerate(contents):
        if item is None:  # an item without this modality (e.g. no image): its own tag
            _record(digest, b"n", b"")
        elif isinstance(item, str):
            _record(digest, b"s", item.encode("utf-8"))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            _record(digest, b"b", bytes(item))
        elif isinstance(item, os.PathLike):
            _hash_path(digest, index, Path(item))
        elif isinstance(item, np.ndarray):
            _record(digest, b"a", f"{item.dtype.str}{item.shape}".encode())
            _record(digest, b"d", np.ascontiguousarray(item).tobytes())
        else:
            raise RecAdaptError(
                f"item {index}: cannot fingerprint content of type {type(item).__name__}; "
                "give strings, bytes, pathlib.Path objects or numpy arrays"
            )
    return digest.hexdigest()


def _record(digest: Any, tag: bytes, data: bytes) -> None:
    digest.update(tag + len(data).to_bytes(8, "little"))
    digest.update(data)


def _hash_path(digest: Any, index: int, path: Path) -> None:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        _record(digest, b"D", f"{index}:{len(files)}".encode())
        for file in files:
            _record(digest, b"n", file.relative_to(path).as_posix().encode("utf-8"))
            _hash_file(digest, index, file)
        return
    _hash_file(digest, index, path)


def _hash_file(digest: Any, index: int, path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(b"p" + index.to_bytes(8, "little") + size.to_bytes(8, "little"))
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise RecAdaptError(f"item {index}: file not found: {path}") from None
    except OSError as err:
        raise RecAdaptError(f"item {index}: cannot read {path}: {err.strerror}") from None


def cache_key(
    info: EncoderInfo, layers: Sequence[int], dtype: str, content_hash: str, num_items: int
) -> dict[str, Any]:
    """Everything that changes the stored numbers, as plain JSON data (lists, not tuples), so
    the key read back from a manifest compares equal to a freshly built one.

    Layers are sorted and de-duplicated: the set of layers stored is what matters, not the
    order a caller asked for them in. ``batch_size`` and ``shard_items`` are not in the key:
    they change how the states are computed and stored, not their values.
    """
    if dtype not in DTYPES:
        raise RecAdaptError(f"cache dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    checked = check_layers_or_error(info, layers)
    key = {
        "format": FORMAT,
        "encoder": info.as_dict(),
        "layers": sorted(set(checked)),
        "dtype": dtype,
        "contents": {"sha256": content_hash, "items": int(num_items)},
    }
    return json.loads(canonical_json(key))


def key_digest(key: dict[str, Any]) -> str:
    """sha256 of the key's canonical JSON (sorted keys, no spaces): the folder's identity."""
    return hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()


def cache_path(root: str | os.PathLike[str], key: dict[str, Any], name: str = "") -> Path:
    """``root / "<slug(name or source)>-<digest[:16]>"``: readable, and unique per key."""
    return Path(root).expanduser() / f"{_slug(name or key['encoder']['source'])}-" \
        f"{key_digest(key)[:16]}"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].strip("-") or "cache"


def key_difference(have: dict[str, Any], want: dict[str, Any]) -> str | None:
    """The first way ``have`` (a cache's key) differs from ``want``, as words; None if equal."""
    if canonical_json(have) == canonical_json(want):
        return None
    h_enc, w_enc = have.get("encoder", {}), want.get("encoder", {})
    if h_enc.get("source") != w_enc.get("source"):
        return f"was built by {h_enc.get('source')}, this run needs {w_enc.get('source')}"
    if h_enc.get("revision") != w_enc.get("revision"):
        return (f"was built from revision {h_enc.get('revision')} of {h_enc.get('source')}, "
                f"this run needs revision {w_enc.get('revision')}")
    for field in sorted(set(h_enc) | set(w_enc)):
        if h_enc.get(field) != w_enc.get(field):
            return (f"was built with {field} {h_enc.get(field)!r}, "
                    f"this run needs {field} {w_enc.get(field)!r}")
    if have.get("layers") != want.get("layers"):
        return f"holds layers {have.get('layers')}, this run needs layers {want.get('layers')}"
    if have.get("dtype") != want.get("dtype"):
        return f"stores {have.get('dtype')}, this run needs {want.get('dtype')} (cache.dtype)"
    h_con, w_con = have.get("contents", {}), want.get("contents", {})
    if h_con.get("items") != w_con.get("items"):
        return f"was built from {h_con.get('items')} items, this run has {w_con.get('items')}"
    if h_con != w_con:
        return (f"was built from different item contents (sha256 "
                f"{str(h_con.get('sha256'))[:12]}…, this run {str(w_con.get('sha256'))[:12]}…)")
    return f"has format {have.get('format')}, this recadapt writes format {want.get('format')}"


# --------------------------------------------------------------------------- reading


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
        for layer in manifest["layers"]:
            if not (path / _layer_file(layer)).is_file():
                raise RecAdaptError(f"cache {path} is damaged: {_layer_file(layer)} is missing; "
                                    "delete the folder and build the cache again")
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
            array = np.load(self.path / _layer_file(layer), mmap_mode="r")
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


# --------------------------------------------------------------------------- building


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _shard_done(path: Path, shard: int, layers: Sequence[int]) -> bool:
    """A shard is done when each layer is on disk, as its shard file or already merged."""
    return all((path / _shard_file(shard, layer)).is_file() or (path / _layer_file(layer)).is_file()
               for layer in layers)


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
) -> None:
    layers, dtype = manifest["layers"], manifest["dtype"]
    size, num_items = manifest["shard_items"], manifest["num_items"]
    wanted = [s for s in range(manifest["num_shards"]) if shard_filter is None or shard_filter(s)]

    def span(shard: int) -> tuple[int, int]:
        return shard * size, min(num_items, (shard + 1) * size)

    todo = [s for s in wanted if not _shard_done(path, s, layers)]
    total = sum(e - b for b, e in map(span, wanted))
    remaining = sum(e - b for b, e in map(span, todo))
    bar = tqdm(total=total, initial=total - remaining, desc=desc, unit="item",
               disable=not progress, dynamic_ncols=True)
    try:
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
                atomic_write(path / _shard_file(shard, layer),
                             functools.partial(_save_npy, array=array))
            bar.update(end - begin)
    finally:
        bar.close()


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
    for layer in layers:
        target = path / _layer_file(layer)
        if not target.is_file():
            atomic_write(target, functools.partial(_merge_layer, path=path, manifest=manifest,
                                                   layer=layer))
        for shard in range(num_shards):
            (path / _shard_file(shard, layer)).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty (a stray temp file) or gone: harmless
        (path / SHARDS).rmdir()
    manifest.update(complete=True, built_at=_now())
    write_json(path / MANIFEST, manifest)
    return StateCache.open(path, expected_key)


@overload
def build_cache(
    encoder: FrozenEncoder, contents: Sequence[Any], layers: Sequence[int] | None,
    root: str | os.PathLike[str], dtype: str = ..., shard_items: int = ...,
    batch_size: int = ..., progress: bool = ..., name: str = ..., *,
    shard_filter: Callable[[int], bool] | None = ..., finalize: Literal[True] = ...,
) -> StateCache: ...


@overload
def build_cache(
    encoder: FrozenEncoder, contents: Sequence[Any], layers: Sequence[int] | None,
    root: str | os.PathLike[str], dtype: str = ..., shard_items: int = ...,
    batch_size: int = ..., progress: bool = ..., name: str = ..., *,
    shard_filter: Callable[[int], bool] | None = ..., finalize: Literal[False],
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
                                  progress, name)
    manifest = _start(path, key, shard_items)
    if not manifest.get("complete"):
        _encode_shards(encoder, items, path, manifest, batch_size, progress,
                       f"caching {name or encoder.info.source}", shard_filter)
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
                       progress: bool, name: str) -> StateCache:
    """Every process encodes its shards (``s % N == rank``) into the one folder; the main
    process merges them and marks the cache complete; then every process opens it."""
    rank, world = state.process_index, state.num_processes
    with state.main_process_first():  # the main process writes the manifest, the rest read it
        manifest = _start(path, key, shard_items)
    if not manifest.get("complete"):
        _encode_shards(encoder, items, path, manifest, batch_size,
                       progress and state.is_local_main_process,
                       f"caching {name or encoder.info.source} (process {rank + 1}/{world})",
                       lambda shard: shard % world == rank)
    state.wait_for_everyone()  # every shard is on disk
    with state.main_process_first():  # the main process merges, the others open the result
        return finalize_cache(path, key)


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


def check_layers_or_error(info: EncoderInfo, layers: Sequence[int] | None) -> list[int]:
    """:func:`check_layers` with a user-facing error naming the model."""
    try:
        checked = check_layers(layers, info.num_layers)
    except ValueError as err:
        raise RecAdaptError(f"{info.source}: {err}") from None
    if not checked:
        raise RecAdaptError(f"{info.source}: no layers to cache (give None for all)")
    return checked


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
    """:func:`build_cache` with root, dtype and shard size from a
    :class:`recadapt.config.CacheConfig` (``cache`` section): the one call a pipeline makes."""
    return build_cache(encoder, contents, layers, Path(config.dir), dtype=config.dtype,
                       shard_items=config.shard_items, batch_size=batch_size, progress=progress,
                       name=name)
