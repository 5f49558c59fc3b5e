"""Frozen foundation models that turn item contents into per-layer states.

:func:`load_encoder` builds a :class:`FrozenEncoder` from one :class:`EncoderSpec`;
:func:`item_contents` gives the texts or media paths it reads for a dataset's items. The kind
of model (``text`` | ``llm`` | ``image`` | ``audio`` | ``video``) is known for packaged names
and read from the HF config otherwise (see :func:`resolve_kind`); ``kind: video`` over an image
model runs it on sampled frames (:mod:`recadapt.encoders.video`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import torch

from recadapt.config import EncoderSpec
from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers
from recadapt.encoders.contents import item_contents
from recadapt.encoders.packaged import PACKAGED, models_dir, packaged_names
from recadapt.encoders.sources import (
    ResolvedSource,
    config_kind,
    folder_revision,
    hf_commit,
    resolve_source,
)
from recadapt.errors import ConfigError, RecAdaptError

__all__ = [
    "PACKAGED",
    "EncoderInfo",
    "FrozenEncoder",
    "check_layers",
    "folder_revision",
    "item_contents",
    "load_encoder",
    "models_dir",
    "packaged_names",
    "resolve_kind",
    "resolve_source",
]

_IMAGE_PROCESSOR_KEYS = (
    "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale",
    "rescale_factor", "do_normalize", "image_mean", "image_std",
)


def _key(spec: EncoderSpec, position: int | None, field: str) -> str:
    if position is not None:
        return f"encoders.{position}.{field}"
    return f"encoder {spec.name!r} {field}"


def _pretrained(loader: Any, resolved: ResolvedSource, key: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` with the source's options; failures become one-line
    RecAdaptErrors naming the config key."""
    try:
        return loader.from_pretrained(resolved.location, **resolved.pretrained_kwargs(), **kwargs)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = " (no network? an hf: model must be in the local HF cache)" \
            if resolved.source.startswith("hf:") else ""
        raise RecAdaptError(f"{key}: cannot load {resolved.source}: {first}{hint}") from None


def _weights(loader: Any, resolved: ResolvedSource, key: str) -> Any:
    """Load a model in float32 and refuse one whose checkpoint lacks weights it uses.

    transformers only logs missing weights and initialises them at random, which would make
    every state silently meaningless; an unused pooler head is the one tolerated gap.
    """
    model, loading = _pretrained(loader, resolved, key, output_loading_info=True, **_float32())
    missing = [k for k in loading.get("missing_keys", []) if "pooler" not in k]
    if missing:
        shown = ", ".join(sorted(missing)[:3]) + (" ..." if len(missing) > 3 else "")
        raise RecAdaptError(
            f"{key}: {resolved.source} lacks {len(missing)} weights the model needs ({shown}); "
            "is it the right folder or model id?"
        )
    return model


def _float32() -> dict[str, Any]:
    """Load weights as float32 (bf16/fp16 checkpoints are slow or unsupported on CPU); the
    keyword is ``dtype`` in recent transformers and ``torch_dtype`` before 4.56."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


def _config(resolved: ResolvedSource, key: str) -> Any:
    from transformers import AutoConfig

    return _pretrained(AutoConfig, resolved, key)


def resolve_kind(spec: EncoderSpec, resolved: ResolvedSource | None = None,
                 position: int | None = None) -> str:
    """``text`` | ``llm`` | ``image`` | ``audio`` | ``video`` for a spec: its explicit ``kind``,
    the packaged model's, or the HF config's (``is_decoder``, a ``...ForCausalLM`` architecture
    or a causal model type → llm; ViT-like types → image; Whisper/AST → audio; VideoMAE-like →
    video; otherwise text). ``video`` is also accepted over an image model (frames)."""
    resolved = resolved or resolve_source(spec.model, _key(spec, position, "model"))
    if resolved.kind is not None:
        if spec.kind == "video" and resolved.kind == "image":
            return "video"
        if spec.kind != "auto" and spec.kind != resolved.kind:
            raise ConfigError(
                f"{_key(spec, position, 'kind')}: {spec.model!r} is a {resolved.kind} model, "
                f"not {spec.kind}; use kind: auto"
            )
        return resolved.kind
    if spec.kind != "auto":
        return spec.kind
    return config_kind(_config(resolved, _key(spec, position, "model")))


def _pooling(spec: EncoderSpec, kind: str, position: int | None, cnn: bool = False) -> str:
    pooling = spec.pooling
    key = _key(spec, position, "pooling")
    if kind == "text":
        return "mean" if pooling == "auto" else pooling
    if kind == "llm":
        return "last" if pooling == "auto" else pooling
    if cnn:
        if pooling not in ("auto", "mean"):
            raise ConfigError(f"{key}: CNN stages are global-average pooled; use auto")
        return "avg"
    if pooling == "last":
        raise ConfigError(f"{key}: image transformers pool with cls or mean, not last")
    return "cls" if pooling == "auto" else pooling


def load_encoder(
    spec: EncoderSpec,
    device: str | torch.device | None = None,
    *,
    position: int | None = None,
) -> FrozenEncoder:
    """Build the frozen encoder an :class:`EncoderSpec` describes.

    Args:
        spec: the encoder's config entry.
        device: where to put it (default: CPU).
        position: the spec's index in ``encoders``, so errors name ``encoders.N.<field>``.

    Packaged models are loaded without touching the network; ``hf:ID`` models go through
    ``from_pretrained`` (the HF cache or the hub). The first load of ``smollm2-135m`` or
    ``mpnet`` prepares a local copy under :func:`models_dir` (once).
    """
    resolved = resolve_source(spec.model, _key(spec, position, "model"))
    kind = resolve_kind(spec, resolved, position)
    if kind == "image":
        encoder = _load_image(spec, resolved, position)
    elif kind == "audio":
        from recadapt.encoders.audio import load_audio_encoder

        encoder = load_audio_encoder(spec, resolved, position)
    elif kind == "video":
        from recadapt.encoders.video import load_video_encoder

        encoder = load_video_encoder(spec, resolved, position)
    else:
        encoder = _load_text(spec, resolved, kind, position)
    if device is not None:
        encoder.to(torch.device(device))
    return encoder


def _revision(resolved: ResolvedSource, config: Any) -> str:
    return resolved.revision or hf_commit(resolved, config)


def _with_dims(encoder: Any, sample: Any, key: str) -> EncoderInfo:
    """``info`` with ``num_layers``/``layer_dims`` measured by one tiny forward (robust to
    models whose layers differ in width: CNN stages, OPT-350m's projections), checked against
    the config's layer count when it has one."""
    info: EncoderInfo = encoder.info
    with torch.no_grad():
        dims = encoder.probe_dims(sample)
    if info.num_layers and len(dims) != info.num_layers + 1:
        raise RecAdaptError(
            f"{key}: the model returned {len(dims)} hidden states, expected "
            f"num_hidden_layers + 1 = {info.num_layers + 1}"
        )
    return replace(info, num_layers=len(dims) - 1, layer_dims=tuple(dims))


def _load_text(spec: EncoderSpec, resolved: ResolvedSource, kind: str,
               position: int | None) -> FrozenEncoder:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from recadapt.encoders.llm import CausalLMEncoder
    from recadapt.encoders.text import TextEncoder

    key = _key(spec, position, "model")
    config = _config(resolved, key)
    tokenizer = _pretrained(AutoTokenizer, resolved, key)
    architectures = [str(a) for a in (getattr(config, "architectures", None) or [])]
    with_head = kind == "llm" and any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    )
    model = _weights(AutoModelForCausalLM if with_head else AutoModel, resolved, key)
    num_layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    pooling = _pooling(spec, kind, position)
    settings: dict[str, Any] = {
        "kind": kind, "max_length": spec.max_length, "dtype": "float32",
        "architecture": type(model).__name__,
    }
    if kind == "llm":
        settings["empty_text"] = "eos"
    info = EncoderInfo(
        source=resolved.source, revision=_revision(resolved, config), modality="text",
        num_layers=num_layers, layer_dims=(0,) * (num_layers + 1), pooling=pooling,
        settings=settings,
    )
    cls = CausalLMEncoder if kind == "llm" else TextEncoder
    encoder = cls(model, tokenizer, info, spec.max_length, pooling)
    encoder.info = _with_dims(encoder, "item", key)
    return encoder


