"""Content-addressed on-disk store of per-layer frozen-encoder states (see ``store``)."""

from recadapt.cache.store import (
    StateCache,
    build_cache,
    cache_key,
    cache_path,
    content_fingerprint,
    describe,
    finalize_cache,
    find_superset,
    format_description,
    key_difference,
    key_digest,
    open_or_build,
)

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
