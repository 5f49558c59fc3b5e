"""Whisper encoders from CTranslate2 ``model.bin`` files, without the ``ctranslate2`` package.

The packaged Whisper models (``whisper-tiny-en``, ``whisper-base``) ship CTranslate2 files.
:func:`read_ctranslate2` reads the encoder's arrays straight from the file (format version 6)
and :func:`whisper_encoder_from_ctranslate2` rebuilds transformers' ``WhisperEncoder`` from
them losslessly: float16 → float32 is exact, int8 weights are dequantised with their scales,
the fused ``[q; k; v]`` projection is split in three, and its K bias is zero because Whisper's
key projection has none.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from recadapt.errors import RecAdaptError

#: CTranslate2's DataType enum (include/ctranslate2/types.h)
_CT2_DTYPES = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32,
               4: torch.float16, 5: torch.bfloat16}
CT2_BINARY_VERSION = 6


@dataclass(frozen=True)
class _Ct2Variable:
    shape: tuple[int, ...]
    dtype: torch.dtype
    offset: int
    nbytes: int


class _Reader:
    """Little-endian fields of a CTranslate2 file; a short read is a truncated file."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path = handle, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        data = self.handle.read(size)
        if len(data) != size:
            raise RecAdaptError(f"{self.path}: truncated CTranslate2 model file; reinstall it")
        return struct.unpack("<" + fmt, data)[0]

    def string(self) -> str:
        length = self.take("H")  # includes the trailing NUL
        data = self.handle.read(length)
        if len(data) != length:
            raise RecAdaptError(f"{self.path}: truncated CTranslate2 model file; reinstall it")
        return data[:-1].decode("utf-8")


def read_ctranslate2(path: str | Path, prefix: str = "encoder/") -> tuple[str, dict[str,
                                                                                  torch.Tensor]]:
    """The spec name and the arrays whose names start with ``prefix`` in a CTranslate2
    ``model.bin`` (binary format version 6), as float32 tensors (integer ones keep their type).

    Layout (``ModelSpec._serialize`` in CTranslate2): ``u32 version``, ``string spec name``,
    ``u32 spec revision``, ``u32 count``, then per variable ``string name``, ``u8 rank``,
    ``u32`` per dimension, ``u8 dtype``, ``u32 bytes`` and the raw data; then ``u32`` aliases
    of ``string alias, string target``. Strings are ``u16 length`` (with the NUL) + bytes.
    Only the wanted arrays are read: the headers are scanned and other data is skipped (the
    Whisper decoder is most of the file). int8-quantized weights are dequantized with their
    ``*_scale`` arrays.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise RecAdaptError(f"{path}: cannot open the CTranslate2 model ({err.strerror})") from None
    with handle:
        reader = _Reader(handle, path)
        version = reader.take("I")
        if version != CT2_BINARY_VERSION:
            raise RecAdaptError(
                f"{path}: CTranslate2 binary format version {version}, this reader knows "
                f"{CT2_BINARY_VERSION}; convert the model with ctranslate2 >= 3"
            )
        spec_name = reader.string()
        reader.take("I")  # spec revision
        table: dict[str, _Ct2Variable] = {}
        for _ in range(reader.take("I")):
            name = reader.string()
            shape = tuple(reader.take("I") for _ in range(reader.take("B")))
            type_id = reader.take("B")
            nbytes = reader.take("I")
            if type_id not in _CT2_DTYPES:
                raise RecAdaptError(f"{path}: variable {name} has unknown data type {type_id}")
            table[name] = _Ct2Variable(shape, _CT2_DTYPES[type_id], handle.tell(), nbytes)
            handle.seek(nbytes, 1)
        aliases = {}
        for _ in range(reader.take("I")):
            alias = reader.string()
            aliases[alias] = reader.string()
        raw: dict[str, torch.Tensor] = {}
        for name in sorted({*table, *aliases}):
            if not name.startswith(prefix):
                continue
            target = aliases.get(name, name)
            if target not in table:
                raise RecAdaptError(f"{path}: alias {name} points to missing {target}")
            raw[name] = _read_variable(handle, table[target], path, target)
    return spec_name, _dequantize(raw)


def _read_variable(handle: BinaryIO, var: _Ct2Variable, path: Path, name: str) -> torch.Tensor:
    handle.seek(var.offset)
    data = bytearray(handle.read(var.nbytes))
    count = math.prod(var.shape)
    if len(data) != var.nbytes or var.nbytes != count * var.dtype.itemsize:
        raise RecAdaptError(f"{path}: variable {name} is truncated or has a wrong size")
    return torch.frombuffer(data, dtype=var.dtype, count=count).reshape(var.shape).clone()


def _dequantize(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating arrays as float32; int8/int16 weights divided by their per-row ``_scale``."""
    out: dict[str, torch.Tensor] = {}
    for name, value in raw.items():
        if name.endswith("_scale") and name[: -len("_scale")] in raw:
            continue
        scale = raw.get(name + "_scale")
        if scale is not None and not value.is_floating_point():
            scale = scale.float()
            value = value.float() / (scale.unsqueeze(1) if scale.dim() == 1 else scale)
        elif value.is_floating_point():
            value = value.float()
        out[name] = value
    return out


