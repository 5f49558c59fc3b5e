"""Readers: every supported on-disk format → one :class:`~recadapt.data.dataset.Dataset`.

(Being split into one module per format; for now the whole reader lives in ``microlens``.)
"""

from recadapt.data.readers.microlens import (
    DEFAULT_COLUMNS,
    FORMATS,
    RECBOLE_TYPES,
    _resolve_format,
    _with_unisrec_parts,
    read_dataset,
)

__all__ = ["DEFAULT_COLUMNS", "FORMATS", "RECBOLE_TYPES", "_resolve_format",
           "_with_unisrec_parts", "read_dataset"]
