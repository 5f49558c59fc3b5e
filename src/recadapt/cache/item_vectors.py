"""Item representations for semantic behaviour retrieval (RecLoRA 3.4 / ReLLa; the ranking is
:mod:`recadapt.data.retrieval`): each item's text once through an LLM, its last layer's
last-token state through the state cache, PCA-reduced and unit-normalised."""

from __future__ import annotations

import numpy as np

from recadapt.cache.build import open_or_build
from recadapt.config import CacheConfig, EncoderSpec, RetrievalConfig
from recadapt.data.dataset import Dataset
from recadapt.data.prompts import item_texts
from recadapt.data.retrieval import pca_unit_vectors
from recadapt.encoders.lazy import load_encoder_memoized


def semantic_item_vectors(dataset: Dataset, config: RetrievalConfig, cache: CacheConfig,
                          progress: bool = False) -> np.ndarray:
    """``[num_items + 1, dims]`` unit vectors (row 0, padding, is zero)."""
    encoder = load_encoder_memoized(EncoderSpec(name="retrieval", model=config.model,
                                                kind="llm", pooling="last", max_length=64),
                                    cache.dir)
    texts = item_texts(dataset, config.item_format)[1:]
    last = encoder.info.num_layers
    states = open_or_build(encoder, texts, [last], cache, progress=progress,
                           name=f"{dataset.name}-retrieval").layer(last).astype(np.float64)
    vectors = pca_unit_vectors(states, config.dims)  # fewer columns than dims for few items
    return np.vstack([np.zeros((1, vectors.shape[1])), vectors])
