"""Fusing per-modality item vectors into one item vector (CROSSAN section 4 and Table 5).

Every mode maps ``M`` tower outputs ``z_m`` (``[N, width_m]``) to ``[N, out]``:

* ``concat`` — ``Linear([z_1 : … : z_M])``, the usual fusion layer (IISAN's eq. 1);
* ``static`` — S-Gated: one learned weight per modality, the same for every item:
  ``Σ_m softmax(w)_m · f_m(z_m)``;
* ``dynamic`` — D-Gated: a fully connected gating network gives each item its own weights
  over all modalities: ``Σ_m softmax(g(z))_m · f_m(z_m)``;
* ``momef`` — MOMEF, eq. 6: the same gating network scores the modality experts, each item
  keeps only its ``top_k`` highest-scoring experts, and their weights are renormalised to sum
  to 1 over the chosen ``k``: ``e = Σ_{m ∈ TopK} w_m · f_m(z_m)``.

Choices where the paper is silent (also in ``docs/decisions.md``): an expert ``f_m`` is a
linear map of tower ``m``'s output to ``out``; the gating network ``g`` is one linear layer
over the concatenation of all tower outputs; the renormalised top-k weights are the softmax of
the chosen experts' scores (equal to renormalising the full softmax), so gradients reach the
gate through the chosen experts' weights. Inputs are not re-normalised here: side-network
towers end in a LayerNorm already (:class:`~recadapt.nn.adapters.AdapterBlock`).

Optional balance term (not in eq. 6; ``balance`` > 0, MOMEF with ``top_k`` < ``M`` only): the
expert-level balance loss of DeepSeekMoE, which the paper cites as MOMEF's inspiration,
``α Σ_m f_m P_m`` with ``f_m = M / (k N) · #{items choosing m}`` and ``P_m`` the mean full
softmax weight of ``m`` over the ``N`` items of the step. Why: without it our MOMEF gates
collapse onto one tower for every item (docs/benchmarks/crossan.md). Measured at α 0.01 and
0.1, it balances which experts are chosen but not their weights: once the gate's softmax
saturates, ``P_m`` has no gradient left. With every expert kept ``f_m ≡ 1`` and the term is
constant, so it is refused there.

Optional cosine router (not in the paper; ``router="cosine"``, gated modes only): X-MoE's
router (Chi et al. 2022, "On the Representation Collapse of Sparse Mixture of Experts") in
place of the linear gate: the concatenated tower outputs are projected to a small routing
space, and each expert's score is the cosine similarity to a learned expert embedding there,
divided by a temperature ``τ``: ``s_m = cos(W z, e_m) / τ``. Why: scores lie in
``[-1/τ, 1/τ]``, so two experts' weights differ at most by a factor ``exp(2/τ)`` and the
softmax cannot saturate the way the linear gate's does (its weights reach 1.0 / 0.0 and stop
learning; docs/benchmarks/crossan.md). Our choices: ``τ`` is fixed (X-MoE learns it, which
would let it shrink back to saturation); routing dimension 16 (``ROUTING_DIM``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

FusionMode = Literal["momef", "dynamic", "static", "concat"]
Router = Literal["linear", "cosine"]
#: the cosine router's routing-space dimension (our choice; see module docstring)
ROUTING_DIM = 16


class CosineRouter(nn.Module):
    """``s_m = cos(W z, e_m) / τ`` for ``M`` experts: scores bounded by ``1/τ`` (see module
    docstring)."""

    def __init__(self, width: int, experts: int, temperature: float,
                 dim: int = ROUTING_DIM) -> None:
        super().__init__()
        self.project = nn.Linear(width, dim, bias=False)
        self.expert_embeddings = nn.Parameter(torch.randn(experts, dim) / dim ** 0.5)
        self.temperature = temperature

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        routed = F.normalize(self.project(inputs), dim=-1)
        return routed @ F.normalize(self.expert_embeddings, dim=-1).T / self.temperature


class ModalityFusion(nn.Module):
    """One of the four fusions above (see module docstring)."""

    def __init__(self, widths: Sequence[int], out: int, mode: FusionMode = "momef",
                 top_k: int = 2, balance: float = 0.0, router: Router = "linear",
                 temperature: float = 0.5) -> None:
        super().__init__()
        self.check(len(widths), mode, top_k, balance, router, temperature)
        self.mode, self.num_modalities = mode, len(widths)
        self.top_k = top_k if mode == "momef" else len(widths)
        self.balance, self.router = balance, router
        #: balance terms of the forward passes since :meth:`take_balance_loss`
        self._balance_terms: list[torch.Tensor] = []
        if mode == "concat":
            self.project = nn.Linear(sum(widths), out)
            return
        self.experts = nn.ModuleList(nn.Linear(w, out) for w in widths)
        if mode == "static":
            self.static_logits = nn.Parameter(torch.zeros(len(widths)))
        elif router == "cosine":
            self.gate = CosineRouter(sum(widths), len(widths), temperature)
        else:
            self.gate = nn.Linear(sum(widths), len(widths))

    @staticmethod
    def check(modalities: int, mode: FusionMode, top_k: int, balance: float,
              router: Router = "linear", temperature: float = 0.5) -> None:
        """Refuse settings that make no sense (``ValueError`` naming the setting), so that
        models can check their config before building anything."""
        if mode == "momef" and not 1 <= top_k <= modalities:
            raise ValueError(f"top_k must lie in 1..{modalities} (the modalities), got {top_k}")
        if balance < 0:
            raise ValueError(f"balance must be ≥ 0, got {balance}")
        if balance > 0 and (mode != "momef" or top_k >= modalities):
            raise ValueError("balance needs MOMEF with top_k below the number of modalities "
                             f"({modalities}): with every expert kept the term is constant")
        if router == "cosine" and mode not in ("momef", "dynamic"):
            raise ValueError(f"router cosine needs a per-item gate (momef or dynamic), not {mode}")
        if temperature <= 0:
            raise ValueError(f"router temperature must be > 0, got {temperature}")

    def weights(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``[N, M]`` fusion weights per item (zeros outside the top k); rows sum to 1."""
        rows = outputs[0].shape[0]
        if self.mode == "concat":
            raise ValueError("concat fusion has no modality weights")
        if self.mode == "static":
            return torch.softmax(self.static_logits, dim=0).expand(rows, -1)
        scores = self.gate(torch.cat(list(outputs), dim=-1))
        if self.top_k < self.num_modalities:
            chosen = scores.topk(self.top_k, dim=-1).indices
            if self.balance > 0 and self.training:
                self._balance_terms.append(self._balance_term(scores, chosen))
            mask = torch.full_like(scores, float("-inf")).scatter(-1, chosen, 0.0)
            scores = scores + mask
        return torch.softmax(scores, dim=-1)

    def _balance_term(self, scores: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """``α Σ_m f_m P_m`` over the rows of ``scores`` (see module docstring)."""
        rows, experts = scores.shape
        picked = torch.zeros_like(scores).scatter(-1, chosen, 1.0)
        load = picked.sum(0) * experts / (self.top_k * rows)  # f_m; 1 when balanced
        importance = torch.softmax(scores.float(), dim=-1).mean(0)  # P_m
        return self.balance * (load.detach().float() * importance).sum()

    def take_balance_loss(self) -> torch.Tensor | None:
        """The mean balance term of the forward passes since the last call (``None`` when
        there were none), and forget them: the model adds it to its loss once per step."""
        terms, self._balance_terms = self._balance_terms, []
        return torch.stack(terms).mean() if terms else None

    def forward(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.mode == "concat":
            return self.project(torch.cat(list(outputs), dim=-1))
        weights = self.weights(outputs)
        experts = torch.stack([f(z) for f, z in zip(self.experts, outputs, strict=True)], dim=1)
        return (weights.unsqueeze(-1).to(experts.dtype) * experts).sum(dim=1)
