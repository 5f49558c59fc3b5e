from __future__ import annotations

import numpy as np

from recadapt.data.batching import EpochPermutation, left_pad, train_windows


def test_left_pad_keeps_the_most_recent_items():
    assert left_pad(np.array([1, 2, 3]), 5).tolist() == [0, 0, 1, 2, 3]
    assert left_pad(np.array([1, 2, 3, 4]), 2).tolist() == [3, 4]


def test_windows_predict_every_target_exactly_once():
    windows = train_windows([np.arange(1, 11), np.array([5]), np.array([3, 4])], max_len=4)
    assert windows.history.tolist() == [
        [6, 7, 8, 9], [4, 5, 6, 7], [2, 3, 4, 5], [0, 1, 2, 3], [0, 0, 0, 3]]
    assert windows.target.tolist() == [
        [0, 0, 9, 10], [0, 0, 7, 8], [0, 0, 5, 6], [0, 2, 3, 4], [0, 0, 0, 4]]
    assert windows.user.tolist() == [0, 0, 0, 0, 2]
    targets = windows.target[windows.user == 0]
    assert sorted(targets[targets > 0].tolist()) == list(range(2, 11))


def test_epoch_permutation_depends_only_on_seed_and_epoch():
    a, b = EpochPermutation(10, seed=3), EpochPermutation(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_max_windows_keeps_the_most_recent_windows():
    windows = train_windows([np.arange(1, 11), np.array([3, 4])], max_len=4, max_windows=1)
    assert windows.history.tolist() == [[6, 7, 8, 9], [0, 0, 0, 3]]
    assert windows.target.tolist() == [[7, 8, 9, 10], [0, 0, 0, 4]]


def test_length_pooled_batches_cover_every_window_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=1000)
    sampler = EpochPermutation(1000, seed=1, lengths=lengths, batch_size=10, pool_batches=100)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    spreads = [np.ptp(lengths[order[i:i + 10]]) for i in range(0, 1000, 10)]
    assert np.mean(spreads) <= 2  # a random batch of 10 would spread about 40
    sampler.set_epoch(1)
    assert list(sampler) != order
