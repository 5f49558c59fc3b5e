"""ATFLRec: dual/single/text LoRA configurations over MiniLM, FBank audio tokens, the schedule."""

from __future__ import annotations

import json

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file

from recadapt.config import validate_config
from recadapt.data.ctr import CTRDataset, collate_ctr
from recadapt.data.synth import SynthConfig, generate
from recadapt.models.atflrec import AudioEmbedding, pool_history, segment_frames
from recadapt.models.registry import build_model
from recadapt.train.loop import train_run, warmup_linear
from recadapt.train.runs import prepare_data

TOKENS = 8  # audio tokens per item in these tests (default 32)
SECONDS = 3.0  # the synthetic clips' length (default: the paper's 30 s, mostly padding here)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # sequences of at most 16 of the 30 items leave room for sampled negatives
    folder = tmp_path_factory.mktemp("atflrec") / "synth"
    generate(folder, SynthConfig(items=30, users=40, max_seq_len=16, seed=0), progress=False)
    return folder


def make_config(folder, train=None, ctr=None, **model):
    return validate_config({
        "data": {"source": str(folder), "task": "ctr",
                 "ctr": {"history_len": 6, **(ctr or {})}},
        "model": {"name": "atflrec", "audio_tokens": TOKENS, "audio_seconds": SECONDS,
                  **model},
        "train": {"num_threads": 1, "seed": 0, **(train or {})},
    })


@pytest.fixture(scope="module")
def prepared(synth):
    return prepare_data(make_config(synth))


def build(synth, prepared, **model):
    torch.manual_seed(0)
    return build_model(make_config(synth, **model), prepared.dataset)


def first_batch(prepared, size=8, part="train"):
    samples = getattr(prepared.split, part)
    return collate_ctr([CTRDataset(samples)[i] for i in range(size)])


def lora_layers(model):
    return [m for m in model.text_model.modules() if isinstance(m, BaseTunerLayer)]


def step(model, batch, lr=1e-2):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    model.loss(batch).backward()
    optimizer.step()
    optimizer.zero_grad()


def test_dual_lora_has_two_distinct_adapters_and_both_learn(synth, prepared):
    model = build(synth, prepared)
    layers = lora_layers(model)
    assert layers
    for layer in layers:
        assert set(layer.lora_A) == {"text", "audio"} == set(layer.lora_B)
        assert layer.lora_A["text"].weight is not layer.lora_A["audio"].weight
        assert layer.lora_B["text"].weight.data_ptr() != layer.lora_B["audio"].weight.data_ptr()
    before = {name: [layer.lora_B[name].weight.detach().clone() for layer in layers]
              for name in ("text", "audio")}
    assert all(w.abs().sum() == 0 for ws in before.values() for w in ws)  # LoRA starts at zero
    step(model, first_batch(prepared))
    for name, weights in before.items():
        changed = [not torch.equal(w, layer.lora_B[name].weight)
                   for w, layer in zip(weights, layers, strict=True)]
        assert all(changed), f"adapter {name!r}: some lora_B did not move"
    # the adapters are different functions now: one input, two outputs
    batch = first_batch(prepared, 4)
    model.eval()
    ids, mask = model.encode_prompts(batch, 64)
    with torch.no_grad():
        states = [model._run(name, mask, input_ids=ids) for name in ("text", "audio")]
    assert not torch.allclose(states[0], states[1])


def test_base_weights_stay_bit_identical(synth, prepared):
    model = build(synth, prepared, lora_mode="single")
    base = {k: v.clone() for k, v in model.text_model.state_dict().items() if "lora_" not in k}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith(("audio_net.", "classifier.")) for n in trainable)
    for start in (0, 8, 16):
        batch = collate_ctr([CTRDataset(prepared.split.train)[i] for i in range(start, start + 8)])
        step(model, batch)
    after = model.text_model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in base.items())


