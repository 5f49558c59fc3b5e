"""Content-addressed on-disk store of per-layer frozen-encoder states: the folder layout and
reading (``store``), keys (``keys``), building (``build``)."""

from recadapt.cache.build import build_cache, finalize_cache, open_or_build
from recadapt.cache.keys import (
    cache_key,
    cache_path,
    content_fingerprint,
    key_difference,
    key_digest,
)
from recadapt.cache.store import StateCache, describe, find_superset, format_description

__all__ = [
    "StateCache",
    "build_cache",
    "cache_key",
    "cache_path",
    "content_fingerprint",
    "describe",
    "finalize_cache",
    "find_superset",
    "format_description",
    "key_difference",
    "key_digest",
    "open_or_build",
]
