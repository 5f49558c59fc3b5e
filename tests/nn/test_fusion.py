"""Fusion modes (CROSSAN Table 5): MOMEF keeps exactly k experts with weights summing to 1 and
trains its gate; static weights are the same for every item; concat is one linear map."""

from __future__ import annotations

import pytest
import torch

from recadapt.nn.fusion import ModalityFusion


def _outputs(rows: int = 6, width: int = 5, modalities: int = 4) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(rows, width) for _ in range(modalities)]


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_momef_selects_exactly_k_experts_with_weights_summing_to_one(k: int) -> None:
    fusion = ModalityFusion([5] * 4, out=3, mode="momef", top_k=k)
    outputs = _outputs()
    weights = fusion.weights(outputs)
    assert ((weights > 0).sum(dim=1) == k).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(6))
    # the chosen experts are the k highest gate scores
    scores = fusion.gate(torch.cat(outputs, dim=-1))
    chosen = scores.topk(k, dim=-1).indices.sort(dim=-1).values
    assert torch.equal((weights > 0).nonzero()[:, 1].view(6, k), chosen)


def test_momef_output_is_the_weighted_sum_of_the_chosen_experts_and_trains_the_gate() -> None:
    fusion = ModalityFusion([5] * 4, out=3, mode="momef", top_k=2)
    outputs = _outputs()
    weights = fusion.weights(outputs)
    experts = torch.stack([f(z) for f, z in zip(fusion.experts, outputs, strict=True)], dim=1)
    expected = (weights.unsqueeze(-1) * experts).sum(dim=1)
    torch.testing.assert_close(fusion(outputs), expected)
    fusion(outputs).pow(2).sum().backward()
    assert fusion.gate.weight.grad is not None and fusion.gate.weight.grad.abs().sum() > 0
    # an expert never chosen for any item gets no gradient from this batch
    chosen = (weights > 0).any(dim=0)
    for m, expert in enumerate(fusion.experts):
        assert (expert.weight.grad.abs().sum() > 0) == bool(chosen[m])


def test_dynamic_gate_weights_all_modalities_per_item_and_static_is_shared() -> None:
    outputs = _outputs()
    dynamic = ModalityFusion([5] * 4, out=3, mode="dynamic")
    weights = dynamic.weights(outputs)
    assert (weights > 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(6))
    assert not torch.allclose(weights[0], weights[1])  # per item
    static = ModalityFusion([5] * 4, out=3, mode="static")
    with torch.no_grad():
        static.static_logits.copy_(torch.tensor([0.0, 1.0, 2.0, -1.0]))
    shared = static.weights(outputs)
    assert torch.allclose(shared, shared[:1].expand(6, -1))
    torch.testing.assert_close(shared[0], torch.softmax(torch.tensor([0.0, 1.0, 2.0, -1.0]), 0))


def test_momef_keeping_every_expert_is_the_dynamic_gate() -> None:
    """Why the benchmark's D-Gated row and MOMEF top_k = M are one model
    (docs/benchmarks/crossan.md)."""
    outputs = _outputs()
    torch.manual_seed(1)
    dynamic = ModalityFusion([5] * 4, out=3, mode="dynamic")
    torch.manual_seed(1)
    keep_all = ModalityFusion([5] * 4, out=3, mode="momef", top_k=4)
    torch.testing.assert_close(keep_all(outputs), dynamic(outputs), rtol=0, atol=0)
    torch.manual_seed(1)
    keep_two = ModalityFusion([5] * 4, out=3, mode="momef", top_k=2)
    assert not torch.allclose(keep_two(outputs), dynamic(outputs))


def test_concat_is_one_linear_map_and_top_k_is_checked() -> None:
    outputs = _outputs(modalities=2)
    concat = ModalityFusion([5, 5], out=3, mode="concat")
    torch.testing.assert_close(concat(outputs), concat.project(torch.cat(outputs, dim=-1)))
    with pytest.raises(ValueError, match="top_k"):
        ModalityFusion([5, 5], out=3, mode="momef", top_k=3)