def whisper_encoder_from_ctranslate2(path: str | Path) -> nn.Module:
    """transformers' ``WhisperEncoder`` with the weights of a CTranslate2 Whisper ``model.bin``.

    The config (width, blocks, heads, FFN width, mel bins, positions) is read off the arrays'
    shapes (and ``encoder/num_heads``), so tiny.en, base and larger files all work.
    """
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    path = Path(path)
    spec_name, arrays = read_ctranslate2(path, "encoder/")
    if spec_name != "WhisperSpec":
        raise RecAdaptError(f"{path}: a CTranslate2 {spec_name}, not a Whisper model")
    state, sizes = _whisper_state(arrays, path)
    config = WhisperConfig(
        d_model=sizes["d_model"], encoder_layers=sizes["layers"],
        encoder_attention_heads=sizes["heads"], encoder_ffn_dim=sizes["ffn"],
        num_mel_bins=sizes["mels"], max_source_positions=sizes["positions"],
    )
    with torch.device("meta"):  # no random init: every weight comes from the file
        encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise RecAdaptError(f"{path}: the Whisper encoder arrays do not fit ({first})") from None
    return encoder.eval()


def _whisper_state(arrays: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor],
                                                                           dict[str, int]]:
    """CTranslate2 names → ``WhisperEncoder`` state dict, and the sizes read off the shapes."""

    def get(name: str) -> torch.Tensor:
        full = "encoder/" + name
        if full not in arrays:
            raise RecAdaptError(f"{path}: no {full} array; is it a Whisper model.bin?")
        return arrays[full]

    conv1 = get("conv1/weight")
    d_model, mels = int(conv1.shape[0]), int(conv1.shape[1])
    layers = sum(1 for n in arrays if n.startswith("encoder/layer_")
                 and n.endswith("/self_attention/linear_0/weight"))
    heads_array = arrays.get("encoder/num_heads")
    heads = int(heads_array.item()) if heads_array is not None else d_model // 64
    state = {
        "conv1.weight": conv1, "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
        "embed_positions.weight": get("position_encodings/encodings"),
        "layer_norm.weight": get("layer_norm/gamma"), "layer_norm.bias": get("layer_norm/beta"),
    }
    ffn = 0
    for i in range(layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_w, qkv_b = get(src + "self_attention/linear_0/weight"), \
            get(src + "self_attention/linear_0/bias")
        q_w, k_w, v_w = qkv_w.chunk(3, dim=0)
        q_b, k_b, v_b = qkv_b.chunk(3, dim=0)
        if k_b.abs().max() > 0:  # Whisper's k_proj has no bias: a nonzero one is not Whisper
            raise RecAdaptError(f"{path}: layer {i} has a key bias; not a Whisper encoder")
        fc1 = get(src + "ffn/linear_0/weight")
        ffn = int(fc1.shape[0])
        state.update({
            dst + "self_attn.q_proj.weight": q_w, dst + "self_attn.q_proj.bias": q_b,
            dst + "self_attn.k_proj.weight": k_w,
            dst + "self_attn.v_proj.weight": v_w, dst + "self_attn.v_proj.bias": v_b,
            dst + "self_attn.out_proj.weight": get(src + "self_attention/linear_1/weight"),
            dst + "self_attn.out_proj.bias": get(src + "self_attention/linear_1/bias"),
            dst + "self_attn_layer_norm.weight": get(src + "self_attention/layer_norm/gamma"),
            dst + "self_attn_layer_norm.bias": get(src + "self_attention/layer_norm/beta"),
            dst + "fc1.weight": fc1, dst + "fc1.bias": get(src + "ffn/linear_0/bias"),
            dst + "fc2.weight": get(src + "ffn/linear_1/weight"),
            dst + "fc2.bias": get(src + "ffn/linear_1/bias"),
            dst + "final_layer_norm.weight": get(src + "ffn/layer_norm/gamma"),
            dst + "final_layer_norm.bias": get(src + "ffn/layer_norm/beta"),
        })
    if layers == 0:
        raise RecAdaptError(f"{path}: no encoder blocks found; is it a Whisper model.bin?")
    positions = int(state["embed_positions.weight"].shape[0])
    sizes = {"d_model": d_model, "mels": mels, "layers": layers, "heads": heads, "ffn": ffn,
             "positions": positions}
    return {k: v.contiguous() for k, v in state.items()}, sizes