def _load_image(spec: EncoderSpec, resolved: ResolvedSource,
                position: int | None) -> FrozenEncoder:
    import numpy as np

    from recadapt.encoders.image import (
        CROP_PADDING,
        TF_MEAN,
        TF_STD,
        EfficientNetEncoder,
        HFImageEncoder,
        build_efficientnet,
    )

    key = _key(spec, position, "model")
    if resolved.packaged is not None:  # efficientnet-lite0 / lite2
        pooling = _pooling(spec, "image", position, cnn=True)
        model, size = build_efficientnet(resolved.extra["variant"], resolved.location)
        settings = {
            "kind": "image", "image_size": size, "dtype": "float32",
            "crop": f"central size/(size+{CROP_PADDING}) of the shorter side, bicubic",
            "normalize": f"(x - {TF_MEAN:g}) / {TF_STD:g}", "missing": "grey",
        }
        info = EncoderInfo(resolved.source, resolved.revision or "", "image", 8, (0,) * 9,
                           pooling, settings)
        encoder: FrozenEncoder = EfficientNetEncoder(model, info, size)
    else:
        from transformers import AutoImageProcessor, AutoModel

        config = _config(resolved, key)
        model_type = str(getattr(config, "model_type", ""))
        loader: Any = AutoModel
        if model_type == "clip":
            from transformers import CLIPVisionModel as loader
        elif model_type == "siglip":
            from transformers import SiglipVisionModel as loader
        vision = getattr(config, "vision_config", None) or config
        size = getattr(vision, "image_size", 224)
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        try:
            processor = AutoImageProcessor.from_pretrained(
                resolved.location, **resolved.pretrained_kwargs())
        except (OSError, ValueError, KeyError):
            processor = None  # no preprocessor_config.json: resize + mean/std 0.5
        model = _weights(loader, resolved, key)
        pooling = _pooling(spec, "image", position)
        settings: dict[str, Any] = {"kind": "image", "image_size": size, "dtype": "float32",
                                    "architecture": type(model).__name__, "missing": "grey"}
        if processor is not None:
            full = processor.to_dict()
            chosen = {k: full[k] for k in _IMAGE_PROCESSOR_KEYS if k in full}
            # JSON-plain (tuples → lists, enums → str): settings feed the cache key
            settings["processor"] = json.loads(json.dumps(chosen, default=str))
        else:
            settings["processor"] = {"resize": size, "resample": "bilinear",
                                     "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
        num_layers = int(getattr(vision, "num_hidden_layers", 0) or 0)
        info = EncoderInfo(resolved.source, _revision(resolved, config), "image", num_layers,
                           (0,) * (num_layers + 1), pooling, settings)
        encoder = HFImageEncoder(model, processor, info, size, [0.5] * 3, [0.5] * 3, pooling)
    encoder.info = _with_dims(encoder, np.full((32, 32, 3), 128, dtype=np.uint8), key)
    if getattr(encoder, "spatial", False):  # a CNN's [N, C, H, W] maps: averaged over space
        encoder.info = replace(encoder.info, pooling="avg")
    return encoder
