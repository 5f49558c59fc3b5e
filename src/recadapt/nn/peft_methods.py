"""Embedded PEFT inside a foundation model: which parameters train, and where LoRA and
Houlsby adapters go.

The embedded-PEFT baselines of IISAN-Versa (Table III: FFT, Adapter [Houlsby], LoRA, BitFit)
change the backbone itself. Each function here takes the module a
:class:`~recadapt.encoders.base.FrozenEncoder` wraps (``encoder.backbone()``, every parameter
frozen), modifies it in place and switches on exactly the parameters its method trains, so
``requires_grad`` is the single source of truth for optimizer groups and for the
trainable-parameter counts every run reports.

Target modules are found by *name*, not by model type, because module names are what differ
(and what changes between library versions: transformers 5's ViT uses ``q_proj``/``o_proj``/
``mlp.fc2`` where 4.x used ``query``/``attention.output.dense``/``output.dense``). A target is a
dotted suffix on a name boundary: ``value`` matches ``encoder.layer.0.attention.self.value``
but not ``eigenvalue``.

Heads outside the path of the hidden states stay frozen in every method (the BERT/ViT
``pooler``, a causal LM's ``lm_head`` — the states come from the base decoder —, EfficientNet's
classifier ``_fc``): they get no gradient, so counting them as trained would inflate the
figures. A parameter shared with the path (an ``lm_head`` tied to the token embeddings) trains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from recadapt.errors import ConfigError
from recadapt.nn.adapters import AdapterBlock

#: top-level backbone modules that do not feed the hidden states (never trained)
OFF_STATE_PATH: tuple[str, ...] = ("pooler", "lm_head", "_fc")

#: candidate LoRA targets (attention query and value projections, as Hu et al.), first match
#: wins: BERT/RoBERTa/MiniLM/ViT (transformers 4), Llama/SmolLM2/Mistral/OPT/ViT
#: (transformers 5), MPNet, DistilBERT
LORA_TARGETS: tuple[tuple[str, ...], ...] = (
    ("query", "value"),
    ("q_proj", "v_proj"),
    ("attn.q", "attn.v"),
    ("q_lin", "v_lin"),
)

#: candidate Houlsby adapter targets (attention output projection, feed-forward output
#: projection), first match wins: BERT/MiniLM/ViT (transformers 4), Llama/SmolLM2/Mistral,
#: ViT (transformers 5), OPT, MPNet, DistilBERT. ``output.dense`` also matches
#: ``attention.output.dense``: both are wanted.
ADAPTER_TARGETS: tuple[tuple[str, ...], ...] = (
    ("attention.output.dense", "output.dense"),
    ("o_proj", "down_proj"),
    ("o_proj", "fc2"),
    ("out_proj", "fc2"),
    ("attn.o", "output.dense"),
    ("out_lin", "lin2"),
)

_MARK = "_recadapt_peft_method"


def matches(name: str, suffix: str) -> bool:
    """Whether module ``name`` ends with the dotted ``suffix`` on a name boundary."""
    return name == suffix or name.endswith("." + suffix)


def on_state_path(name: str) -> bool:
    """False for parameters of heads that never feed the hidden states."""
    return name.split(".", 1)[0] not in OFF_STATE_PATH


def mark_method(backbone: nn.Module, method: str) -> None:
    """Record the method on the backbone; applying a second one would silently stack (LoRA
    inside adapters, adapters around adapters), so it is refused."""
    previous = getattr(backbone, _MARK, None)
    if previous is not None:
        raise RuntimeError(f"backbone already adapted with {previous!r}; load a fresh encoder")
    setattr(backbone, _MARK, method)


def _set_trainable(backbone: nn.Module, keep: Callable[[str], bool]) -> int:
    """``requires_grad`` = ``keep(name)`` for any of a parameter's names (tied weights have
    several); returns how many tensors train."""
    wanted: dict[int, bool] = {}
    params: dict[int, nn.Parameter] = {}
    for name, param in backbone.named_parameters(remove_duplicate=False):
        wanted[id(param)] = wanted.get(id(param), False) or bool(keep(name))
        params[id(param)] = param
    for key, param in params.items():
        param.requires_grad_(wanted[key])
    return sum(wanted.values())


def train_all(backbone: nn.Module) -> None:
    """Full fine-tuning: every parameter on the path of the hidden states."""
    _set_trainable(backbone, on_state_path)


def train_biases(backbone: nn.Module) -> None:
    """BitFit (Ben Zaken et al.): only the bias terms (attention, feed-forward, LayerNorm).

    Llama-style models (SmolLM2) have no bias at all, so BitFit would train nothing there.
    """
    if not _set_trainable(backbone,
                          lambda n: on_state_path(n) and n.rsplit(".", 1)[-1] == "bias"):
        raise ConfigError(
            f"model.name: bitfit trains bias terms, and {type(backbone).__name__} has none "
            "(Llama-style models use bias-free layers); choose lora, adapter or fft"
        )


def is_norm(module: nn.Module) -> bool:
    """LayerNorm-like modules, including HF's own RMSNorm/LayerNorm classes."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(
        ("LayerNorm", "RMSNorm"))


