"""Graph CTR baselines of ATFLRec Table II: "GCN" = LightGCN (He et al., 2020) and GraphSAGE
(Hamilton et al., 2017), trained on the same (K-shot) CTR samples as the other baselines.

**Graph.** :meth:`GraphCTR.fit_training_samples` builds the bipartite user–item graph from
the training samples only: an edge ``(user, item)`` for every positive training sample
(``label >= 0.5``) and for every liked behaviour in the histories of all training samples,
positive or negative (``history_label >= 0.5``, item ``> 0``: a liked behaviour is a positive
interaction whatever the label of the sample carrying it). Nothing else enters — no
validation/test samples, no other interactions of the dataset — so a K-shot run sees exactly
the K samples and the histories they carry. The batch's own ``history`` is not read at
scoring time: the user is represented by their node in the training graph, as in the
papers (a user absent from that graph is scored from their untrained ID embedding; see
*Cold users* below).

The graph is a deterministic function of the samples, so reloading a run
(``recommend.load_run`` calls ``fit_training_samples`` before ``load_state_dict``) rebuilds
it exactly. The normalised adjacency is a plain attribute, not a parameter or buffer: it is
never in the state dict (the weights file holds only what was learnt) and is moved to the
embeddings' device on first use in :meth:`GraphCTR.ctr_logits`.

**Embeddings.** One learnable ID embedding per user and per item (item 0 = padding, zero),
initialised ``N(0, 0.1²)`` as in LightGCN's reference implementation. Users and items absent
from the training graph (cold in the K-shot graph) keep their own embedding: LightGCN's
layer-0 term, GraphSAGE's self term.

**Score.** Each call propagates the whole graph once (graphs here have a few thousand nodes)
and scores ``logit = <z_user, z_item> + b`` with a learnable global bias ``b`` (the CTR base
rate); binary cross-entropy trains it (``CTRRecommender.loss``). GraphSAGE's outputs are
unit vectors, so their dot product is a cosine in ``[-1, 1]``; GraphSAGE therefore multiplies it
by a learnable scale ``s`` (initialised to 1; an initial 5 made early logits large and noisy and
cost ~0.08 test AUC on ML-100K) before adding ``b``, letting probabilities reach beyond
``sigmoid(b ± 1)``. Weight decay is the loop's ``train.weight_decay``.

**Cold users** (``cold_users``). Under the global-time split most test samples belong to users
with no edge in the training graph (ML-100K: 86% of test samples with the full training set,
95% with K = 256), whose ID embedding never received a gradient. ``"embedding"`` (default)
scores them with that embedding anyway, the transductive setting of the papers.
``"history"`` folds such a user in inductively, as GraphSAGE does for unseen nodes: the user
vector is the mean propagated representation of the liked items in the sample's own history
(the behaviours before it, which the sequence baselines read too), L2-normalised for
GraphSAGE; users in the graph, and cold users without a liked behaviour, are unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from recadapt.data.ctr import CTRSamples
from recadapt.errors import RecAdaptError
from recadapt.models.base import CTRRecommender
from recadapt.models.registry import register_model
from recadapt.nn.graph import (
    GraphSAGEEncoder,
    LightGCNPropagation,
    bipartite_adjacency,
    mean_adjacency,
    normalized_adjacency,
)


def training_edges(samples: CTRSamples) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)`` of the graph's edges: positive samples and the liked items of every
    sample's history (module docstring); duplicates are left for the adjacency to merge."""
    positive = samples.labels >= 0.5
    liked = (samples.history_labels >= 0.5) & (samples.history > 0)
    history_users = np.broadcast_to(samples.users[:, None], samples.history.shape)[liked]
    users = np.concatenate([samples.users[positive], history_users]).astype(np.int64)
    items = np.concatenate([samples.items[positive], samples.history[liked]]).astype(np.int64)
    return users, items


ColdUsers = Literal["embedding", "history"]
COLD_USERS_HELP = ("users without an edge in the training graph: 'embedding' = their own "
                   "(untrained) ID embedding; 'history' = mean representation of the liked "
                   "items in the sample's history (inductive fold-in)")


class LightGCNCTRConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_size: int = Field(64, ge=1, description="user and item ID embedding width")
    num_layers: int = Field(3, ge=0, description="propagation layers K (outputs averaged)")
    cold_users: ColdUsers = Field("embedding", description=COLD_USERS_HELP)


class GraphSAGECTRConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_size: int = Field(64, ge=1, description="ID embedding and layer width")
    num_layers: int = Field(2, ge=1, description="GraphSAGE layers (hops aggregated)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on each layer's input")
    fanout: int | None = Field(
        None, ge=1, description="sample at most this many neighbours per node per layer in "
        "training (None: full neighbourhood, exact and cheap on these small graphs)")
    cold_users: ColdUsers = Field("embedding", description=COLD_USERS_HELP)


