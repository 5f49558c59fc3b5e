"""Image encoders: packaged EfficientNet-Lite CNNs and Hugging Face vision transformers.

Contents are image file paths (``str``/``Path``), PIL images, ``H x W x 3`` uint8 arrays, or
``None`` for an item without an image (encoded as a mid-grey picture, i.e. all zeros after
normalisation). Preprocessing uses PIL + numpy only (no torchvision).

**EfficientNet-Lite** (``efficientnet-lite0`` at 224 px, ``efficientnet-lite2`` at 260 px):
``num_layers = 8``, every layer global-average pooled over space (``pooling = "avg"``):

* layer 0: the stem (3x3 conv, stride 2, BN, ReLU6): 32 channels;
* layers 1-7: the output of MBConv stage 1..7 (the last block of each stage):
  Lite0 16, 24, 40, 80, 112, 192, 320; Lite2 16, 24, 48, 88, 120, 208, 352 channels;
* layer 8: the head (1x1 conv, BN, ReLU6), the usual 1280-d image feature that the ImageNet
  classifier ``model._fc`` reads.

So ``layer_dims`` is ``(32, 16, 24, 40, 80, 112, 192, 320, 1280)`` for Lite0 and
``(32, 16, 24, 48, 88, 120, 208, 352, 1280)`` for Lite2.

Preprocessing follows the TensorFlow EfficientNet(-Lite) evaluation pipeline the weights were
trained with: a central crop covering ``size / (size + 32)`` of the shorter side, bicubic resize
to ``size x size``, then ``(pixel - 127) / 128`` on 0..255 (the TF-Lite convention; ImageNet
mean/std scaling gives flatter, sometimes wrong predictions with these weights: a daisy photo
is "daisy" at 36 % with (127, 128) but at 13 % behind another class with mean/std).

**HF vision transformers** (ViT, DeiT, DINOv2, CLIP/SigLIP vision towers...): layer ``0`` is
the patch-embedding output, layer ``i`` the output of block ``i`` (HF ``hidden_states``, before
any final layer norm). Pooling ``cls`` (default: the first token) or ``mean`` (all tokens).
The folder's image processor is used when it has one, else a plain resize to the config's
``image_size`` with mean = std = 0.5 (the ViT default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers
from recadapt.errors import RecAdaptError

TF_MEAN = 127.0
TF_STD = 128.0
CROP_PADDING = 32


def load_image(content: Any) -> Any:
    """A content as an RGB PIL image (``None`` stays ``None``); unreadable files raise a
    RecAdaptError naming the file."""
    from PIL import Image, UnidentifiedImageError

    if content is None:
        return None
    if isinstance(content, Image.Image):
        return content.convert("RGB")
    if isinstance(content, np.ndarray):
        array = content
        if array.dtype != np.uint8:
            raise RecAdaptError(f"image array of dtype {array.dtype}: expected uint8 (0..255)")
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
            return Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1
                                   else array).convert("RGB")
        raise RecAdaptError(f"image array of shape {array.shape}: expected H x W x 3")
    if isinstance(content, (str, Path)):
        path = Path(content)
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB")
        except FileNotFoundError:
            raise RecAdaptError(f"image file not found: {path}") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
            raise RecAdaptError(
                f"image file {path}: cannot be read ({type(err).__name__}); replace or remove it"
            ) from None
    raise RecAdaptError(
        f"image content of type {type(content).__name__}: expected a path, a PIL image or an "
        "H x W x 3 uint8 array"
    )


def tf_center_crop(image: Any, size: int) -> np.ndarray:
    """TF EfficientNet eval crop: the central ``size/(size+32)`` of the shorter side, bicubic
    to ``size x size``; returns uint8 ``[size, size, 3]``."""
    from PIL import Image

    width, height = image.size
    side = min(width, height) * size / (size + CROP_PADDING)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return np.asarray(image.resize((size, size), Image.BICUBIC, box=box), dtype=np.uint8)


class EfficientNetEncoder(FrozenEncoder):
    """EfficientNet-Lite from the pure-torch ``efficientnet_lite_pytorch`` package, with the
    stem, each MBConv stage and the head as layers (see the module docstring)."""

    def __init__(self, model: nn.Module, info: EncoderInfo, image_size: int) -> None:
        super().__init__()
        self.model = model
        self.info = info
        self.image_size = image_size
        self.stage_ends = stage_ends(model)
        self.freeze()

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        size = self.image_size
        batch = np.full((len(contents), size, size, 3), TF_MEAN, dtype=np.float32)
        for row, content in enumerate(contents):
            image = load_image(content)
            if image is not None:
                batch[row] = tf_center_crop(image, size)
        pixels = (torch.from_numpy(batch) - TF_MEAN) / TF_STD
        return {"pixel_values": pixels.permute(0, 3, 1, 2).contiguous()}

    def feature_maps(self, pixels: torch.Tensor, upto: int) -> list[torch.Tensor]:
        """Unpooled maps of layers ``0..upto`` (later stages are not computed)."""
        net: Any = self.model
        x = net._swish(net._bn0(net._conv_stem(pixels)))
        maps = [x]
        rate = net._global_params.drop_connect_rate
        begin = 0
        for end in self.stage_ends:
            if len(maps) > upto:
                return maps
            for index in range(begin, end):
                scaled = rate * index / len(net._blocks) if rate else None
                x = net._blocks[index](x, drop_connect_rate=scaled)
            maps.append(x)
            begin = end
        if len(maps) <= upto:
            maps.append(net._swish(net._bn1(net._conv_head(x))))
        return maps

    def probe_dims(self, sample: Any) -> list[int]:
        """Channels of every layer, from one forward on ``sample``."""
        pixels = self.prepare([sample])["pixel_values"]
        return [int(m.shape[1]) for m in self.feature_maps(pixels, len(self.stage_ends) + 1)]

    def hidden_states(
        self, inputs: dict[str, torch.Tensor], layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        layers = check_layers(layers, self.info.num_layers)
        pixels = inputs["pixel_values"].to(self.device)
        maps = self.feature_maps(pixels, max(layers))
        return [maps[i].mean(dim=(2, 3)) for i in layers]


def stage_ends(model: nn.Module) -> list[int]:
    """Index after the last block of each MBConv stage, repeating the package's own rule for
    how many blocks a stage gets (stem and head stages are not depth-scaled in Lite models)."""
    from efficientnet_lite_pytorch.utils import round_repeats

    net: Any = model
    params = net._global_params
    ends, total = [], 0
    count = len(net._blocks_args)
    for index, args in enumerate(net._blocks_args):
        fixed = params.fix_head_stem and index in (0, count - 1)
        total += args.num_repeat if fixed else round_repeats(args.num_repeat, params)
        ends.append(total)
    if total != len(net._blocks):
        raise RuntimeError(f"EfficientNet stages cover {total} blocks, model has "
                           f"{len(net._blocks)}")
    return ends


def build_efficientnet(variant: str, weights: str) -> tuple[nn.Module, int]:
    """The EfficientNet-Lite ``variant`` with the packaged state dict; returns (model, size)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise RecAdaptError(
            "EfficientNet encoders need efficientnet-lite-pytorch: run "
            "`pip install --no-deps efficientnet-lite-pytorch==0.1.0`"
        ) from None
    model = EfficientNet.from_name(variant)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), int(EfficientNet.get_image_size(variant))


