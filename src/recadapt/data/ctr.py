"""The CTR protocol (RecLoRA appendix A, TALLRec, ATFLRec): labelled (user, item) samples, each
with the user's behaviour history before it, split by global time, optionally K-shot.

Choices (docs/protocols.md):

* **Labels.** With ratings: ``label = rating >= label_threshold`` (MovieLens: 4; for half-star
  scales use 3.5, i.e. "> 3.0" of RecLoRA). Without ratings (implicit data such as MicroLens
  or the synthetic set) every interaction is a positive and ``negatives`` items the user never
  interacted with are drawn per positive as label-0 samples at the same time (seeded), the
  usual conversion of implicit feedback to CTR; histories then hold positives only.
* **History.** A sample's history is the user's behaviours strictly before it in the user's
  time order (ties keep file order), most recent ``history_len`` kept, each with its label and
  rating, so liked and disliked items can be told apart (TALLRec's prompt lists both; ID
  models embed the label). A test sample's history may include train- and valid-period
  behaviours: they happened before it, as in deployment.
* **Split.** All samples sorted by time and cut 8:1:1 by count (``global_time_split``'s rule);
  K-shot training subsets are a fixed prefix of one seeded permutation (``splits.k_shot``), and
  ``max_eval_samples`` subsamples valid/test with ``eval_seed`` for slow LLM models (reports
  say so); ``max_test_samples`` gives the test subsample its own (larger) size — a prefix of
  the same permutation, so it extends the smaller one.
* Samples without any history are kept (a model must cope with an empty history); item 0 is
  padding in histories, never a target.
* **Records** (``data.format: alpaca``): interactions that carry their own ``label`` use it
  (no threshold, no sampled negatives), and their ``part`` column is the split: records of a
  part keep it (an Alpaca folder's train/valid/test files); records without one (a single
  file) have no time, so they are cut at random, by one permutation seeded with
  ``data.ctr.seed``, in the ``split`` ratios. K-shot and the evaluation subsamples then apply
  as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from recadapt.data.batching import left_pad
from recadapt.data.dataset import Dataset
from recadapt.data.splits import k_shot
from recadapt.errors import DataError


@dataclass
class CTRSamples:
    """Labelled samples; ``history*`` are ``[n, history_len]`` left-padded (item 0 = padding)."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    timestamps: np.ndarray
    history: np.ndarray
    history_labels: np.ndarray
    history_ratings: np.ndarray
    #: the prompt's behaviours when they differ from ``history`` (semantic retrieval)
    text_history: np.ndarray | None = None
    text_history_labels: np.ndarray | None = None
    text_history_ratings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, index: np.ndarray) -> CTRSamples:
        return CTRSamples(**{f.name: None if getattr(self, f.name) is None else
                             getattr(self, f.name)[index] for f in fields(self)})

    def retrieved(self, vectors: np.ndarray, long_len: int, short_len: int,
                  long_from: str = "similar", short_from: str = "similar") -> CTRSamples:
        """The samples with their behaviours chosen by similarity to the target
        (``recadapt.data.retrieval``): ``long_len`` as ``history``, ``short_len`` as
        ``text_history``; both in time order. ``*_from: recent`` keeps that part's most recent
        behaviours instead (the retriever ablations)."""
        from recadapt.data.retrieval import gather, recent_positions, top_k_positions

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for prefix, k, how in (("", long_len, long_from), ("text_", short_len, short_from)):
            positions = (recent_positions(self.history, k) if how == "recent"
                         else top_k_positions(self.history, self.items, vectors, k))
            out[f"{prefix}history"] = gather(self.history, positions)
            out[f"{prefix}history_labels"] = gather(self.history_labels, positions)
            out[f"{prefix}history_ratings"] = gather(self.history_ratings, positions)
        return CTRSamples(**out)

    @property
    def positive_rate(self) -> float:
        return float(self.labels.mean()) if len(self) else 0.0


@dataclass
class CTRSplit:
    dataset: Dataset
    train: CTRSamples
    valid: CTRSamples
    test: CTRSamples
    protocol: str = "ctr_global_time"

    def item_counts(self) -> np.ndarray:
        """Positive training samples per item index (``[num_items + 1]``)."""
        positive = self.train.items[self.train.labels > 0.5]
        return np.bincount(positive, minlength=self.dataset.num_items + 1)