def test_balance_term_matches_deepseekmoe_by_hand_and_reaches_the_gate() -> None:
    fusion = ModalityFusion([2] * 3, out=2, mode="momef", top_k=1, balance=0.5)
    with torch.no_grad():  # the gate reads the concatenated outputs; make scores easy to read
        fusion.gate.weight.zero_()
        fusion.gate.bias.zero_()
        fusion.gate.weight[0, 0] = 1.0  # expert 0's score = the first feature of modality 0
    first = torch.tensor([[3.0, 0.0], [2.0, 0.0], [-5.0, 0.0], [-5.0, 0.0]])
    outputs = [first.clone().requires_grad_(), torch.zeros(4, 2), torch.zeros(4, 2)]
    fusion(outputs)
    term = fusion.take_balance_loss()
    assert term is not None and fusion.take_balance_loss() is None  # taken once
    # items 1-2 choose expert 0; items 3-4 tie between 1 and 2 at score 0 (topk picks one)
    scores = torch.tensor([[3.0, 0, 0], [2.0, 0, 0], [-5.0, 0, 0], [-5.0, 0, 0]])
    importance = torch.softmax(scores, -1).mean(0)
    chosen = scores.topk(1, dim=-1).indices.squeeze(-1)
    load = torch.bincount(chosen, minlength=3).float() * 3 / (1 * 4)
    torch.testing.assert_close(term, 0.5 * (load * importance).sum())
    term.backward()
    assert fusion.gate.weight.grad is not None and fusion.gate.weight.grad.abs().sum() > 0


def test_balance_is_only_computed_in_training_and_refused_where_constant() -> None:
    fusion = ModalityFusion([5] * 4, out=3, mode="momef", top_k=2, balance=0.01)
    fusion.eval()
    fusion(_outputs())
    assert fusion.take_balance_loss() is None
    for mode, k in (("momef", 4), ("dynamic", 2), ("concat", 2)):
        with pytest.raises(ValueError, match="balance"):
            ModalityFusion([5] * 4, out=3, mode=mode, top_k=k, balance=0.01)
    assert ModalityFusion([5] * 4, out=3, mode="momef", top_k=4).take_balance_loss() is None


@pytest.mark.parametrize("mode", ["momef", "dynamic"])
def test_cosine_router_bounds_the_weights_where_the_linear_gate_saturates(mode: str) -> None:
    """X-MoE's cosine router: scores in [-1/τ, 1/τ], so on huge inputs no weight reaches 1 and
    the gate still gets a gradient, while the linear gate's softmax saturates to 1 / 0."""
    huge = [1000 * z for z in _outputs()]
    torch.manual_seed(2)
    linear = ModalityFusion([5] * 4, out=3, mode=mode, top_k=2)
    assert linear.weights(huge).max() > 1 - 1e-6
    torch.manual_seed(2)
    cosine = ModalityFusion([5] * 4, out=3, mode=mode, top_k=2, router="cosine",
                            temperature=0.5)
    scores = cosine.gate(torch.cat(huge, dim=-1))
    assert scores.abs().max() <= 1 / 0.5 + 1e-5
    weights = cosine.weights(huge)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(6))
    kept = 2 if mode == "momef" else 4
    assert ((weights > 0).sum(dim=1) == kept).all()
    # two kept weights differ at most by exp(2/τ), so the largest is at most e^4 / (e^4 + k - 1)
    bound = torch.exp(torch.tensor(4.0))
    assert weights.max() <= bound / (bound + kept - 1) + 1e-5
    cosine(huge).pow(2).sum().backward()
    for parameter in (cosine.gate.project.weight, cosine.gate.expert_embeddings):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_cosine_router_is_refused_without_a_per_item_gate_or_a_positive_temperature() -> None:
    with pytest.raises(ValueError, match="router cosine"):
        ModalityFusion([5] * 4, out=3, mode="static", router="cosine")
    with pytest.raises(ValueError, match="temperature"):
        ModalityFusion([5] * 4, out=3, mode="momef", router="cosine", temperature=0.0)
