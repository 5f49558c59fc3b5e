"""Audio encoders: the packaged Whisper encoders (CTranslate2 files) and Hugging Face Whisper/AST.

Contents are audio or video file paths (``str``/``Path``; the audio track is decoded by
:func:`recadapt.media.audio.decode_audio` at 16 kHz mono), float 1-D arrays already at 16 kHz,
or ``None`` for an item without audio. A missing item, an empty array and a file without an
audio stream are all **silence**: :data:`SILENCE_SECONDS` of zeros (recorded as
``"missing": "silence"`` in the settings). Only the first ``spec.seconds`` are read (default
30 s, Whisper's window).

**Packaged Whisper** (``whisper-tiny-en``: 4 layers x 384; ``whisper-base``: 6 x 512). The
packages ship CTranslate2 ``model.bin`` files, read without the ``ctranslate2`` package and
rebuilt losslessly into transformers' ``WhisperEncoder`` by :mod:`recadapt.encoders.ctranslate2`.

**Whisper forward** (:class:`WhisperAudioEncoder`, also for ``hf:`` Whisper checkpoints through
``WhisperModel``'s encoder). Features are transformers' ``WhisperFeatureExtractor`` log-mel
spectrogram (80 mel bins, 25 ms window, 10 ms hop), computed so that a clip's frames equal the
first frames of the usual 30 s-padded features exactly (the clip is followed by zeros, and the
dynamic-range clamp sees the same maximum). HF's ``WhisperEncoder.forward`` insists on 3000
frames (30 s) and lets every frame attend to the zero padding, so a 3 s clip would cost as
much as a 30 s one. Here the conv stem and blocks are run directly, with the positional
embeddings sliced to the clip's length: a batch is padded only to its longest clip, padded
stem frames are zeroed (so the convolutions see what a lone clip would) and a key padding mask
keeps padded frames out of every valid frame's attention. A clip therefore gets the same
states alone or batched with longer clips, and a full 30 s clip gets exactly HF's states.

* layer ``0``: conv stem (two GELU convolutions, the second with stride 2) + positional
  embeddings, one position per 20 ms;
* layer ``i``: the output of transformer block ``i``; the **last layer includes Whisper's
  final LayerNorm**, as HF's ``hidden_states`` tuple does (``hidden_states[-1] ==
  last_hidden_state``), so it is the representation Whisper's decoder reads.

Every layer is mean-pooled over the clip's **valid** positions only (``ceil(frames / 2)`` of
them), never over padding. Whisper has no CLS token, so ``pooling`` must be ``auto``/``mean``.

**AST** (``hf:MIT/ast-finetuned-audioset-10-10-0.4593`` or a folder;
:class:`ASTAudioEncoder`): transformers' ``ASTFeatureExtractor`` (Kaldi-style 128-bin fbank,
padded or cut to the config's ``max_length`` frames, 10.24 s for the AudioSet models: AST's
position embeddings fix its input size) and ``ASTModel``'s ``hidden_states`` (layer ``0`` the
patch embeddings, layer ``i`` block ``i``, before the final norm). Pooling ``mean`` (default:
all tokens) or ``cls`` (the average of the CLS and distillation tokens, as ``ASTModel``'s own
pooler does).

The ffmpeg build (``imageio-ffmpeg`` version) is part of the settings, since another build may
decode or resample slightly different samples.
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
from recadapt.encoders.ctranslate2 import whisper_encoder_from_ctranslate2
from recadapt.encoders.sources import ResolvedSource
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.media.audio import DEFAULT_SAMPLE_RATE, decode_audio, decoder_version

#: default ``spec.seconds`` for audio: Whisper's window
DEFAULT_SECONDS = 30.0
#: what a missing clip becomes (zeros); short, so items without audio cost little
SILENCE_SECONDS = 1.0
#: Whisper's STFT hop and window (10 ms and 25 ms at 16 kHz)
HOP_LENGTH = 160
N_FFT = 400



# ----------------------------------------------------------------------------- contents


def load_waveform(content: Any, sample_rate: int, seconds: float) -> np.ndarray:
    """One content as float32 mono samples (at most ``seconds``); empty for a missing clip."""
    if content is None:
        return np.zeros(0, dtype=np.float32)
    if isinstance(content, (str, Path)):
        return decode_audio(content, sample_rate=sample_rate, seconds=seconds)
    if isinstance(content, torch.Tensor):
        content = content.detach().cpu().numpy()
    if isinstance(content, np.ndarray):
        if content.ndim != 1 or not np.issubdtype(content.dtype, np.floating):
            raise RecAdaptError(
                f"audio array of shape {content.shape} and dtype {content.dtype}: expected 1-D "
                f"float samples at {sample_rate} Hz"
            )
        return content[: round(seconds * sample_rate)].astype(np.float32)
    raise RecAdaptError(
        f"audio content of type {type(content).__name__}: expected a file path, a 1-D float "
        "array or None"
    )


def _silence_if_empty(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    if wave.size == 0:
        return np.zeros(int(SILENCE_SECONDS * sample_rate), dtype=np.float32)
    return wave


# ----------------------------------------------------------------------------- Whisper


class WhisperAudioEncoder(FrozenEncoder):
    """A Whisper encoder run over each clip's own length (see the module docstring).

    ``prepare`` gives ``input_features`` ``[N, n_mels, T]`` (T: the batch's longest clip, in
    10 ms frames; shorter clips are zero-padded) and ``frames`` ``[N]`` (each clip's valid
    frames); ``hidden_states`` masks everything past a clip's frames.
    """

    def __init__(self, encoder: nn.Module, extractor: Any, info: EncoderInfo, seconds: float,
                 sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        super().__init__()
        self.encoder = encoder
        self.extractor = extractor
        self.info = info
        self.sample_rate = sample_rate
        self.hop = int(getattr(extractor, "hop_length", HOP_LENGTH))
        self.n_fft = int(getattr(extractor, "n_fft", N_FFT))
        self.max_frames = 2 * int(encoder.embed_positions.weight.shape[0])
        self.seconds = min(float(seconds), self.max_frames * self.hop / sample_rate)
        self.freeze()

    def backbone(self) -> nn.Module:
        return self.encoder

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """``[n_mels, frames]`` features of one clip: ``len(wave) // hop`` frames (at most the
        model's window), equal to the first frames of the 30 s-padded features HF computes.

        The clip is followed by ``n_fft`` zeros before the STFT, so every frame that overlaps
        the clip sees the zeros the 30 s padding would put there (not a reflection), and the
        ``max - 8`` clamp sees the same maximum; frames past the clip are then dropped.
        """
        wave = wave[: self.max_frames * self.hop]
        frames = max(len(wave) // self.hop, 1)
        padded = np.concatenate([wave, np.zeros(self.n_fft, dtype=np.float32)])
        out = self.extractor(padded, sampling_rate=self.sample_rate, padding="longest",
                             return_tensors="np", return_attention_mask=False)
        return np.asarray(out["input_features"][0][:, :frames], dtype=np.float32)

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        feats = [
            self.log_mel(_silence_if_empty(load_waveform(c, self.sample_rate, self.seconds),
                                           self.sample_rate))
            for c in contents
        ]
        n_mels = int(self.encoder.conv1.in_channels)
        longest = max((f.shape[1] for f in feats), default=1)
        batch = np.zeros((len(feats), n_mels, longest), dtype=np.float32)
        for row, feat in enumerate(feats):
            batch[row, :, : feat.shape[1]] = feat
        frames = torch.tensor([f.shape[1] for f in feats], dtype=torch.long)
        return {"input_features": torch.from_numpy(batch), "frames": frames}

    def layer_states(self, features: torch.Tensor, frames: torch.Tensor,
                     upto: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Unpooled states ``[N, P, D]`` of layers ``0..upto`` and the valid-position mask
        ``[N, P]`` (``P = ceil(T / 2)``)."""
        enc: Any = self.encoder
        steps = features.shape[-1]
        frames = frames.to(features.device)
        padded = bool((frames < steps).any())
        if padded:  # what the convolutions' own zero padding gives a lone clip
            keep = (torch.arange(steps, device=features.device) < frames[:, None])[:, None]
            features = features * keep
        x = nn.functional.gelu(enc.conv1(features))
        if padded:
            x = x * keep
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        positions = x.shape[1]
        valid = torch.arange(positions, device=x.device) < ((frames + 1) // 2)[:, None]
        hidden = x + enc.embed_positions.weight[:positions]
        hidden = nn.functional.dropout(hidden, p=float(enc.dropout), training=enc.training)
        mask = None
        if padded:
            mask = torch.zeros(valid.shape, dtype=hidden.dtype, device=hidden.device)
            mask = mask.masked_fill(~valid, torch.finfo(hidden.dtype).min)[:, None, None, :]
        states = [hidden]
        for layer in enc.layers[:upto]:
            hidden = layer(hidden, mask)
            states.append(hidden)
        if upto == len(enc.layers):  # the last layer is read after the final LayerNorm
            states[-1] = enc.layer_norm(states[-1])
        return states, valid

    def hidden_states(
        self, inputs: dict[str, torch.Tensor], layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        layers = check_layers(layers, self.info.num_layers)
        features = inputs["input_features"].to(self.device)
        frames = inputs.get("frames")  # absent: HF-style features, every frame valid
        if frames is None:
            frames = torch.full((features.shape[0],), features.shape[-1], dtype=torch.long)
        states, valid = self.layer_states(features, frames, max(layers))
        weights = valid.to(features.dtype)
        counts = weights.sum(dim=1, keepdim=True).clamp_min(1.0)
        return [(states[i] * weights[..., None]).sum(dim=1) / counts for i in layers]

    def probe_dims(self, sample: Any) -> list[int]:
        """Width of every layer's pooled state, from one forward on ``sample``."""
        inputs = self.prepare([sample])
        states = self.hidden_states(inputs, list(range(len(self.encoder.layers) + 1)))
        return [int(s.shape[-1]) for s in states]


# ----------------------------------------------------------------------------- AST


class ASTAudioEncoder(FrozenEncoder):
    """An Audio Spectrogram Transformer (``ASTModel``) over ``ASTFeatureExtractor`` fbanks."""

    forward_inputs = ("input_values",)

    def __init__(self, model: nn.Module, extractor: Any, info: EncoderInfo, seconds: float,
                 pooling: str, sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.info = info
        self.pooling = pooling
        self.sample_rate = sample_rate
        # samples that fill max_length 10 ms frames of 25 ms: decoding more is wasted
        window = (int(extractor.max_length) * HOP_LENGTH + N_FFT - HOP_LENGTH) / sample_rate
        self.seconds = min(float(seconds), window)
        self.freeze()

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        waves = [_silence_if_empty(load_waveform(c, self.sample_rate, self.seconds),
                                   self.sample_rate) for c in contents]
        out = self.extractor(waves, sampling_rate=self.sample_rate, return_tensors="pt")
        return {"input_values": out["input_values"].float()}

    def pool(self, state: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.pooling == "cls":  # CLS and distillation tokens, as ASTModel's pooler
            return (state[:, 0] + state[:, 1]) / 2
        return state.mean(dim=1)


# ----------------------------------------------------------------------------- loading


def _audio_pooling(spec: EncoderSpec, key: str, allowed: tuple[str, ...], what: str) -> str:
    pooling = "mean" if spec.pooling == "auto" else spec.pooling
    if pooling not in allowed:
        raise ConfigError(f"{key}: {what} pools with {' or '.join(allowed)}, not {pooling}; "
                          "use auto")
    return pooling


def _extractor(cls: Any, resolved: ResolvedSource, **defaults: Any) -> Any:
    """The folder's (or hub cache's) feature extractor, else the class defaults for the
    model's config (a folder saved without ``preprocessor_config.json``)."""
    try:
        return cls.from_pretrained(resolved.location, **resolved.pretrained_kwargs())
    except (OSError, ValueError, KeyError):
        return cls(**defaults)


def load_audio_encoder(spec: EncoderSpec, resolved: ResolvedSource,
                       position: int | None) -> FrozenEncoder:
    """The audio encoder for a spec: a packaged Whisper (CTranslate2 file), or an ``hf:``
    id / local folder holding a Whisper or AST model."""
    from transformers import WhisperFeatureExtractor

    from recadapt.encoders import _config, _key, _revision, _weights, _with_dims

    key = _key(spec, position, "model")
    pooling_key = _key(spec, position, "pooling")
    seconds = float(spec.seconds) if spec.seconds is not None else DEFAULT_SECONDS
    settings: dict[str, Any] = {
        "kind": "audio", "sample_rate": DEFAULT_SAMPLE_RATE, "dtype": "float32",
        "missing": "silence", "silence_seconds": SILENCE_SECONDS, "decoder": decoder_version(),
    }
    whisper_pooling = "Whisper has no CLS token and"
    if resolved.packaged is not None:
        pooling = _audio_pooling(spec, pooling_key, ("mean",), whisper_pooling)
        model_file = Path(resolved.location) / "model.bin"
        encoder_module = whisper_encoder_from_ctranslate2(model_file)
        revision = resolved.revision or ""
        architecture = "WhisperEncoder (CTranslate2 model.bin)"
        model_type = "whisper"
        extractor = WhisperFeatureExtractor(feature_size=int(encoder_module.conv1.in_channels))
    else:
        config = _config(resolved, key)
        model_type = str(getattr(config, "model_type", ""))
        revision = _revision(resolved, config)
        if model_type == "whisper":
            from transformers import WhisperModel

            pooling = _audio_pooling(spec, pooling_key, ("mean",), whisper_pooling)
            encoder_module = _weights(WhisperModel, resolved, key).encoder
            architecture = "WhisperEncoder"
            extractor = _extractor(WhisperFeatureExtractor, resolved,
                                   feature_size=int(config.num_mel_bins))
        elif model_type == "audio-spectrogram-transformer":
            return _load_ast(spec, resolved, config, revision, seconds, settings, position)
        else:
            raise ConfigError(
                f"{key}: {resolved.source} is a {model_type or 'non-audio'} model; audio "
                "encoders are Whisper (e.g. whisper-tiny-en) or AST models"
            )
    num_layers = len(encoder_module.layers)
    encoder = WhisperAudioEncoder(encoder_module, extractor, EncoderInfo(
        resolved.source, revision, "audio", num_layers, (0,) * (num_layers + 1), pooling, {}),
        seconds)
    n_mels = int(encoder_module.conv1.in_channels)
    if int(getattr(extractor, "feature_size", n_mels)) != n_mels:
        raise RecAdaptError(
            f"{key}: the feature extractor gives {extractor.feature_size} mel bins, the model "
            f"reads {n_mels}; fix preprocessor_config.json"
        )
    settings.update({
        "architecture": architecture, "model_type": model_type, "seconds": encoder.seconds,
        "n_mels": n_mels, "features": f"whisper log-mel, n_fft {encoder.n_fft}, hop "
        f"{encoder.hop}, clip length (no 30 s padding)", "padding": "masked",
        "pooling": pooling, "last_layer": "after the final LayerNorm",
    })
    encoder.info = EncoderInfo(resolved.source, revision, "audio", num_layers,
                               (0,) * (num_layers + 1), pooling, settings)
    encoder.info = _with_dims(encoder, np.zeros(DEFAULT_SAMPLE_RATE // 10, np.float32), key)
    return encoder


def _load_ast(spec: EncoderSpec, resolved: ResolvedSource, config: Any, revision: str,
              seconds: float, settings: dict[str, Any], position: int | None) -> FrozenEncoder:
    from transformers import ASTFeatureExtractor, ASTModel
    from transformers.utils import is_speech_available

    from recadapt.encoders import _key, _weights, _with_dims

    key = _key(spec, position, "model")
    pooling = _audio_pooling(spec, _key(spec, position, "pooling"), ("mean", "cls"), "AST")
    model = _weights(ASTModel, resolved, key)
    extractor = _extractor(ASTFeatureExtractor, resolved, num_mel_bins=int(config.num_mel_bins),
                           max_length=int(config.max_length))
    if int(extractor.max_length) != int(config.max_length) or \
            int(extractor.num_mel_bins) != int(config.num_mel_bins):
        raise RecAdaptError(
            f"{key}: the feature extractor gives {extractor.max_length} x "
            f"{extractor.num_mel_bins} fbanks, the model reads {config.max_length} x "
            f"{config.num_mel_bins}; fix preprocessor_config.json"
        )
    num_layers = int(config.num_hidden_layers)
    encoder = ASTAudioEncoder(model, extractor, EncoderInfo(
        resolved.source, revision, "audio", num_layers, (0,) * (num_layers + 1), pooling, {}),
        seconds, pooling)
    chosen = {k: getattr(extractor, k, None) for k in (
        "num_mel_bins", "max_length", "do_normalize", "mean", "std", "padding_value")}
    settings.update({
        "architecture": type(model).__name__, "model_type": "audio-spectrogram-transformer",
        "seconds": encoder.seconds, "n_mels": int(config.num_mel_bins), "pooling": pooling,
        # JSON-plain (numpy scalars → str): settings feed the cache key
        "features": json.loads(json.dumps(
            {**chosen, "fbank": "torchaudio" if is_speech_available() else "numpy"},
            default=str)),
    })
    encoder.info = EncoderInfo(resolved.source, revision, "audio", num_layers,
                               (0,) * (num_layers + 1), pooling, settings)
    encoder.info = _with_dims(encoder, np.zeros(DEFAULT_SAMPLE_RATE // 10, np.float32), key)
    return encoder


__all__ = [
    "ASTAudioEncoder",
    "WhisperAudioEncoder",
    "load_audio_encoder",
    "load_waveform",
]
