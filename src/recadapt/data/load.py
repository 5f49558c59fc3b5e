"""The dataset a run reads, from its ``data`` section: the reader, then the k-core filter."""

from __future__ import annotations

from pathlib import Path

from recadapt.config import DataConfig, RunConfig
from recadapt.data.dataset import Dataset
from recadapt.data.filters import k_core
from recadapt.data.readers import read_dataset


def resolve_source(config: RunConfig) -> RunConfig:
    """Make a relative data path absolute, so a run directory can be reopened from anywhere."""
    source = config.data.source
    if source != "dslabs" and Path(source).exists():
        config.data.source = str(Path(source).resolve())
    return config


def load_dataset(data: DataConfig) -> Dataset:
    """The dataset a run reads: its source through the reader, then the k-core filter (before
    any split; reports describe this one)."""
    dataset = read_dataset(
        data.source,
        format=data.format,
        columns=data.columns,
        text_fields=data.text_fields,
        title_field=data.title_field,
        name=data.name,
        item_path=data.item_path,
    )
    return k_core(dataset, data.k_core) if data.k_core > 0 else dataset
