"""RecLoRA on the packaged SmolLM2-135M: Few2Many stages, per-sample meta-LoRA gates, and
which weights train."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from recadapt.config import validate_config
from recadapt.data.ctr import ctr_batches
from recadapt.nn.lora import PersonalizedLoRALinear
from recadapt.train.checkpoint import load_model_weights, load_weights
from recadapt.train.loop import train_run
from recadapt.train.runs import prepare_data
from recadapt.train.stages import build_with_stages, load_trained_run


@pytest.fixture(scope="module")
def planted(tmp_path_factory, planted_titles_writer):
    """"sunny X" items are rated 5, "rainy X" 1: the item text decides the label."""
    return planted_titles_writer(tmp_path_factory.mktemp("reclora"), seed=0)


def config_for(folder, **model):
    return validate_config({
        "data": {"source": str(folder / "inter.csv"), "item_path": str(folder / "items.csv"),
                 "title_field": "title", "task": "ctr",
                 "ctr": {"history_len": 6, "split": [0.6, 0.2, 0.2], "k_shot": 16,
                         "max_eval_samples": 8}},
        "model": {"name": "reclora", "prompt_format": "alpaca", "num_meta": 3,
                  "template": {"base": "reclora", "wrapper": "plain"}, "prompt_history_len": 2,
                  "crm": {"train": {"epochs": 2, "batch_size": 16}}, **model},
        "train": {"epochs": 1, "batch_size": 8, "lr": 3e-3, "num_threads": 1, "seed": 0},
    })


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reclora-run") / "run"
    result = train_run(config_for(planted), run_dir, progress=False)
    return run_dir, result


def test_few2many_trains_the_crm_on_the_full_split_first(trained):
    run_dir, result = trained
    crm_config = (run_dir / "stages" / "crm" / "config.yaml").read_text()
    assert "k_shot: null" in crm_config and "name: sim" in crm_config
    assert "k_shot: 16" in (run_dir / "config.yaml").read_text()
    assert str((run_dir / "stages" / "crm").resolve()) in (run_dir / "config.yaml").read_text()
    assert 0.0 <= result.metrics["test"]["AUC"] <= 1.0


def test_only_the_gate_and_the_meta_lora_banks_change(trained):
    run_dir, _ = trained
    config = validate_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    weights = load_weights(run_dir / "model.safetensors")
    crm = load_weights(run_dir / "stages" / "crm" / "model.safetensors")
    model = build_with_stages(config, prepare_data(config).dataset)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {name for name, _ in model.named_buffers()}
    for key, value in crm.items():  # the frozen CTR model: not saved, rebuilt bit-identical
        assert f"crm.{key}" not in weights or f"crm.{key}" in buffers, key
        assert torch.equal(fresh[f"crm.{key}"], value), key
    load_model_weights(model, run_dir / "model.safetensors")  # its fingerprints match
    changed = {k for k, v in weights.items() if not torch.equal(v, fresh[k])}
    assert changed, "nothing trained"
    assert all(k.startswith("gate.") or k.endswith(("lora_A", "lora_B")) for k in changed), changed
    assert any(k.endswith("lora_B") for k in changed) and any(k.startswith("gate.") for k in
                                                              changed)


def test_the_crm_stage_is_planned_when_no_run_is_given(planted):
    config = config_for(planted)
    from recadapt.train.stages import plan_stages

    filled, stages = plan_stages(config, planted / "unused")
    assert [s.field for s in stages] == ["crm"]
    assert filled.model["crm"]["run"].endswith("stages/crm")
    assert stages[0].config.data.ctr.k_shot is None  # Few2Many: the full training split
    assert filled.data.ctr.k_shot == 16


def test_gate_mixes_differ_between_users_and_gradients_reach_only_adapters(trained):
    run_dir, _ = trained
    config = validate_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    prepared = prepare_data(config)
    model = build_with_stages(config, prepared.dataset)
    from recadapt.data.ctr import ctr_batches

    batch = next(iter(ctr_batches(prepared.split.train, 6)))
    alpha = model.gates(batch)
    assert alpha.shape == (6, 3)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(6))
    assert alpha.std(dim=0).sum() > 1e-4  # samples with other histories get other mixes
    model.train()
    model.loss(batch).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("gate.") or n.endswith(("lora_A", "lora_B"))
                         for n in grads), grads
    layers = [m for m in model.lm.modules() if isinstance(m, PersonalizedLoRALinear)]
    bank = sum(m.lora_A.numel() + m.lora_B.numel() for m in layers)
    gate = sum(p.numel() for p in model.gate.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == bank + gate
    r, n_m = 8, 3
    assert bank == sum(n_m * r * (m.in_features + m.out_features) for m in layers)


def test_one_meta_lora_has_a_constant_gate(planted, trained):
    run_dir, _ = trained
    crm_run = str(run_dir / "stages" / "crm")
    config = config_for(planted, crm={"run": crm_run}, num_meta=1)
    prepared = prepare_data(config)
    model = build_with_stages(config, prepared.dataset)
    from recadapt.data.ctr import ctr_batches

    batch = next(iter(ctr_batches(prepared.split.train, 4)))
    torch.testing.assert_close(model.gates(batch), torch.ones(4, 1))


def test_write_analysis_records_each_test_users_gate_mix(trained):
    run_dir, _ = trained
    gates = json.loads((run_dir / "gates.json").read_text())
    config = validate_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    prepared = prepare_data(config)
    test = prepared.split.test
    assert gates["kind"] == "reclora_meta_lora_gates" and gates["num_meta"] == 3
    assert sorted(gates["users"]) == sorted({str(u) for u in
                                             prepared.dataset.user_ids[test.users]})
    assert sum(gates["samples"]) == len(test)
    mixes = np.asarray(gates["gates"])
    np.testing.assert_allclose(mixes.sum(1), 1.0, atol=1e-5)
    # the trained gate on one user's test samples gives the recorded mix
    model, _ = load_trained_run(str(run_dir), prepared.dataset, "run")
    first = gates["users"][0]
    rows = np.flatnonzero(prepared.dataset.user_ids[test.users] == first)
    batch = next(iter(ctr_batches(test.subset(rows), len(rows))))
    np.testing.assert_allclose(model.gates(batch).mean(0).numpy(), mixes[0], atol=1e-5)
    assert sum(gates["argmax_share"]) == pytest.approx(1.0)


def test_resume_restores_the_banks_over_the_rebuilt_frozen_llm(planted, tmp_path,
                                                               stopped_and_resumed):
    """Checkpoints leave the frozen LLM and CTR model out (megabytes, not the LLM's 500 MB);
    a run stopped after epoch 1 and resumed ends with the uninterrupted run's weights."""
    config = config_for(planted, crm={"train": {"epochs": 1, "batch_size": 16}})
    config.train.epochs = 2

    def small_checkpoint(run_dir):
        assert (run_dir / "checkpoints" / "last.safetensors").stat().st_size < 20e6

    stopped_and_resumed(config, tmp_path, 1, small_checkpoint)
    saved = load_weights(tmp_path / "straight" / "model.safetensors")
    assert any(k.endswith("lora_B") for k in saved)