def train_norms(backbone: nn.Module) -> None:
    """Switch on the LayerNorm parameters (Houlsby et al. train them beside the adapters)."""
    for name, module in backbone.named_modules():
        if is_norm(module) and on_state_path(name):
            for param in module.parameters(recurse=False):
                param.requires_grad_(True)


def linear_names(backbone: nn.Module) -> list[str]:
    """Linear layers on the state path (candidates for LoRA and adapters)."""
    return [n for n, m in backbone.named_modules()
            if isinstance(m, nn.Linear) and on_state_path(n)]


def _layers_hint(backbone: nn.Module) -> str:
    names = linear_names(backbone)
    if not names and any(isinstance(m, nn.Conv2d) for m in backbone.modules()):
        return (f"{type(backbone).__name__} is a convolutional network without Linear layers "
                "on its state path: use fft or bitfit for it")
    return f"its Linear layers end with: {_suffix_hint(names)}"


def _suffix_hint(names: Sequence[str]) -> str:
    """Distinct two-part suffixes of ``names``, for error messages."""
    tails = sorted({".".join(n.split(".")[-2:]) for n in names})
    return ", ".join(tails[:16]) + (" ..." if len(tails) > 16 else "") if tails else "none"


def resolve_targets(backbone: nn.Module, candidates: Sequence[Sequence[str]],
                    key: str, what: str) -> list[str]:
    """The first candidate set whose every suffix matches a Linear of the backbone."""
    names = linear_names(backbone)
    for targets in candidates:
        if all(any(matches(n, t) for n in names) for t in targets):
            return list(targets)
    raise ConfigError(
        f"model.{key}: no default {what} for {type(backbone).__name__} (known layouts: BERT, "
        f"MiniLM, MPNet, DistilBERT, ViT, Llama/SmolLM2, Mistral, OPT); set model.{key} to "
        f"module-name suffixes; {_layers_hint(backbone)}"
    )


def default_lora_targets(backbone: nn.Module) -> list[str]:
    """Query and value projections of every attention layer (Hu et al.'s default)."""
    try:
        return resolve_targets(backbone, LORA_TARGETS, "lora_targets", "LoRA targets")
    except ConfigError:
        # architectures peft knows and we do not (e.g. GPT-2's fused ``c_attn`` Conv1D)
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

        model_type = getattr(getattr(backbone, "config", None), "model_type", None)
        known = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type or "")
        if known:
            return list(known)
        raise


