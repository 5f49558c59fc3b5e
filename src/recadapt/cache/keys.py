"""Cache keys: everything that changes the stored numbers (encoder source, revision, pooling,
settings, layers, storage dtype, a hash of the item contents), its digest and the folder it
names, and a one-line account of how two keys differ (see :mod:`recadapt.cache.store`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recadapt.encoders.base import EncoderInfo, check_layers
from recadapt.errors import RecAdaptError
from recadapt.io import canonical_json

FORMAT = 2
"""On-disk format version; part of the key, so a format change rebuilds instead of misreading
(2: every stored file carries its size and SHA-256)."""
DTYPES: dict[str, type[np.floating]] = {"fp16": np.float16, "fp32": np.float32}
_CHUNK = 1 << 20



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


def check_layers_or_error(info: EncoderInfo, layers: Sequence[int] | None) -> list[int]:
    """:func:`check_layers` with a user-facing error naming the model."""
    try:
        checked = check_layers(layers, info.num_layers)
    except ValueError as err:
        raise RecAdaptError(f"{info.source}: {err}") from None
    if not checked:
        raise RecAdaptError(f"{info.source}: no layers to cache (give None for all)")
    return checked
