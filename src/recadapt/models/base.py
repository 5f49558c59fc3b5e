"""The contract every recommender in recadapt fulfils.

Batches are dicts of tensors. Next-item models use:

* ``history``: ``LongTensor[B, L]``, item indices **left-padded** with 0, so position ``-1`` is
  the most recent item;
* training: ``target``: ``LongTensor[B, L]``, the next item at each position (0 = no loss);
* evaluation: ``target``: ``LongTensor[B]``, the held-out item;
* ``user``: ``LongTensor[B]``, user indices (for models or masks that need them).

CTR models (``data.task: ctr``, :class:`CTRRecommender`) get one labelled sample per row:
``user``, ``item`` (the target, ``LongTensor[B]``), ``label`` (``FloatTensor[B]``, 0/1), and the
behaviours before it: ``history`` (left-padded), ``history_label`` and ``history_rating``
(``FloatTensor[B, L]``, 0 at padding); see ``recadapt.data.ctr``.

Full ranking over all items is then one matrix product:
``user_embeddings(batch) @ item_embeddings().T``; ``score`` returns exactly that by default,
so evaluation and serving share one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from recadapt.errors import ConfigError, RecAdaptError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from recadapt.config import RunConfig, StageConfig
    from recadapt.data.ctr import CTRSamples, CTRSplit
    from recadapt.data.dataset import Dataset
    from recadapt.data.splits import NextItemSplit


class Recommender(nn.Module):
    """Base class: subclasses implement ``loss`` and either ``score`` or the two embeddings."""

    #: config name under which the class is registered
    name: ClassVar[str] = ""
    #: ``False`` for models with nothing to train (popularity), so the loop skips training
    trainable: ClassVar[bool] = True
    #: the ``data.task`` values the model handles
    tasks: ClassVar[frozenset[str]] = frozenset({"next_item"})

    @classmethod
    def prerequisites(cls, config: BaseModel, run: RunConfig) -> dict[str, StageConfig]:
        """The trained runs this model builds on, declared by field (A-LLMRec: its frozen
        collaborative model ``cf``, or stage 1 ``stage1``; RecLoRA: its CTR model ``crm``).
        A declaration without ``run`` must be the model config's own :class:`StageConfig`
        field of that name: ``train_run`` trains it into ``RUN/stages/FIELD`` (or reuses it
        there) and fills ``model.FIELD.run``. ``recadapt.train.stages`` loads each finished run
        frozen and hands it to :meth:`create` by field. Default: none."""
        return {}

    @classmethod
    def create(cls, config: BaseModel, dataset: Dataset, run: RunConfig,
               **stages: Recommender) -> Recommender:
        """Build the model for a dataset; ``stages``: the loaded prerequisite runs it declared
        (:meth:`prerequisites`). ID models need only the catalogue size; content models
        override this to load their encoders and caches (models/content.py)."""
        return cls(config, dataset.num_items, run.data.max_seq_len)  # type: ignore[call-arg]

    def fit_statistics(self, item_counts: torch.Tensor) -> None:
        """Receive training-split statistics (interactions per item) before training; used by
        popularity, and by the debiased loss's log-popularity. Default: nothing to do."""

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups: one group at ``lr`` by default; models that fine-tune a
        pretrained backbone give it its own (smaller) learning rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def windows_per_user(self) -> int | None:
        """Most recent training windows per user this model trains on (``None``: all, the
        ``data.max_windows_per_user`` setting decides). A-LLMRec trains on each user's last
        item only, so it asks for 1."""
        return None

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss: the loop calls the (possibly wrapped) module, so accelerate's
        mixed precision and distributed wrappers see every training step."""
        return self.loss(batch)

    def item_embeddings(self) -> torch.Tensor:
        """``[num_items + 1, d]`` (row 0 = padding)."""
        raise NotImplementedError

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, d]`` representation of each user's history."""
        raise NotImplementedError

    def add_items(self, contents: Sequence[Sequence[Any]]) -> torch.Tensor:
        """Grow the catalogue by items unseen in training, from their contents (one list per
        encoder, e.g. from ``models.content.new_item_contents``); they take the next indices
        and their ``[m, d]`` item vectors are returned. Only content towers can embed an item
        they never saw (the cold-start promise), so the default refuses."""
        raise RecAdaptError(f"model {self.name!r} has no content tower: it can only rank the "
                            "items it was trained on; retrain it to add items, or serve a "
                            "content model (iisan, frozen, ...)")

    def write_analysis(self, run_dir: Path, split: NextItemSplit | CTRSplit) -> None:
        """Write model-specific analyses into the run folder after training; ``split`` is the
        run's data (its test part, e.g.). Called once by
        ``recadapt.report.analysis.write_run_analysis`` (which also writes the multi-tower gate
        heatmaps and mutual information). Default: nothing."""

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, num_items + 1]`` scores of every item for each user (column 0 = padding)."""
        return self.user_embeddings(batch) @ self.item_embeddings().T

    def score_candidates(self, batch: dict[str, torch.Tensor],
                         candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` scores of each user's candidate items (``candidates [B, C]``), for the
        sampled protocol. Default: read them off :meth:`score`; models that cannot score the
        whole catalogue (an LLM choosing among listed titles) override this."""
        return self.score(batch).gather(1, candidates)


def given_stage(stages: dict[str, Recommender], field: str, model: str) -> Recommender:
    """The prerequisite run ``field`` that ``create`` received, or a one-line error."""
    if field not in stages:
        raise ConfigError(f"model.{field}: {model} builds on a trained {field} run; build it "
                          "with its prerequisites (recadapt.train.stages.build_with_stages)")
    return stages[field]


class CTRRecommender(Recommender):
    """Base of CTR models: :meth:`ctr_logits` gives one logit per sample; the default loss is
    binary cross-entropy on it, and the predicted probability is its sigmoid (for LLM scorers
    the logit is ``log p(Yes) - log p(No)``, so the sigmoid is the Yes/No softmax)."""

    tasks: ClassVar[frozenset[str]] = frozenset({"ctr"})

    @classmethod
    def create(cls, config: BaseModel, dataset: Dataset, run: RunConfig) -> Recommender:
        return cls(config, dataset, run)  # type: ignore[call-arg]

    def fit_training_samples(self, samples: CTRSamples) -> None:
        """Receive the training samples before training (graph models build their graph from
        them). Default: nothing to do."""

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            self.ctr_logits(batch).float(), batch["label"].float())

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.ctr_logits(batch)