class GraphCTR(CTRRecommender):
    """Shared parts: ID embeddings, the training graph, ``<z_u, z_i> + b`` scoring."""

    #: GraphSAGE's outputs are unit vectors; a folded-in cold user is normalised likewise
    unit_outputs = False

    def __init__(self, embedding_size: int, num_users: int, num_items: int,
                 cold_users: ColdUsers = "embedding") -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.cold_users = cold_users
        self.users = nn.Embedding(num_users, embedding_size)
        self.items = nn.Embedding(num_items + 1, embedding_size, padding_idx=0)
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self._graph: dict[str, torch.Tensor] | None = None  # not in the state dict
        self.num_edges = 0

    # -- graph ------------------------------------------------------------------------------
    def fit_training_samples(self, samples: CTRSamples) -> None:
        users, items = training_edges(samples)
        adjacency = bipartite_adjacency(users, items, self.num_users, self.num_items)
        self.num_edges = adjacency.values().numel() // 2
        in_graph = torch.zeros(self.num_users, dtype=torch.bool)
        in_graph[torch.as_tensor(users)] = True
        self._graph = {**self.prepare_graph(adjacency), "users_in_graph": in_graph}

    def prepare_graph(self, adjacency: torch.Tensor) -> dict[str, torch.Tensor]:
        """The sparse matrices propagation needs, from the binary adjacency (the model adds
        ``users_in_graph``, a boolean mask over users)."""
        raise NotImplementedError

    def graph(self, device: torch.device) -> dict[str, torch.Tensor]:
        if self._graph is None:
            raise RecAdaptError(f"{self.name}: call fit_training_samples(train samples) before "
                                "scoring; the graph is built from them")
        if any(matrix.device != device for matrix in self._graph.values()):
            self._graph = {key: matrix.to(device) for key, matrix in self._graph.items()}
        return self._graph

    # -- scoring ----------------------------------------------------------------------------
    def node_embeddings(self) -> torch.Tensor:
        """``[num_users + num_items + 1, d]`` propagated representations (graph node order)."""
        raise NotImplementedError

    def layer0(self) -> torch.Tensor:
        return torch.cat([self.users.weight, self.items.weight])

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = self.node_embeddings()
        z_user = z[batch["user"]]
        if self.cold_users == "history":
            z_user = self.fold_in_cold_users(z, z_user, batch)
        z_item = z[self.num_users + batch["item"]]
        return self.similarity_scale() * (z_user * z_item).sum(-1) + self.bias

    def similarity_scale(self) -> torch.Tensor | float:
        return 1.0

    def fold_in_cold_users(self, z: torch.Tensor, z_user: torch.Tensor,
                           batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Users absent from the graph: mean ``z`` of the liked items of their history."""
        history = batch["history"]
        liked = ((batch["history_label"] >= 0.5) & (history > 0)).to(z.dtype)
        count = liked.sum(1, keepdim=True)
        folded = (z[self.num_users + history] * liked.unsqueeze(-1)).sum(1) / count.clamp(min=1)
        if self.unit_outputs:
            folded = F.normalize(folded, dim=-1)
        cold = ~self.graph(z.device)["users_in_graph"][batch["user"]]
        use = (cold & (count.squeeze(1) > 0)).unsqueeze(-1)
        return torch.where(use, folded, z_user)


@register_model("lightgcn", LightGCNCTRConfig)
class LightGCNCTR(GraphCTR):
    """LightGCN ("GCN" of ATFLRec Table II): mean over ``K + 1`` propagation layers of the ID
    embeddings on ``D^-1/2 A D^-1/2`` (``nn.graph.LightGCNPropagation``)."""

    def __init__(self, config: LightGCNCTRConfig, dataset, run) -> None:
        super().__init__(config.embedding_size, dataset.num_users, dataset.num_items,
                         config.cold_users)
        self.propagation = LightGCNPropagation(config.num_layers)

    def prepare_graph(self, adjacency: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"normalized": normalized_adjacency(adjacency)}

    def node_embeddings(self) -> torch.Tensor:
        x = self.layer0()
        return self.propagation(x, self.graph(x.device)["normalized"])


@register_model("graphsage", GraphSAGECTRConfig)
class GraphSAGECTR(GraphCTR):
    """GraphSAGE-mean over the ID embeddings (``nn.graph.GraphSAGEEncoder``); the cosine of
    the unit-norm outputs is scaled by a learnable ``s`` (module docstring)."""

    unit_outputs = True

    def __init__(self, config: GraphSAGECTRConfig, dataset, run) -> None:
        super().__init__(config.embedding_size, dataset.num_users, dataset.num_items,
                         config.cold_users)
        self.encoder = GraphSAGEEncoder(config.embedding_size, config.num_layers,
                                        config.dropout, config.fanout)
        self.scale = nn.Parameter(torch.tensor(1.0))

    def prepare_graph(self, adjacency: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"adjacency": adjacency, "mean": mean_adjacency(adjacency)}

    def node_embeddings(self) -> torch.Tensor:
        x = self.layer0()
        graph = self.graph(x.device)
        return self.encoder(x, graph["adjacency"], graph["mean"])

    def similarity_scale(self) -> torch.Tensor:
        return self.scale