def add_lora(backbone: nn.Module, r: int = 8, alpha: float = 16, dropout: float = 0.1,
             targets: Sequence[str] | None = None, adapter_name: str = "default") -> list[str]:
    """Inject peft LoRA layers into ``backbone`` in place; only ``lora_A``/``lora_B`` train.

    peft keeps module paths stable (the original layer becomes ``<name>.base_layer``), so a
    model built the same way loads a saved ``state_dict`` strictly. ``lora_B`` starts at zero:
    the backbone's output is unchanged until training moves it. Returns the wrapped modules.
    A second call with another ``adapter_name`` adds a second adapter beside the first (ATFLRec's
    dual LoRA); :func:`active_lora` chooses which one a forward pass uses.
    """
    import warnings

    from peft import LoraConfig, inject_adapter_in_model

    chosen = list(targets) if targets else default_lora_targets(backbone)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=chosen,
                        bias="none")
    try:
        with warnings.catch_warnings():  # "multiple adapters": intended for a second adapter
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            inject_adapter_in_model(config, backbone, adapter_name=adapter_name)
    except (ValueError, TypeError, AssertionError, NotImplementedError) as err:
        raise ConfigError(
            f"model.lora_targets: peft could not add LoRA to {chosen} in "
            f"{type(backbone).__name__} ({type(err).__name__}: {str(err) or 'unsupported layer'}); "
            f"{_layers_hint(backbone)}"
        ) from None
    # inject_adapter_in_model leaves only adapter weights trainable; be explicit regardless
    _set_trainable(backbone, lambda n: ".lora_A." in n or ".lora_B." in n)
    return [n for n, m in backbone.named_modules() if hasattr(m, "lora_A")]


def load_lora_adapter(backbone: nn.Module, folder: str | Path, *, r: int, alpha: float,
                      adapter_name: str = "default", key: str = "model.init_adapter") -> int:
    """Copy the weights of a peft LoRA adapter folder (``adapter_config.json`` +
    ``adapter_model.safetensors`` or ``.bin``, as peft's ``save_pretrained`` writes) into the
    LoRA layers :func:`add_lora` injected into ``backbone`` (``adapter_name``), through peft's
    ``set_peft_model_state_dict``. The adapter must fit those layers exactly (the same modules,
    rank ``r`` and ``alpha``, the same base-model shapes); anything else is a one-line
    :class:`ConfigError` naming ``key``. Returns the number of tensors loaded."""
    import json

    from peft.utils import load_peft_weights, set_peft_model_state_dict

    folder = Path(folder).expanduser()
    config_file = folder / "adapter_config.json"
    if not folder.is_dir():
        raise ConfigError(f"{key}: {folder} is not a folder; give a peft LoRA adapter folder "
                          "(adapter_config.json + adapter_model.safetensors)")
    if not config_file.is_file():
        raise ConfigError(f"{key}: {folder} has no adapter_config.json; it is not a peft "
                          "adapter folder (save one with PeftModel.save_pretrained)")
    try:
        saved = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{key}: {config_file} is not valid JSON") from None
    if not isinstance(saved, dict) or str(saved.get("peft_type", "")).upper() != "LORA":
        got = saved.get("peft_type") if isinstance(saved, dict) else None
        raise ConfigError(f"{key}: {folder} holds a {got or 'non-LoRA'} adapter; only LoRA "
                          "adapters can warm-start this model")
    base = saved.get("base_model_name_or_path") or "an unnamed base model"
    if saved.get("r") != r or float(saved.get("lora_alpha", -1)) != float(alpha):
        raise ConfigError(
            f"{key}: the adapter in {folder} has r={saved.get('r')}, "
            f"lora_alpha={saved.get('lora_alpha')} (targets {saved.get('target_modules')}), "
            f"the model r={r}, lora_alpha={alpha:g}: set model.lora_r, model.lora_alpha and "
            "model.lora_targets to the adapter's")
    try:
        weights = load_peft_weights(str(folder), device="cpu")
    except (OSError, ValueError, RuntimeError) as err:
        raise ConfigError(f"{key}: cannot read the adapter weights in {folder} "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
                          ) from None
    if not hasattr(backbone, "peft_config") or adapter_name not in backbone.peft_config:
        raise ConfigError(f"{key}: the model has no LoRA adapter {adapter_name!r} to load into")
    try:
        result = set_peft_model_state_dict(backbone, weights, adapter_name=adapter_name)
    except (RuntimeError, ValueError, KeyError) as err:  # size mismatches
        first = str(err).strip().splitlines()
        detail = next((line.strip() for line in first if "size mismatch" in line),
                      first[0] if first else type(err).__name__)
        raise ConfigError(f"{key}: the adapter in {folder} (for {base}) does not fit this "
                          f"base model: {detail}") from None
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if result.unexpected_keys or missing:
        extra = result.unexpected_keys[0] if result.unexpected_keys else None
        what = (f"it has weights for {extra!r}, which this model lacks" if extra else
                f"it lacks weights for {missing[0]!r}")
        raise ConfigError(f"{key}: the adapter in {folder} (for {base}) does not fit this "
                          f"model's LoRA layers: {what}; set model.lora_targets to the "
                          f"adapter's target modules {saved.get('target_modules')}")
    return len(weights)


