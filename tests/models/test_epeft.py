"""Embedded-PEFT baselines (FFT, LoRA, Houlsby adapters, BitFit) on a tiny random BERT: exactly
the right backbone parameters train and change, the rest stays bit-identical, gradients reach
the backbone (unlike IISAN), inserted modules start as the identity, checkpoints round-trip."""

from __future__ import annotations

import zlib

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from transformers import BertConfig, BertModel

from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.models.content import LiveStates
from recadapt.models.epeft import (
    AdapterConfig,
    BitFitConfig,
    EmbeddedPEFT,
    EPEFTConfig,
    FFTConfig,
    LoRAConfig,
)
from recadapt.models.frozen import FrozenBackbone, FrozenConfig
from recadapt.models.registry import get_model
from recadapt.nn.peft_methods import (
    ADAPTER_TARGETS,
    HoulsbyLinear,
    add_houlsby_adapters,
    add_lora,
    default_lora_targets,
    resolve_targets,
    train_all,
    train_biases,
)
from recadapt.train.checkpoint import (
    load_model_weights,
    load_weights,
    save_model_weights,
    save_weights,
)
from recadapt.train.efficiency import parameter_counts

NUM_ITEMS = 12
CONTENTS = [f"item number {i} of the shop" for i in range(1, NUM_ITEMS + 1)]
HIDDEN, LAYERS = 64, 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: thread start-up costs more than it saves, a lot more on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyBert(FrozenEncoder):
    """A random 2-layer BERT; words hash to token ids, so no tokenizer or download."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.model = BertModel(BertConfig(
                vocab_size=101, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                num_attention_heads=2, intermediate_size=2 * HIDDEN, max_position_embeddings=16,
            ))
        self.info = EncoderInfo("test:tiny-bert", "1", "text", LAYERS,
                                (HIDDEN,) * (LAYERS + 1), "mean", {"seed": seed})
        self.freeze()

    def prepare(self, contents):
        rows = [[1] + [zlib.crc32(w.encode()) % 99 + 2 for w in str(c).split()] for c in contents]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}

    def hidden_states(self, inputs, layers=None):
        layers = check_layers(layers, LAYERS)
        states = self.model(**inputs, output_hidden_states=True).hidden_states
        weights = inputs["attention_mask"].unsqueeze(-1).float()
        return [(states[i] * weights).sum(1) / weights.sum(1) for i in layers]

    def backbone(self) -> nn.Module:
        return self.model


CONFIGS: dict[str, EPEFTConfig] = {
    "fft": FFTConfig(hidden_size=16),
    "lora": LoRAConfig(hidden_size=16, lora_r=4),
    "adapter": AdapterConfig(hidden_size=16, adapter_size=8),
    "bitfit": BitFitConfig(hidden_size=16),
}


def _batch() -> dict[str, torch.Tensor]:
    history = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 8, 9]])
    target = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 9, 10]])
    return {"history": history, "target": target, "user": torch.arange(3)}


def _model(config: EPEFTConfig, seed: int = 0, backbone_seed: int | None = None) -> EmbeddedPEFT:
    encoder = TinyBert(seed if backbone_seed is None else backbone_seed)
    sources = nn.ModuleList([LiveStates(encoder, CONTENTS, [LAYERS], 5, trainable=True)])
    torch.manual_seed(seed)
    model = get_model(type(config).method).model_class(config, NUM_ITEMS, 4, sources,
                                                       [encoder.info])
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    return model


def _backbone(model: EmbeddedPEFT) -> nn.Module:
    return model.sources[0].encoder.backbone()


def _shift_invariant(name: str) -> bool:
    """The key bias adds the same score to every key of a query, which softmax ignores: its
    true gradient is zero, and what autograd returns is rounding noise (about 1e-11)."""
    return name.endswith("attention.self.key.bias")


def _expected_trainable(method: str, name: str) -> bool:
    """The backbone parameters each method should train, stated independently of the code."""
    if name.startswith("pooler."):
        return False
    if method == "fft":
        return True
    if method == "lora":
        return ".lora_A." in name or ".lora_B." in name
    if method == "adapter":
        return ".adapter." in name or "LayerNorm" in name
    return name.endswith(".bias")


@pytest.mark.parametrize("method", list(CONFIGS))
def test_trainable_backbone_parameters_and_what_changes(method: str) -> None:
    model = _model(CONFIGS[method])
    named = dict(_backbone(model).named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert trainable == {n for n in named if _expected_trainable(method, n)}
    if method == "lora":
        assert {n.split(".")[-4] for n in trainable} == {"query", "value"}
    if method == "adapter":
        wrapped = {n for n, m in _backbone(model).named_modules() if isinstance(m, HoulsbyLinear)}
        assert wrapped == {f"encoder.layer.{i}.{part}" for i in range(LAYERS)
                           for part in ("attention.output.dense", "output.dense")}
    # the rec side trains in every method
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("sources"))

    before = {n: p.detach().clone() for n, p in named.items()}
    model.train()
    optimizer = torch.optim.Adam(model.parameter_groups(1e-2), lr=1e-2)
    # two steps: zero-initialised lora_B / adapter up-projections give their partner matrices a
    # zero gradient on the first step
    for _ in range(2):
        optimizer.zero_grad()
        model(_batch()).backward()
        optimizer.step()
    changed = {n for n, p in named.items() if not torch.equal(p, before[n])}
    assert changed <= trainable
    assert trainable - changed <= {n for n in trainable if _shift_invariant(n)}
    if method == "lora":
        assert all(torch.equal(named[n], before[n]) for n in named if ".base_layer." in n)


@pytest.mark.parametrize("method", list(CONFIGS))
def test_gradients_reach_the_backbone(method: str) -> None:
    model = _model(CONFIGS[method])
    model.train()
    model(_batch()).backward()
    for name, param in _backbone(model).named_parameters():
        if param.requires_grad and not _shift_invariant(name) and ".lora_A." not in name \
                and ".adapter.down." not in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        if not param.requires_grad:
            assert param.grad is None, name


def test_frozen_baseline_gets_no_backbone_gradient() -> None:
    """The contrast: the same encoder read by the frozen baseline (or IISAN) never sees a
    gradient, so the backward pass stops at the item tower."""
    encoder = TinyBert()
    sources = nn.ModuleList([LiveStates(encoder, CONTENTS, [LAYERS], 5)])
    model = FrozenBackbone(FrozenConfig(hidden_size=16, cached=False), NUM_ITEMS, 4, sources,
                           [encoder.info])
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    model.train()
    model(_batch()).backward()
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_inserted_modules_start_as_the_identity(method: str) -> None:
    encoder = TinyBert().eval()
    inputs = encoder.prepare(CONTENTS)
    with torch.no_grad():
        before = encoder.hidden_states(inputs)
        if method == "lora":
            add_lora(encoder.backbone(), r=4, dropout=0.0)
        else:
            add_houlsby_adapters(encoder.backbone(), 8)
        after = encoder.hidden_states(inputs)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a, b)


def _trained(config: EPEFTConfig) -> EmbeddedPEFT:
    """Two Adam steps at a large learning rate: every trainable parameter moves."""
    trained = _model(config, seed=0)
    trained.train()
    optimizer = torch.optim.Adam(trained.parameter_groups(1e-2), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        trained(_batch()).backward()
        optimizer.step()
    return trained


@pytest.mark.parametrize("method", list(CONFIGS))
def test_state_dict_round_trip(method: str, tmp_path) -> None:
    trained = _trained(CONFIGS[method])
    save_weights(tmp_path / "model.safetensors", trained.state_dict())
    fresh = _model(CONFIGS[method], seed=1)  # other random weights everywhere
    fresh.load_state_dict(load_weights(tmp_path / "model.safetensors"))  # strict
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(trained.score(_batch()), fresh.score(_batch()))


@pytest.mark.parametrize("method", list(CONFIGS))
def test_saved_weights_leave_the_frozen_backbone_out(method: str, tmp_path) -> None:
    """What a run writes (model.safetensors, checkpoints): trainable parameters and buffers
    only; a model rebuilt over the same frozen backbone scores the same, one over another
    backbone is refused (under fft only the unused pooler is frozen)."""
    trained = _trained(CONFIGS[method])
    path = tmp_path / "model.safetensors"
    save_model_weights(path, trained)
    saved = set(load_weights(path))
    frozen = {n for n, p in trained.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert trainable <= saved and not saved & frozen
    backbone = {n for n in frozen if n.startswith("sources.0.encoder.model.")}
    assert frozen == backbone and len(frozen) > 2 * (method != "fft")  # fft: the unused pooler
    fresh = _model(CONFIGS[method], seed=1, backbone_seed=0)  # other trainable weights
    load_model_weights(fresh, path)
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(trained.score(_batch()), fresh.score(_batch()))
    with pytest.raises(RecAdaptError, match="frozen weights differ"):
        load_model_weights(_model(CONFIGS[method], seed=1, backbone_seed=2), path)


def test_trainable_counts_are_honest_and_ordered() -> None:
    counts = {}
    for method, config in CONFIGS.items():
        model = _model(config)
        backbone = sum(p.numel() for p in _backbone(model).parameters() if p.requires_grad)
        trainable = parameter_counts(model)[0]
        rec_side = sum(p.numel() for n, p in model.named_parameters()
                       if not n.startswith("sources"))
        assert trainable == rec_side + backbone
        counts[method] = backbone
    assert counts["bitfit"] < counts["lora"] < counts["adapter"] < counts["fft"]
    # by hand: r (in + out) per wrapped Linear; two adapters (down + up) per layer + LayerNorms
    assert counts["lora"] == LAYERS * 2 * 4 * (HIDDEN + HIDDEN)
    adapters = LAYERS * 2 * (HIDDEN * 8 + 8 + 8 * HIDDEN + HIDDEN)
    assert counts["adapter"] == adapters + (2 * LAYERS + 1) * 2 * HIDDEN


def test_parameter_groups_give_the_backbone_its_rate() -> None:
    model = _model(LoRAConfig(hidden_size=16, lora_r=4, backbone_lr=3e-4))
    rest, backbone = model.parameter_groups(1e-3)
    assert (rest["lr"], backbone["lr"]) == (1e-3, 3e-4)
    assert {id(p) for p in backbone["params"]} == {
        id(p) for p in _backbone(model).parameters() if p.requires_grad}
    assert len(rest["params"]) + len(backbone["params"]) == len(
        [p for p in model.parameters() if p.requires_grad])
    same = _model(BitFitConfig(hidden_size=16, backbone_lr=None))
    assert {g["lr"] for g in same.parameter_groups(1e-3)} == {1e-3}


def test_configs_registered_and_keys_per_method() -> None:
    assert get_model("adapter").config_class is AdapterConfig
    assert get_model("fft").model_class.name == "fft"
    assert LoRAConfig().loss == "debiased_ce"
    with pytest.raises(ValidationError):
        AdapterConfig(lora_r=4)  # a LoRA key under another method is an error, not ignored
    model = _model(CONFIGS["bitfit"])
    with pytest.raises(RuntimeError, match="already adapted"):  # a second method never stacks
        EmbeddedPEFT(CONFIGS["bitfit"], NUM_ITEMS, 4, model.sources, [TinyBert().info])


def test_default_targets_per_architecture() -> None:
    from transformers import (
        DistilBertConfig,
        DistilBertModel,
        LlamaConfig,
        LlamaModel,
        MPNetConfig,
        MPNetModel,
        ViTConfig,
        ViTModel,
    )

    small = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
             "hidden_size": 8}
    models = {
        "bert": BertModel(BertConfig(**small)),
        "mpnet": MPNetModel(MPNetConfig(**small)),
        "llama": LlamaModel(LlamaConfig(**small, num_key_value_heads=1, vocab_size=50)),
        "vit": ViTModel(ViTConfig(**small, image_size=8, patch_size=4)),
        "distilbert": DistilBertModel(DistilBertConfig(dim=8, n_layers=1, n_heads=2,
                                                       hidden_dim=16)),
    }
    lora = {k: default_lora_targets(m) for k, m in models.items()}
    adapter = {k: resolve_targets(m, ADAPTER_TARGETS, "adapter_targets", "adapter positions")
               for k, m in models.items()}
    assert lora["bert"] == ["query", "value"] and lora["llama"] == ["q_proj", "v_proj"]
    assert lora["mpnet"] == ["attn.q", "attn.v"] and lora["distilbert"] == ["q_lin", "v_lin"]
    assert adapter["llama"] == ["o_proj", "down_proj"]
    assert adapter["mpnet"] == ["attn.o", "output.dense"]
    assert adapter["distilbert"] == ["out_lin", "lin2"]
    # ViT: query/value and output.dense in transformers 4, q_proj/o_proj/mlp.fc2 in 5
    assert lora["vit"] in (["query", "value"], ["q_proj", "v_proj"])
    assert adapter["vit"] in (["attention.output.dense", "output.dense"], ["o_proj", "fc2"])
    for name, model in models.items():  # two adapters per layer, wherever they go
        assert len(add_houlsby_adapters(model, 4)) == 2, name


def test_cnn_without_targets_is_a_config_error() -> None:
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 1))
    with pytest.raises(ConfigError, match=r"lora_targets.*use fft or bitfit"):
        add_lora(cnn)
    with pytest.raises(ConfigError, match="adapter_targets"):
        add_houlsby_adapters(cnn)
    with pytest.raises(ConfigError, match="lora_targets"):
        add_lora(TinyBert().backbone(), targets=["no_such_layer"])


@pytest.mark.parametrize("tied", [True, False])
def test_causal_lm_heads_and_bias_free_layers(tied: bool) -> None:
    """A causal LM's ``lm_head`` is off the state path: frozen unless it *is* the token
    embedding (tied); BitFit on a bias-free Llama is refused rather than training nothing."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def llama() -> nn.Module:
        return LlamaForCausalLM(LlamaConfig(
            hidden_size=8, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=16, vocab_size=50, tie_word_embeddings=tied,
        )).requires_grad_(False)

    full = llama()
    train_all(full)
    assert full.model.embed_tokens.weight.requires_grad
    assert full.lm_head.weight.requires_grad is tied
    with pytest.raises(ConfigError, match="bitfit"):
        train_biases(llama())


