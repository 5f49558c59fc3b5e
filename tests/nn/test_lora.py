"""Personalized LoRA: the batched mix equals eq. 11 built explicitly, per sample."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recadapt.nn.lora import (
    LoRAGate,
    PersonalizedLoRALinear,
    add_personalized_lora,
    gating,
    personalized_layers,
)


def layer(num_meta=3, r=2, seed=0) -> PersonalizedLoRALinear:
    torch.manual_seed(seed)
    lin = PersonalizedLoRALinear(nn.Linear(5, 4), num_meta=num_meta, r=r, alpha=4)
    nn.init.normal_(lin.lora_B)  # B starts at zero; give it values to test the mix
    return lin


def test_batched_mix_equals_explicit_per_sample_weights():
    lin = layer()
    x = torch.randn(2, 6, 5)
    gates = torch.softmax(torch.randn(2, 3), dim=-1)
    with gating(lin, gates):
        out = lin(x)
    delta = lin.delta_weight(gates)  # [B, d_in, d_out]
    for b in range(2):
        a = lin.lora_A.view(5, 3, 2)
        bb = lin.lora_B.view(3, 2, 4)
        manual = sum(gates[b, k] * a[:, k] @ bb[k] for k in range(3))
        torch.testing.assert_close(delta[b], manual)
        expected = lin.base_layer(x[b]) + lin.scaling * x[b] @ manual
        torch.testing.assert_close(out[b], expected, atol=1e-5, rtol=1e-5)


def test_one_hot_gates_pick_one_meta_lora_and_samples_differ():
    lin = layer()
    x = torch.randn(1, 5).expand(2, 5)
    with gating(lin, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])):
        out = lin(x)
    a, b = lin.lora_A.view(5, 3, 2), lin.lora_B.view(3, 2, 4)
    torch.testing.assert_close(out[0], lin.base_layer(x[0]) + lin.scaling * x[0] @ a[:, 0] @ b[0])
    torch.testing.assert_close(out[1], lin.base_layer(x[1]) + lin.scaling * x[1] @ a[:, 2] @ b[2])
    assert not torch.allclose(out[0], out[1])


def test_starts_as_the_frozen_layer_and_needs_gates():
    torch.manual_seed(0)
    base = nn.Linear(5, 4)
    lin = PersonalizedLoRALinear(base, num_meta=2, r=2)
    x = torch.randn(3, 5)
    with gating(lin, torch.full((3, 2), 0.5)):
        torch.testing.assert_close(lin(x), base(x))
    with pytest.raises(RuntimeError, match="gate weights"):
        lin(x)
    with pytest.raises(ValueError, match="gates must be"), gating(lin, torch.ones(3, 5)):
        pass


def test_injection_freezes_the_model_and_only_banks_and_gate_train():
    torch.manual_seed(0)
    model = nn.ModuleDict({"q_proj": nn.Linear(6, 6), "v_proj": nn.Linear(6, 6),
                           "o_proj": nn.Linear(6, 6)})
    names = add_personalized_lora(model, num_meta=4, r=2)
    assert sorted(names) == ["q_proj", "v_proj"]
    assert len(personalized_layers(model)) == 2
    gate = LoRAGate(in_dim=3, num_meta=4, temperature=0.5)
    rep = torch.randn(2, 3)
    for lin in personalized_layers(model):
        nn.init.normal_(lin.lora_B)
    x = torch.randn(2, 6)
    with gating(model, gate(rep)):
        loss = (model["v_proj"](model["q_proj"](x)) + model["o_proj"](x)).sum()
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {"q_proj.lora_A", "q_proj.lora_B", "v_proj.lora_A", "v_proj.lora_B"}
    assert all(p.grad is not None for p in gate.parameters())
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora" not in n)


def test_gate_is_a_tempered_softmax():
    gate = LoRAGate(in_dim=3, num_meta=4, temperature=0.1)
    alpha = gate(torch.randn(5, 3))
    torch.testing.assert_close(alpha.sum(-1), torch.ones(5))
    beta = gate.second(torch.relu(gate.norm(gate.first(torch.zeros(1, 3)))))
    torch.testing.assert_close(gate(torch.zeros(1, 3)), torch.softmax(beta / 0.1, -1))
