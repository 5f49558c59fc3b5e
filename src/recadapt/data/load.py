"""The dataset a run reads, from its ``data`` section: the reader, then the k-core filter."""

from __future__ import annotations

from pathlib import Path

from recadapt.config import DataConfig, RunConfig
from recadapt.data.dataset import Dataset
from recadapt.data.filters import k_core
from recadapt.data.readers import read_dataset
from recadapt.errors import ConfigError


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
    if dataset.records:
        if data.task != "ctr":
            raise ConfigError(f"data.source: {data.source} holds Alpaca records, labelled Yes/No "
                              "samples; set data.task=ctr")
        if data.k_core > 0:
            raise ConfigError("data.k_core: every Alpaca record is its own user and item, so a "
                              "k-core filter would remove them all; drop data.k_core")
        return dataset
    return k_core(dataset, data.k_core) if data.k_core > 0 else dataset