def build_samples(dataset: Dataset, history_len: int, label_threshold: float = 4.0,
                  negatives: int = 1, seed: int = 0) -> CTRSamples:
    """Every interaction as a labelled sample with its history (see module docstring)."""
    inter = dataset.interactions.sort_values(["user", "timestamp"], kind="stable")
    users = inter["user"].to_numpy(np.int64)
    items = inter["item"].to_numpy(np.int64)
    times = inter["timestamp"].to_numpy(np.float64)
    explicit = "rating" in inter or "label" in inter
    ratings = inter["rating"].to_numpy(np.float64) if "rating" in inter else np.zeros(len(inter))
    if "label" in inter:  # records labelled by their own answer
        labels = inter["label"].to_numpy(np.float32)
    elif explicit:
        labels = (ratings >= label_threshold).astype(np.float32)
    else:
        labels = np.ones(len(inter), np.float32)
    # position of each interaction inside its user's sequence → history = the rows before it
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    first_row = np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    history = np.zeros((len(users), history_len), np.int64)
    hist_labels = np.zeros((len(users), history_len), np.float32)
    hist_ratings = np.zeros((len(users), history_len), np.float32)
    for row in range(len(users)):
        begin = max(first_row[row], row - history_len)
        history[row] = left_pad(items[begin:row], history_len)
        hist_labels[row] = left_pad(labels[begin:row], history_len)
        hist_ratings[row] = left_pad(ratings[begin:row], history_len)
    samples = CTRSamples(users, items, labels, times, history, hist_labels, hist_ratings)
    if explicit or negatives == 0:
        return samples
    return _with_sampled_negatives(samples, dataset, negatives, seed)


def _with_sampled_negatives(samples: CTRSamples, dataset: Dataset, negatives: int,
                            seed: int) -> CTRSamples:
    """Add ``negatives`` label-0 samples per positive: items the user never interacted with,
    same time and history as the positive."""
    rng = np.random.default_rng(seed)
    seen = dataset.interactions.groupby("user")["item"].apply(set).to_dict()
    if dataset.num_items - max(len(s) for s in seen.values()) < negatives:
        raise DataError(f"dataset {dataset.name!r}: a user interacted with nearly every item, "
                        f"so {negatives} negatives per positive cannot be drawn; lower "
                        "data.ctr.negatives")
    drawn = np.empty(len(samples) * negatives, np.int64)
    for row, user in enumerate(np.repeat(samples.users, negatives)):
        while True:
            item = int(rng.integers(1, dataset.num_items + 1))
            if item not in seen[user]:
                drawn[row] = item
                break
    index = np.repeat(np.arange(len(samples)), negatives)
    neg = samples.subset(index)
    neg.items = drawn
    neg.labels = np.zeros(len(drawn), np.float32)
    merged = CTRSamples(**{f.name: np.concatenate([getattr(samples, f.name), getattr(neg, f.name)])
                           for f in fields(CTRSamples) if getattr(samples, f.name) is not None})
    order = np.lexsort((np.r_[np.zeros(len(samples)), np.ones(len(neg))], merged.timestamps))
    return merged.subset(order)


def ctr_split(dataset: Dataset, *, history_len: int = 10, label_threshold: float = 4.0,
              negatives: int = 1, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
              k_shot_train: int | None = None, seed: int = 0,
              max_eval_samples: int | None = None, eval_seed: int = 0,
              max_test_samples: int | None = None) -> CTRSplit:
    """Samples cut by global time (see module docstring)."""
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
        raise DataError(f"data.ctr.split: {list(ratios)} must be three non-negative numbers "
                        "summing to 1, e.g. [0.8, 0.1, 0.1]")
    samples = build_samples(dataset, history_len, label_threshold, negatives, seed)
    if "part" in dataset.interactions:
        train, valid, test = (samples.subset(index) for index in
                              _record_parts(dataset, ratios, seed))
    else:
        order = np.argsort(samples.timestamps, kind="stable")
        train, valid, test = (samples.subset(np.sort(index))
                              for index in _cut(order, ratios))
    if k_shot_train is not None:
        if k_shot_train > len(train):
            raise DataError(f"data.ctr.k_shot: {k_shot_train} exceeds the {len(train)} "
                            "training samples")
        train = train.subset(k_shot(np.arange(len(train)), k_shot_train, seed))
    test_size = max_test_samples if max_test_samples is not None else max_eval_samples
    if max_eval_samples is not None:
        valid = _limit(valid, max_eval_samples, eval_seed)
    if test_size is not None:  # a prefix of one seeded permutation: larger sizes extend it
        test = _limit(test, test_size, eval_seed + 1)
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        if len(part) == 0:
            raise DataError(f"dataset {dataset.name!r}: the CTR {name} split is empty; use more "
                            "data or other data.ctr.split ratios")
    for name, part in (("valid", valid), ("test", test)):
        if part.labels.min() == part.labels.max():
            raise DataError(f"dataset {dataset.name!r}: the CTR {name} split has one class only "
                            "(AUC is undefined); check data.ctr.label_threshold")
    return CTRSplit(dataset, train, valid, test)