def test_audio_network_gives_width_vectors_per_token(synth, prepared):
    model = build(synth, prepared)
    width = model.text_model.config.hidden_size
    assert model.audio_feats.shape == (prepared.dataset.num_items + 1, TOKENS, 80)
    assert not model.audio_valid[0].any()  # padding row: no audio
    assert model.audio_valid[1:].all()  # every synthetic item has a whole 3 s clip
    model.eval()
    emb, valid = model.item_audio(torch.tensor([1, 2, 3]))
    assert emb.shape == (3, TOKENS, width) and valid.shape == (3, TOKENS)
    assert torch.equal(emb[~valid], torch.zeros_like(emb[~valid]))
    state = model.state_dict()
    assert not any(k.startswith(("audio_feats", "audio_valid")) for k in state)  # not persisted
    assert {"audio_net.norm.running_mean", "audio_net.proj.0.weight"} <= set(state)


def test_segments_average_real_frames_and_mask_padding():
    frames = torch.arange(12, dtype=torch.float32).reshape(6, 2)  # 6 real frames of 20
    out, valid = segment_frames(frames, total=20, tokens=4)  # 5 frames per segment
    assert valid.tolist() == [True, True, False, False]
    assert torch.allclose(out[0], frames[:5].mean(0)) and torch.allclose(out[1], frames[5])
    assert torch.equal(out[2:], torch.zeros(2, 2))
    empty, none = segment_frames(torch.zeros(0, 2), total=20, tokens=4)
    assert not none.any() and torch.equal(empty, torch.zeros(4, 2))


def test_audio_embedding_layers_and_masked_batch_norm():
    net = AudioEmbedding(bins=40, width=12)
    assert [type(m).__name__ for m in net.proj] == ["Linear", "SiLU", "Linear"]
    assert net.proj[0].out_features == 256 and net.norm.num_features == 12
    valid = torch.tensor([[True, True, False], [True, False, False]])
    out = net(torch.randn(2, 3, 40), valid)
    assert out.shape == (2, 3, 12)
    assert torch.equal(out[~valid], torch.zeros(3, 12))
    assert torch.allclose(out[valid].mean(0), torch.zeros(12), atol=1e-5)  # batch statistics


def test_history_pooling_mean_and_max_by_hand():
    # one sample, history of 3 items, 2 tokens of width 2
    tokens = torch.tensor([[[[1.0, -4.0], [0.0, 0.0]],
                            [[3.0, 2.0], [5.0, -1.0]],
                            [[100.0, 100.0], [100.0, 100.0]]]])
    valid = torch.tensor([[[True, False], [True, True], [False, False]]])  # item 3 not liked
    mean, mean_mask = pool_history(tokens, valid, "mean")
    top, top_mask = pool_history(tokens, valid, "max")
    assert torch.allclose(mean[0], torch.tensor([[2.0, -1.0], [5.0, -1.0]]))
    assert torch.allclose(top[0], torch.tensor([[3.0, 2.0], [5.0, -1.0]]))
    assert mean_mask.tolist() == top_mask.tolist() == [[True, True]]
    nothing, mask = pool_history(tokens, torch.zeros_like(valid), "max")
    assert torch.equal(nothing, torch.zeros(1, 2, 2)) and not mask.any()


@pytest.mark.parametrize("how", ["mean", "max"])
def test_audio_sequence_pools_liked_history_then_target(synth, prepared, how):
    model = build(synth, prepared, audio_pooling=how).eval()
    batch = {"user": torch.tensor([0, 1]), "item": torch.tensor([5, 6]),
             "label": torch.tensor([1.0, 0.0]),
             "history": torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0]]),
             "history_label": torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]),
             "history_rating": torch.zeros(2, 4)}
    with torch.no_grad():
        seq, mask = model.audio_sequence(batch)
        liked, liked_valid = model.item_audio(torch.tensor([1, 3]))  # item 2 is disliked
        target, target_valid = model.item_audio(torch.tensor([5, 6]))
    expected, _ = pool_history(liked.unsqueeze(0), liked_valid.unsqueeze(0), how)
    assert seq.shape == (2, 2 * TOKENS, model.width)
    assert torch.allclose(seq[0, :TOKENS], expected[0], atol=1e-5)
    assert torch.allclose(seq[:, TOKENS:], target, atol=1e-5)
    assert torch.equal(mask[:, TOKENS:], target_valid)
    assert not mask[1, :TOKENS].any() and torch.equal(seq[1, :TOKENS],
                                                       torch.zeros(TOKENS, model.width))