class HFImageEncoder(FrozenEncoder):
    """A Hugging Face vision transformer (``hidden_states`` of ``[N, tokens, D]``), or a CNN
    whose ``hidden_states`` are ``[N, C, H, W]`` maps (averaged over space)."""

    forward_inputs = ("pixel_values",)

    def __init__(self, model: nn.Module, processor: Any | None, info: EncoderInfo,
                 image_size: int, mean: Sequence[float], std: Sequence[float],
                 pooling: str) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.info = info
        self.image_size = image_size
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.pooling = pooling
        self.spatial = False  # set by probe_dims: hidden states are [N, C, H, W] maps
        self.freeze()

    def probe_dims(self, sample: Any) -> list[int]:
        """Width of every layer's pooled state, from one forward on ``sample``."""
        states = self._forward(self.prepare([sample]))
        self.spatial = states[0].dim() == 4
        return [int(s.shape[1] if s.dim() == 4 else s.shape[-1]) for s in states]

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        from PIL import Image

        size = self.image_size
        images = [load_image(c) for c in contents]
        if self.processor is not None:
            grey = Image.new("RGB", (size, size), (128, 128, 128))
            filled = [grey if image is None else image for image in images]
            out = self.processor(images=filled, return_tensors="pt")
            return {"pixel_values": out["pixel_values"]}
        batch = np.empty((len(images), size, size, 3), dtype=np.float32)
        for row, image in enumerate(images):
            if image is None:
                batch[row] = 0.0
                continue
            pixels = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32)
            batch[row] = (pixels / 255.0 - self.mean) / self.std
        return {"pixel_values": torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()}

    def pool(self, state: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return pool_image_state(state, self.pooling)


def pool_image_state(state: torch.Tensor, pooling: str) -> torch.Tensor:
    """Token states ``[N, T, D]``: CLS (first token) or mean; maps ``[N, C, H, W]``: average."""
    if state.dim() == 4:
        return state.mean(dim=(2, 3))
    if pooling == "cls":
        return state[:, 0]
    return state.mean(dim=1)