def _cut(order: np.ndarray, ratios: tuple[float, float, float]) -> list[np.ndarray]:
    """``order`` cut into three consecutive pieces by count in ``ratios``."""
    n = len(order)
    first = int(np.floor(n * ratios[0] + 1e-9))
    second = int(np.floor(n * (ratios[0] + ratios[1]) + 1e-9))
    return [order[:first], order[first:second], order[second:]]


def _record_parts(dataset: Dataset, ratios: tuple[float, float, float], seed: int
                  ) -> list[np.ndarray]:
    """Sample indices of train/valid/test for records (module docstring): a record's own part,
    else a seeded random cut by ``ratios``. Samples are in ``build_samples``' order (records are
    labelled, so no negatives are added)."""
    inter = dataset.interactions.sort_values(["user", "timestamp"], kind="stable")
    part = inter["part"].to_numpy(dtype=str)
    free = np.flatnonzero(part == "")
    drawn = _cut(np.random.default_rng(seed).permutation(free), ratios)
    return [np.sort(np.concatenate([np.flatnonzero(part == name), extra]))
            for name, extra in zip(("train", "valid", "test"), drawn, strict=True)]


def _limit(part: CTRSamples, size: int, seed: int) -> CTRSamples:
    if len(part) <= size:
        return part
    return part.subset(k_shot(np.arange(len(part)), size, seed))


class CTRDataset(torch.utils.data.Dataset):
    """Samples as dicts of tensors: the CTR batch contract (``models/base.py``)."""

    def __init__(self, samples: CTRSamples) -> None:
        self.tensors = {
            "user": torch.from_numpy(samples.users.astype(np.int64)),
            "item": torch.from_numpy(samples.items.astype(np.int64)),
            "label": torch.from_numpy(samples.labels.astype(np.float32)),
            "history": torch.from_numpy(samples.history),
            "history_label": torch.from_numpy(samples.history_labels),
            "history_rating": torch.from_numpy(samples.history_ratings),
        }
        if samples.text_history is not None:
            self.tensors.update({
                "text_history": torch.from_numpy(samples.text_history),
                "text_history_label": torch.from_numpy(samples.text_history_labels),
                "text_history_rating": torch.from_numpy(samples.text_history_ratings),
            })

    def __len__(self) -> int:
        return len(self.tensors["user"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


def collate_ctr(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack rows and drop history columns that are padding in every row."""
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    for prefix in ("", "text_"):
        if f"{prefix}history" not in batch:
            continue
        keys = [f"{prefix}history", f"{prefix}history_label", f"{prefix}history_rating"]
        used = (batch[keys[0]] > 0).any(dim=0)
        if used.any() and not used.all():
            first = int(used.nonzero()[0])
            for key in keys:
                batch[key] = batch[key][:, first:]
        elif not used.any():  # no history at all: keep one padding column
            for key in keys:
                batch[key] = batch[key][:, -1:]
    return batch


def prompt_args(batch: dict[str, torch.Tensor], row: int
                ) -> tuple[int, list[int], list[float], int, list[float]]:
    """One sample of a CTR batch as ``PromptBuilder`` arguments: user, history items (padding
    dropped, oldest first), their labels, the target item, their ratings. The prompt's own
    behaviours (``text_history``, from semantic retrieval) are used when the batch has them."""
    prefix = "text_" if "text_history" in batch else ""
    history = batch[f"{prefix}history"][row].cpu()
    keep = history > 0
    return (int(batch["user"][row]), history[keep].tolist(),
            batch[f"{prefix}history_label"][row].cpu()[keep].tolist(), int(batch["item"][row]),
            batch[f"{prefix}history_rating"][row].cpu()[keep].tolist())


def ctr_batches(samples: CTRSamples, batch_size: int):
    """Evaluation batches in sample order."""
    data = CTRDataset(samples)
    for begin in range(0, len(data), batch_size):
        yield collate_ctr([data[i] for i in range(begin, min(begin + batch_size, len(data)))])


def samples_frame(samples: CTRSamples) -> pd.DataFrame:
    """One row per sample (for inspection and reports)."""
    return pd.DataFrame({"user": samples.users, "item": samples.items, "label": samples.labels,
                         "timestamp": samples.timestamps,
                         "history_length": (samples.history > 0).sum(axis=1)})