class TinyCNN(FrozenEncoder):
    """Conv → BatchNorm → ReLU → global average pool; each item's "image" is a seeded tensor."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
        self.info = EncoderInfo("test:tiny-cnn", "1", "image", 1, (3, 8), "avg", {})
        self.freeze()

    def prepare(self, contents):
        images = [torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(zlib.crc32(
            str(c).encode()))) for c in contents]
        return {"pixel_values": torch.stack(images)}

    def hidden_states(self, inputs, layers=None):
        pixels = inputs["pixel_values"]
        states = [pixels.mean((2, 3)), self.model(pixels).mean((2, 3))]
        return [states[i] for i in check_layers(layers, 1)]

    def backbone(self) -> nn.Module:
        return self.model


@pytest.mark.parametrize("method", ["fft", "bitfit"])
def test_batchnorm_statistics_update_only_under_fft(method: str) -> None:
    """BatchNorm running statistics are buffers: full fine-tuning updates them, a PEFT method
    keeps the pretrained ones (eval-mode BatchNorm), while its biases still train."""
    encoder = TinyCNN()
    sources = nn.ModuleList([LiveStates(encoder, CONTENTS, [1], 5, trainable=True)])
    config = CONFIGS[method]
    model = get_model(method).model_class(config, NUM_ITEMS, 4, sources, [encoder.info])
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    norm = model.sources[0].encoder.backbone()[1]
    mean, bias = norm.running_mean.clone(), norm.bias.detach().clone()
    model.train()
    assert norm.training is (method == "fft")
    optimizer = torch.optim.Adam(model.parameter_groups(1e-2), lr=1e-2)
    optimizer.zero_grad()
    model(_batch()).backward()
    optimizer.step()
    assert not torch.equal(norm.bias, bias)  # trained in both methods
    assert torch.equal(norm.running_mean, mean) is (method == "bitfit")
    model.eval()
    assert not norm.training
