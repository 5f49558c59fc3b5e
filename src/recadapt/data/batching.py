"""Turning a split into tensors: training windows and evaluation batches.

Training (next-item, all positions at once): a user's training sequence ``s`` gives inputs
``s[:-1]`` and targets ``s[1:]``. Sequences longer than ``max_len`` are cut into windows that
end every ``max_len // 2`` items from the end; each window puts loss only on the targets that no
window nearer the end already covered, so **every training target is predicted exactly once** and,
past the first window, with at least ``max_len // 2`` items of context. (SASRec.pytorch keeps only
the last window and wastes long histories; RecBole makes one sample per prefix, which costs
``max_len`` times more compute for the same targets.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from recadapt.data.splits import EvalSet


@dataclass
class TrainWindows:
    """Fixed-size, left-padded training windows: ``history``, ``target`` (0 = no loss), ``user``."""

    history: np.ndarray
    target: np.ndarray
    user: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def left_pad(items: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` items, left-padded with 0 (padding item)."""
    out = np.zeros(length, dtype=np.int64)
    tail = items[-length:] if length else items[:0]
    if len(tail):
        out[length - len(tail):] = tail
    return out


def train_windows(
    train: list[np.ndarray], max_len: int, max_windows: int | None = None
) -> TrainWindows:
    """Windows over every user's training sequence (see module docstring); ``max_windows``
    keeps only each user's most recent windows (1 = SASRec.pytorch's "last max_len items")."""
    stride = max(1, max_len // 2)
    histories, targets, users = [], [], []
    for user, seq in enumerate(train):
        n = len(seq)
        if n < 2:
            continue
        end, emitted = n, 0  # a window covers targets seq[end - max_len : end], index >= 1
        while True:
            start = max(1, end - max_len)
            emitted += 1
            last = start == 1 or (max_windows is not None and emitted >= max_windows)
            window_targets = seq[start:end].copy()
            if not last:  # an earlier window follows: it owns all but the newest `stride`
                window_targets[: max(0, len(window_targets) - stride)] = 0
            histories.append(left_pad(seq[start - 1:end - 1], max_len))
            targets.append(left_pad(window_targets, max_len))
            users.append(user)
            if last:
                break
            end -= stride
    if not users:
        return TrainWindows(np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.int64),
                            np.zeros(0, np.int64))
    return TrainWindows(np.stack(histories), np.stack(targets), np.array(users, dtype=np.int64))


def trim_left_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the leading columns that are padding in every row of ``history`` (and the same
    columns of a per-position ``target``): short-sequence datasets would otherwise spend most
    of the encoder's compute on padding. Encoders give identical outputs either way."""
    history = batch["history"]
    used = (history > 0).any(dim=0)
    if used.all() or not used.any():
        return batch
    first = int(used.nonzero()[0])
    out = dict(batch)
    out["history"] = history[:, first:]
    if batch.get("target") is not None and batch["target"].dim() == 2:
        out["target"] = batch["target"][:, first:]
    return out


def collate_windows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    return trim_left_padding(batch)


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, windows: TrainWindows) -> None:
        self.history = torch.from_numpy(windows.history)
        self.target = torch.from_numpy(windows.target)
        self.user = torch.from_numpy(windows.user)

    def __len__(self) -> int:
        return len(self.user)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"history": self.history[index], "target": self.target[index],
                "user": self.user[index]}


class EpochPermutation(torch.utils.data.Sampler[int]):
    """Shuffles with ``seed + epoch``, so a resumed run sees exactly the batches an
    uninterrupted one would have seen.

    With ``lengths`` and ``batch_size``, batches are made of windows of similar length (sorted
    inside random pools of ``pool_batches`` batches, then the batch order is shuffled), so
    :func:`trim_left_padding` can cut most padding; each epoch still draws different batches.
    """

    def __init__(self, size: int, seed: int, lengths: np.ndarray | None = None,
                 batch_size: int = 1, pool_batches: int = 32) -> None:
        self.size, self.seed, self.epoch = size, seed, 0
        self.lengths, self.batch_size, self.pool = lengths, batch_size, batch_size * pool_batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(self.size)
        if self.lengths is None or self.batch_size <= 1:
            return iter(order.tolist())
        pools = [order[i:i + self.pool] for i in range(0, self.size, self.pool)]
        pools = [pool[np.argsort(self.lengths[pool], kind="stable")] for pool in pools]
        batches = [pool[i:i + self.batch_size] for pool in pools
                   for i in range(0, len(pool), self.batch_size)]
        return iter(np.concatenate([batches[i] for i in rng.permutation(len(batches))]).tolist())

    def __len__(self) -> int:
        return self.size


def eval_batches(
    eval_set: EvalSet, max_len: int, batch_size: int
) -> Iterator[tuple[dict[str, torch.Tensor], list[np.ndarray]]]:
    """Evaluation batches plus, per user, the full history (for masking in full ranking)."""
    for begin in range(0, len(eval_set), batch_size):
        end = min(begin + batch_size, len(eval_set))
        hist = eval_set.histories[begin:end]
        width = max(1, min(max_len, max(len(h) for h in hist)))
        batch = {
            "history": torch.from_numpy(np.stack([left_pad(h, width) for h in hist])),
            "target": torch.from_numpy(eval_set.targets[begin:end].astype(np.int64)),
            "user": torch.from_numpy(eval_set.users[begin:end].astype(np.int64)),
        }
        yield batch, hist
