"""Splits of a Dataset into training and evaluation parts.

Next-item protocol (IISAN V-C, CROSSAN 5): **leave-one-out** — the last item of each user's
time-ordered sequence is the test target, the second-to-last the validation target, the rest
trains. Users with fewer than 3 interactions cannot supply all three parts; they contribute
their items to training only and are not evaluated (documented in docs/protocols.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recadapt.data.dataset import Dataset
from recadapt.errors import DataError


@dataclass
class EvalSet:
    """Users to evaluate, each with the history the model sees and the held-out target."""

    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class NextItemSplit:
    """Training sequences per user index plus validation and test sets."""

    dataset: Dataset
    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    protocol: str = "leave_one_out"

    def item_counts(self) -> np.ndarray:
        """Training interactions per item index (``[num_items + 1]``, index 0 = padding = 0)."""
        flat = np.concatenate(self.train) if self.train else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.dataset.num_items + 1)


def leave_one_out(dataset: Dataset) -> NextItemSplit:
    """Last item = test, second-to-last = valid, the rest = train (see module docstring)."""
    train: list[np.ndarray] = []
    valid_users, valid_hist, valid_tgt = [], [], []
    test_users, test_hist, test_tgt = [], [], []
    for user, seq in enumerate(dataset.sequences()):
        if len(seq) < 3:
            train.append(seq)
            continue
        train.append(seq[:-2])
        valid_users.append(user)
        valid_hist.append(seq[:-2])
        valid_tgt.append(seq[-2])
        test_users.append(user)
        test_hist.append(seq[:-1])
        test_tgt.append(seq[-1])
    if not test_users:
        raise DataError(
            f"dataset {dataset.name!r}: no user has the 3 interactions leave-one-out needs"
        )
    return NextItemSplit(
        dataset=dataset,
        train=train,
        valid=EvalSet(np.array(valid_users), valid_hist, np.array(valid_tgt, dtype=np.int64)),
        test=EvalSet(np.array(test_users), test_hist, np.array(test_tgt, dtype=np.int64)),
    )