def test_single_and_text_modes_give_one_logit_per_sample(synth, prepared):
    batch = first_batch(prepared, 5)
    single = build(synth, prepared, lora_mode="single", max_length=64).eval()
    text = build(synth, prepared, lora_mode="text").eval()
    with torch.no_grad():
        for model in (single, text):
            logits = model.ctr_logits(batch)
            assert logits.shape == (5,) and torch.isfinite(logits).all()
    ids, _ = single.encode_prompts(batch, 64 - 2 * TOKENS)  # single's text budget
    assert ids.shape[1] <= 64 - 2 * TOKENS
    assert text.audio_net is None and not hasattr(text, "audio_feats")
    trained = [n for n, p in text.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n or n.startswith("classifier.") for n in trained)
    assert all(set(layer.lora_A) == {"text"} for layer in lora_layers(text))
    assert {n.split(".")[0] for n, p in single.named_parameters()
            if p.requires_grad and "lora_" not in n} == {"audio_net", "classifier"}


def test_dual_trains_twice_the_lora_parameters_of_single(synth, prepared):
    dual, single = (build(synth, prepared, lora_mode=m) for m in ("dual", "single"))
    text = build(synth, prepared, lora_mode="text")
    layers = len(lora_layers(single))
    per_adapter = layers * 4 * 2 * single.width  # r = 4: A [4, d] and B [d, 4] per layer
    assert single.lora_parameters() == {"text": per_adapter} == text.lora_parameters()
    assert dual.lora_parameters() == {"text": per_adapter, "audio": per_adapter}

    def trainable(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    assert trainable(dual) - trainable(single) == per_adapter  # the audio adapter
    assert trainable(single) - trainable(text) == sum(p.numel()
                                                      for p in single.audio_net.parameters())


def test_prompts_lose_their_beginning_and_keep_special_tokens(synth, prepared):
    model = build(synth, prepared, lora_mode="text")
    batch = first_batch(prepared, 3)
    full, _ = model.encode_prompts(batch, 512)
    cut, mask = model.encode_prompts(batch, 20)
    tok = model.tokenizer
    assert cut.shape[1] == 20 and mask.all()
    assert (cut[:, 0] == tok.cls_token_id).all() and (cut[:, -1] == tok.sep_token_id).all()
    lengths = (full != tok.pad_token_id).sum(1)
    for row in range(3):  # the end of the prompt (the target item) survives
        assert torch.equal(cut[row, 1:-1], full[row, lengths[row] - 19: lengths[row] - 1])
    assert "Target project:" in model.prompt_texts(batch)[0]


def test_train_run_writes_ctr_metrics(synth, tmp_path):
    config = make_config(
        synth, ctr={"k_shot": 20, "max_eval_samples": 24},
        train={"epochs": 2, "batch_size": 8, "grad_accum_steps": 2, "drop_last": True,
               "lr": 1e-3, "warmup_steps": 3, "warmup_start": 1e-9, "schedule": "linear",
               "patience": 5})
    result = train_run(config, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["AUC"] <= 1.0 and metrics["test"]["LogLoss"] > 0
    assert (tmp_path / "run" / "predictions.json").is_file()
    assert [r["steps"] for r in result.history] == [2, 2]  # 20 samples: the last 4 dropped
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert not any(k.startswith("audio_") and "audio_net" not in k for k in saved)
    assert 0 < result.efficiency["trainable_params"] < result.efficiency["total_params"] / 50


def test_schedule_starts_at_1e9_peaks_after_50_steps_and_ends_at_zero():
    lr, total = 1e-3, 120
    factor = warmup_linear(50, total, decay=True, start=1e-9 / lr)
    assert lr * factor(0) == pytest.approx(1e-9, rel=1e-6)
    assert factor(25) == pytest.approx(0.5, rel=1e-3)
    assert factor(50) == pytest.approx(1.0)
    assert factor(85) == pytest.approx(0.5)
    assert factor(total) == 0.0