@contextmanager
def active_lora(backbone: nn.Module, name: str) -> Iterator[None]:
    """Run ``backbone`` with only the LoRA adapter ``name`` active.

    peft's ``set_adapter`` also switches ``requires_grad`` off for the other adapters, which
    would stop the gradient of an adapter used earlier in the same step; this sets the active
    adapter alone and restores the previous choice afterwards.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in backbone.modules() if isinstance(m, BaseTunerLayer)]
    if not layers or any(name not in m.lora_A for m in layers):  # type: ignore[operator]
        raise ValueError(f"no LoRA adapter named {name!r} in {type(backbone).__name__}")
    before = [m._active_adapter for m in layers]
    try:
        for m in layers:
            m._active_adapter = [name]
        yield
    finally:
        for m, previous in zip(layers, before, strict=True):
            m._active_adapter = previous


class WrappedLinear(nn.Module):
    """Base of modules that wrap a backbone Linear (``base_layer``) and change its output;
    ``weight``/``bias``/``in_features``/``out_features`` forward to the wrapped layer for code
    that inspects them (Houlsby adapters here, personalized LoRA in ``nn/lora.py``)."""

    base_layer: nn.Linear

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features


class HoulsbyLinear(WrappedLinear):
    """A backbone Linear whose output goes through a Houlsby adapter: ``adapter(base(x))``.

    The adapter is :class:`AdapterBlock` in its in-backbone form (no post-norm, up-projection
    zero-initialised), so inserting it leaves the backbone's output unchanged until it trains.
    """

    def __init__(self, base_layer: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = AdapterBlock(base_layer.out_features, bottleneck, post_norm=False,
                                    zero_init=True).to(device=base_layer.weight.device,
                                                       dtype=base_layer.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base_layer(x))


def add_houlsby_adapters(backbone: nn.Module, bottleneck: int = 64,
                         targets: Sequence[str] | None = None) -> list[str]:
    """Wrap the attention-output and feed-forward-output Linears of every layer with an
    adapter (Houlsby et al.: after each sub-layer's projection, before its residual and
    LayerNorm); the adapters and the backbone's LayerNorms train, nothing else.

    Returns the wrapped module names.
    """
    chosen = list(targets) if targets else resolve_targets(
        backbone, ADAPTER_TARGETS, "adapter_targets", "adapter positions")
    names = [n for n in linear_names(backbone) if any(matches(n, t) for t in chosen)]
    if not names:
        raise ConfigError(
            f"model.adapter_targets: {chosen} match no Linear layer of "
            f"{type(backbone).__name__} (adapters wrap Linear layers only); "
            f"{_layers_hint(backbone)}"
        )
    for param in backbone.parameters():
        param.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        setattr(parent, child, HoulsbyLinear(getattr(parent, child), bottleneck))
    train_norms(backbone)
    for name, module in backbone.named_modules():
        if isinstance(module, HoulsbyLinear) and on_state_path(name):
            module.adapter.requires_grad_(True)
    return names
