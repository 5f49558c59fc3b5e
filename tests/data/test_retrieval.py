"""Semantic behaviour retrieval (RecLoRA 3.4, ReLLa): top-k by cosine, time order kept."""

from __future__ import annotations

import numpy as np
import pytest

from recadapt.config import validate_config
from recadapt.data.ctr import CTRDataset, CTRSamples, collate_ctr, prompt_args
from recadapt.data.retrieval import gather, pca_unit_vectors, top_k_positions


def unit(*rows):
    v = np.asarray(rows, dtype=np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


# items 1..4: 1 and 3 point the way of item 4, 2 the opposite way
VECTORS = np.vstack([np.zeros((1, 2)), unit([1, 0.1], [-1, 0], [1, 0.3], [1, 0.2])])


def test_top_k_keeps_the_most_similar_in_time_order_and_pads():
    history = np.array([[0, 1, 2, 3], [0, 0, 0, 2]])
    targets = np.array([4, 4])
    positions = top_k_positions(history, targets, VECTORS, k=2)
    assert positions.tolist() == [[1, 3], [-1, 3]]  # items 1 and 3 (time order); one behaviour
    assert gather(history, positions).tolist() == [[1, 3], [0, 2]]


def test_ties_prefer_the_more_recent_behaviour():
    history = np.array([[1, 1, 1]])
    assert top_k_positions(history, np.array([4]), VECTORS, k=1).tolist() == [[2]]


def test_pca_unit_vectors_keep_cosines_of_data_in_a_low_dimensional_subspace():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T  # a random plane in 6-d
    states = rng.normal(size=(40, 2)) @ basis + 3.0  # offset: PCA centres first
    reduced = pca_unit_vectors(states, 2)
    assert reduced.shape == (40, 2)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0)
    centred = states - states.mean(0)
    unit_centred = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(reduced @ reduced.T, unit_centred @ unit_centred.T, atol=1e-9)
    assert not np.allclose(pca_unit_vectors(states, 1) @ pca_unit_vectors(states, 1).T,
                           unit_centred @ unit_centred.T, atol=1e-3)  # 1 component loses some


def samples():
    return CTRSamples(
        users=np.array([0, 1]), items=np.array([4, 4]), labels=np.array([1.0, 0.0], np.float32),
        timestamps=np.array([5.0, 6.0]),
        history=np.array([[0, 1, 2, 3], [2, 2, 3, 1]]),
        history_labels=np.array([[0, 1, 0, 1], [0, 0, 1, 1]], np.float32),
        history_ratings=np.array([[0, 5, 1, 4], [1, 2, 4, 5]], np.float32))


def test_retrieved_samples_split_long_and_short_histories_and_prompts_read_the_short():
    out = samples().retrieved(VECTORS, long_len=3, short_len=1)
    assert out.history.tolist() == [[1, 2, 3], [2, 3, 1]]
    assert out.history_labels.tolist() == [[1, 0, 1], [0, 1, 1]]
    assert out.text_history.tolist() == [[3], [3]]
    assert out.text_history_ratings.tolist() == [[4], [4]]
    batch = collate_ctr([CTRDataset(out)[i] for i in range(2)])
    _, history, labels, target, ratings = prompt_args(batch, 0)
    assert (history, labels, target, ratings) == ([3], [1.0], 4, [4.0])
    assert out.subset(np.array([1])).text_history.tolist() == [[3]]


def test_config_accepts_retrieval_and_refuses_unknown_keys():
    config = validate_config({"data": {"task": "ctr", "ctr": {"history_len": 100,
                                                             "retrieval": {"long_len": 60}}},
                              "model": {"name": "sasrec-ctr"}})
    assert config.data.ctr.retrieval.short_len == 10
    from recadapt.errors import ConfigError

    with pytest.raises(ConfigError, match="retrieval"):
        validate_config({"data": {"task": "ctr", "ctr": {"retrieval": {"lenght": 3}}},
                         "model": {"name": "sasrec-ctr"}})


def test_pipeline_retrieves_with_the_packaged_llm_through_the_state_cache(tmp_path):
    from recadapt.train.runs import prepare_data

    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(6):
        for step, item in enumerate(rng.choice(12, size=9, replace=False)):
            rows.append(f"u{user},i{item},{step * 10 + user},{5 if item % 2 else 1}")
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    names = ["red apple", "green apple", "jazz piano", "rock guitar", "apple pie", "drum solo"]
    items = ["item_id,title"] + [f"i{k},{names[k % 6]} {k}" for k in range(12)]
    (tmp_path / "items.csv").write_text("\n".join(items) + "\n")
    raw = {"data": {"source": str(tmp_path / "inter.csv"), "item_path": str(tmp_path / "items.csv"),
                    "title_field": "title", "task": "ctr",
                    "ctr": {"history_len": 8, "split": [0.6, 0.2, 0.2],
                            "retrieval": {"long_len": 4, "short_len": 2, "dims": 4}}},
           "cache": {"dir": str(tmp_path / "cache")}, "model": {"name": "sasrec-ctr"}}
    split = prepare_data(validate_config(raw)).split
    train = split.train
    assert train.history.shape[1] == 4 and train.text_history.shape[1] == 2
    full = (train.history > 0).sum(1)
    assert np.all((train.text_history > 0).sum(1) == np.minimum(full, 2))
    for row in range(len(train)):  # the prompt's behaviours are among the ID model's
        short = set(train.text_history[row][train.text_history[row] > 0].tolist())
        assert short <= set(train.history[row].tolist())
    assert any((tmp_path / "cache").rglob("*.json"))  # representations went through the cache


def test_recent_parts_keep_the_most_recent_behaviours():
    from recadapt.data.retrieval import recent_positions

    history = np.array([[0, 1, 2, 3], [0, 0, 0, 2]])
    assert recent_positions(history, 2).tolist() == [[2, 3], [-1, 3]]
    assert recent_positions(history, 6).tolist() == [[-1, -1, -1, 1, 2, 3],
                                                     [-1, -1, -1, -1, -1, 3]]
    out = samples().retrieved(VECTORS, long_len=3, short_len=1, short_from="recent")
    assert out.history.tolist() == [[1, 2, 3], [2, 3, 1]]  # still retrieved
    assert out.text_history.tolist() == [[3], [1]]  # the most recent behaviour
    out = samples().retrieved(VECTORS, long_len=2, short_len=1, long_from="recent")
    assert out.history.tolist() == [[2, 3], [3, 1]]
    assert out.text_history.tolist() == [[3], [3]]
