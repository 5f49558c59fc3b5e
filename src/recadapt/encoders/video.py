"""Video encoders: an image model over sampled frames, or a VideoMAE video transformer.

Contents are video file paths (``str``/``Path``), ``None`` for an item without a video, or a
uint8 ``[frames, H, W, 3]`` array of frames already decoded. Frames come from
:func:`recadapt.media.video.video_frames`: ``spec.frames`` frames (default 16) spread evenly
over the first ``spec.seconds`` (default 3 s, as in the CROSSAN paper) or the whole clip when
it is shorter, each the frame on screen at the middle of its segment. An array with another
number of frames is sampled the same way (middle of each of ``frames`` equal segments).

**Frames through an image model** (:class:`FrameVideoEncoder`, ``kind: video`` over
``efficientnet-lite0`` or any image model the library loads): every frame goes through the
image encoder's own ``prepare`` and ``hidden_states``; each layer's pooled state is then
averaged over the frames (temporal pooling ``mean``), so layers and widths are the image
encoder's (EfficientNet-Lite0: 9 layers, 32 ... 1280). Frames are decoded with the shorter
side at ``image_size + 32`` pixels (256 for 224 px), just above what the image pipeline
crops, so its resize stays a (tiny) downscale and full-size 1280x720 frames are never
converted. A missing video (``None``) is ``frames`` mid-grey frames, i.e. the image
encoder's own blank.

**VideoMAE** (``hf:MCG-NJU/videomae-base`` or a local folder; :class:`VideoMAEEncoder`): the
clip's ``num_frames`` frames (the model's position embeddings fix it; ``spec.frames`` must
agree when given) go through the folder's image processor (default: shortest edge and
centre crop at the config's ``image_size``, ImageNet mean/std, as VideoMAE was trained).
Layer ``0`` is the tubelet-embedding output, layer ``i`` the output of block ``i`` (HF
``hidden_states``, before the final norm); VideoMAE has no CLS token, so every layer is
mean-pooled over its space-time tokens. A missing video is a clip of mid-grey frames.

The decoder's version (``imageio-ffmpeg``) is part of :class:`EncoderInfo` settings, since a
different ffmpeg may decode slightly different pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recadapt.config import EncoderSpec
from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers
from recadapt.encoders.sources import ResolvedSource
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.media.ffmpeg import decoder_version
from recadapt.media.video import DEFAULT_SECONDS, video_frames

#: how frame indices are chosen (recorded in the cache key)
SAMPLING = "middle of each of `frames` equal segments of min(seconds, duration)"
#: frames per image-encoder forward inside :meth:`FrameVideoEncoder.hidden_states`
FRAME_BATCH = 64
_GREY = 128


def clip_frames(content: Any, frames: int, seconds: float, size: int | None) -> np.ndarray | None:
    """One content as uint8 ``[frames, H, W, 3]``, or ``None`` for a missing video."""
    if content is None:
        return None
    if isinstance(content, (str, Path)):
        return video_frames(content, frames=frames, seconds=seconds, size=size)
    if isinstance(content, np.ndarray):
        if content.dtype != np.uint8 or content.ndim != 4 or content.shape[-1] != 3 \
                or len(content) == 0:
            raise RecAdaptError(
                f"video array of shape {content.shape} and dtype {content.dtype}: expected "
                "uint8 frames x H x W x 3"
            )
        if len(content) == frames:
            return content
        picks = ((np.arange(frames) + 0.5) * len(content) / frames).astype(int)
        return content[picks]
    raise RecAdaptError(
        f"video content of type {type(content).__name__}: expected a file path or a uint8 "
        "frames x H x W x 3 array"
    )


class FrameVideoEncoder(FrozenEncoder):
    """An image :class:`FrozenEncoder` run on sampled frames, its states averaged over time.

    Args:
        image: the image encoder (default: the packaged EfficientNet-Lite0).
        frames: frames per clip.
        seconds: sample within the first ``seconds`` of each clip.
        frame_size: shorter side of the decoded frames (default ``image_size + 32``).
    """

    def __init__(self, image: FrozenEncoder | None = None, frames: int = 16,
                 seconds: float = DEFAULT_SECONDS, frame_size: int | None = None) -> None:
        super().__init__()
        if image is None:
            from recadapt.encoders import load_encoder

            image = load_encoder(EncoderSpec(name="image", model="efficientnet-lite0"))
        if image.info.modality != "image":
            raise RecAdaptError(
                f"{image.info.source}: frames need an image encoder, not {image.info.modality}"
            )
        self.image = image
        self.frames = int(frames)
        self.seconds = float(seconds)
        base = int(getattr(image, "image_size", 224))
        self.frame_size = int(frame_size) if frame_size is not None else base + 32
        inner = image.info
        self.info = EncoderInfo(
            source=inner.source, revision=inner.revision, modality="video",
            num_layers=inner.num_layers, layer_dims=inner.layer_dims, pooling=inner.pooling,
            settings={
                "kind": "video", "frames": self.frames, "seconds": self.seconds,
                "sampling": SAMPLING, "frame_size": self.frame_size,
                "temporal_pooling": "mean", "missing": "grey frames",
                "decoder": decoder_version(), "image": inner.as_dict(),
            },
        )
        self.freeze()

    def backbone(self) -> nn.Module:
        return self.image.backbone()

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Every clip's frames, prepared by the image encoder: ``[N * frames, ...]``."""
        pictures: list[Any] = []
        for content in contents:
            clip = clip_frames(content, self.frames, self.seconds, self.frame_size)
            pictures.extend([None] * self.frames if clip is None else list(clip))
        return self.image.prepare(pictures)

    def hidden_states(
        self, inputs: dict[str, torch.Tensor], layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        layers = check_layers(layers, self.info.num_layers)
        total = len(next(iter(inputs.values())))
        parts: list[list[torch.Tensor]] = [[] for _ in layers]
        for begin in range(0, total, FRAME_BATCH):  # bounded activation memory
            chunk = {k: v[begin:begin + FRAME_BATCH] for k, v in inputs.items()}
            for slot, state in enumerate(self.image.hidden_states(chunk, layers)):
                parts[slot].append(state)
        out = []
        for chunks in parts:
            states = torch.cat(chunks)
            out.append(states.view(total // self.frames, self.frames, -1).mean(dim=1))
        return out

    def probe_dims(self, sample: Any) -> list[int]:
        """Width of every layer's state, from one forward on ``sample`` (a clip or ``None``)."""
        states = self.hidden_states(self.prepare([sample]))
        return [int(s.shape[-1]) for s in states]


class VideoMAEEncoder(FrozenEncoder):
    """A Hugging Face VideoMAE model; every layer mean-pooled over its space-time tokens (the
    default :meth:`~FrozenEncoder.pool`)."""

    forward_inputs = ("pixel_values",)

    def __init__(self, model: nn.Module, processor: Any, info: EncoderInfo, frames: int,
                 seconds: float, frame_size: int) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.info = info
        self.frames = frames
        self.seconds = seconds
        self.frame_size = frame_size
        self.freeze()

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        size = self.frame_size
        grey = np.full((self.frames, size, size, 3), _GREY, dtype=np.uint8)
        videos = []
        for content in contents:
            clip = clip_frames(content, self.frames, self.seconds, size)
            videos.append(list(grey if clip is None else clip))
        out = self.processor(videos, return_tensors="pt")
        return {"pixel_values": out["pixel_values"].float()}


# ----------------------------------------------------------------------------- loading


def load_video_encoder(spec: EncoderSpec, resolved: ResolvedSource,
                       position: int | None) -> FrozenEncoder:
    """The video encoder for a spec: frames through an image model (packaged or an HF image
    config), or VideoMAE for an HF VideoMAE config."""
    from recadapt.encoders import _config, _key, _load_image
    from recadapt.encoders.sources import config_kind

    seconds = float(spec.seconds) if spec.seconds is not None else DEFAULT_SECONDS
    if resolved.kind == "image":
        return FrameVideoEncoder(_load_image(spec, resolved, position), spec.frames, seconds)
    config = _config(resolved, _key(spec, position, "model"))
    kind = config_kind(config)
    if kind == "image":
        return FrameVideoEncoder(_load_image(spec, resolved, position), spec.frames, seconds)
    model_type = str(getattr(config, "model_type", ""))
    if model_type != "videomae":
        raise ConfigError(
            f"{_key(spec, position, 'model')}: {resolved.source} is a {model_type or kind} "
            "model; video encoders are VideoMAE models or image models run on frames "
            "(e.g. efficientnet-lite0 with kind: video)"
        )
    return _load_videomae(spec, resolved, config, seconds, position)


def _load_videomae(spec: EncoderSpec, resolved: ResolvedSource, config: Any, seconds: float,
                   position: int | None) -> FrozenEncoder:
    from transformers import VideoMAEModel

    from recadapt.encoders import _float32, _key, _pretrained, _revision, _with_dims

    key = _key(spec, position, "model")
    num_frames = int(config.num_frames)
    if "frames" in spec.model_fields_set and spec.frames != num_frames:
        raise ConfigError(
            f"{_key(spec, position, 'frames')}: {resolved.source} reads clips of exactly "
            f"{num_frames} frames; set frames: {num_frames} or leave it out"
        )
    if spec.pooling not in ("auto", "mean"):
        raise ConfigError(
            f"{_key(spec, position, 'pooling')}: VideoMAE has no CLS token and pools every "
            "layer with mean; use auto"
        )
    model, loading = _pretrained(VideoMAEModel, resolved, key, output_loading_info=True,
                                 **_float32())
    # the final norm only touches last_hidden_state, which is not read (hidden_states are
    # taken before it), so a pre-training checkpoint without it is fine
    missing = [k for k in loading.get("missing_keys", [])
               if not k.startswith(("layernorm", "fc_norm", "pooler"))]
    if missing:
        shown = ", ".join(sorted(missing)[:3]) + (" ..." if len(missing) > 3 else "")
        raise RecAdaptError(
            f"{key}: {resolved.source} lacks {len(missing)} weights the model needs ({shown}); "
            "is it the right folder or model id?"
        )
    size = int(config.image_size)
    processor = _videomae_processor(resolved, size)
    chosen = {k: v for k, v in processor.to_dict().items()
              if k in ("do_resize", "size", "resample", "do_center_crop", "crop_size",
                       "do_rescale", "rescale_factor", "do_normalize", "image_mean",
                       "image_std")}
    shortest = (processor.size or {}).get("shortest_edge") if isinstance(
        processor.size, dict) else getattr(processor.size, "shortest_edge", None)
    frame_size = int(shortest or size)
    num_layers = int(config.num_hidden_layers)
    settings: dict[str, Any] = {
        "kind": "video", "frames": num_frames, "seconds": seconds, "sampling": SAMPLING,
        "frame_size": frame_size, "dtype": "float32", "architecture": type(model).__name__,
        "missing": "grey frames", "decoder": decoder_version(),
        "processor": json.loads(json.dumps(chosen, default=str)),
    }
    info = EncoderInfo(resolved.source, _revision(resolved, config), "video", num_layers,
                       (0,) * (num_layers + 1), "mean", settings)
    encoder = VideoMAEEncoder(model, processor, info, num_frames, seconds, frame_size)
    encoder.info = _with_dims(encoder, None, key)
    return encoder


def _videomae_processor(resolved: ResolvedSource, size: int) -> Any:
    """The folder's (or hub cache's) VideoMAE processor, else VideoMAE's training transform
    at the config's image size. The PIL backend is used: it needs no torchvision."""
    from transformers import VideoMAEImageProcessorPil
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    try:
        return VideoMAEImageProcessorPil.from_pretrained(
            resolved.location, **resolved.pretrained_kwargs())
    except (OSError, ValueError, KeyError):
        return VideoMAEImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size},
            image_mean=list(IMAGENET_DEFAULT_MEAN), image_std=list(IMAGENET_DEFAULT_STD),
        )


__all__ = ["FrameVideoEncoder", "VideoMAEEncoder", "clip_frames", "load_video_encoder"]
