"""Readers: every supported on-disk format → one :class:`~recadapt.data.dataset.Dataset`.

:func:`read_dataset` (in :mod:`.dispatch`) detects the format and calls its reader, one module
per format: :mod:`.atomic` (RecBole), :mod:`.unisrec`, :mod:`.dslabs`, :mod:`.microlens`,
:mod:`.minionerec`, :mod:`.tabular` (CSV/TSV/Parquet/JSONL), :mod:`.alpaca` (instruction
records as CTR data); :mod:`.common` holds the strict
file parsing they share.
"""

from recadapt.data.readers.common import RECBOLE_TYPES
from recadapt.data.readers.dispatch import (
    DEFAULT_COLUMNS,
    FORMATS,
    READERS,
    detect_format,
    read_dataset,
)

__all__ = ["DEFAULT_COLUMNS", "FORMATS", "READERS", "RECBOLE_TYPES", "detect_format",
           "read_dataset"]
