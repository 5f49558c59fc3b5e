"""Kaldi-style log Mel filter-bank (FBank) features in plain torch.

ATFLRec reads audio as "the Mel filter bank ... computed with a frame length of 25 milliseconds
and a frame shift of 10 milliseconds" (40 or 80 bins, first 30 s of audio). Those are the
defaults of Kaldi's ``compute-fbank``, so :func:`fbank` reproduces them step for step as
``torchaudio.compliance.kaldi.fbank`` implements them, without torchaudio or librosa:

* **Framing with ``snip_edges=True``:** windows of ``int(sr * 25 ms)`` samples every
  ``int(sr * 10 ms)`` samples, only whole windows: ``1 + (n - window) // shift`` frames, and
  **0 frames** when the clip is shorter than one window (1.0 s at 16 kHz → 98 frames).
* **Per frame:** the mean is subtracted (DC offset), pre-emphasis ``x[i] - 0.97 x[i-1]``
  (the first sample uses itself as predecessor), then the Povey window (Hann ** 0.85).
* **Spectrum:** zero-padded to the next power of two (400 → 512 samples at 16 kHz), power
  spectrum ``|FFT|^2``.
* **Mel banks:** ``num_bins`` triangles evenly spaced on Kaldi's mel scale
  ``1127 ln(1 + f / 700)`` between ``low_freq=20`` Hz and ``high_freq`` = Nyquist, weights
  computed in mel (not Hz); the Nyquist FFT bin gets no weight, as in Kaldi.
* **Log** of each band energy floored at float32 epsilon (``log(1.19e-7) ≈ -15.94`` for
  silence); no dither (Kaldi's default dither adds noise, which would make the cache
  non-deterministic), no energy coefficient, no mean normalisation.

Samples are used as given (the torchaudio convention, ``[-1, 1]`` floats): Kaldi's own tools
read int16 values, whose features are the same plus ``log(32768**2) ≈ 20.79``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from recadapt.media.audio import DEFAULT_SAMPLE_RATE, decode_audio

#: Kaldi's log floor: float32 machine epsilon
LOG_FLOOR = float(np.finfo(np.float32).eps)
PREEMPHASIS = 0.97


def mel_scale(freq: float | torch.Tensor) -> float | torch.Tensor:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def mel_banks(
    num_bins: int, fft_size: int, sample_rate: int, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Triangular filters ``[num_bins, fft_size // 2 + 1]`` (float32) over the power spectrum.

    Triangles are equally wide on the mel scale, each rising from its left neighbour's centre to
    its own and falling to its right neighbour's; the last (Nyquist) column is zero as in Kaldi.
    """
    delta = (mel_scale(high_freq) - mel_scale(low_freq)) / (num_bins + 1)
    edges = mel_scale(low_freq) + delta * torch.arange(num_bins + 2, dtype=torch.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    freqs = sample_rate / fft_size * torch.arange(fft_size // 2, dtype=torch.float64)
    mel = mel_scale(freqs)[None, :]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(weights, (0, 1)).to(torch.float32)


def fbank(
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    num_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float | None = None,
) -> torch.Tensor:
    """Log Mel filter-bank features ``[frames, num_bins]`` (float32) of a mono waveform.

    Args:
        waveform: 1-D samples (or ``[1, n]``), e.g. from :func:`decode_audio`.
        sample_rate: the waveform's rate in Hz.
        num_bins: number of mel bands (ATFLRec uses 40 or 80).
        frame_length_ms, frame_shift_ms: window length and hop (Kaldi: 25 and 10 ms).
        low_freq, high_freq: band edges in Hz; ``high_freq=None`` means Nyquist.

    See the module docstring for every step and why; fewer samples than one window give
    ``[0, num_bins]``.
    """
    samples = torch.as_tensor(waveform).detach().to("cpu", torch.float32)
    if samples.ndim == 2 and samples.shape[0] == 1:
        samples = samples[0]
    if samples.ndim != 1:
        raise ValueError(f"fbank needs a mono waveform [n] or [1, n], got shape "
                         f"{tuple(samples.shape)}: down-mix the channels first")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f"num_bins must be a positive whole number, got {num_bins!r}")
    window = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if window < 2 or shift < 1:
        raise ValueError(f"frame_length_ms={frame_length_ms} / frame_shift_ms={frame_shift_ms} "
                         f"give {window} / {shift} samples at {sample_rate} Hz: too short")
    nyquist = sample_rate / 2
    high = nyquist if high_freq is None else float(high_freq)
    if not 0 <= low_freq < high <= nyquist:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist:g} (Nyquist), got "
                         f"low_freq={low_freq}, high_freq={high}")
    num_bins = int(num_bins)
    if len(samples) < window:
        return torch.zeros(0, num_bins, dtype=torch.float32)
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("fbank: the waveform has NaN or infinite samples")

    frames = samples.unfold(0, window, shift)  # snip_edges: whole windows only
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - PREEMPHASIS * previous
    povey = torch.hann_window(window, periodic=False, dtype=torch.float32).pow(0.85)
    fft_size = 1 << (window - 1).bit_length()
    power = torch.fft.rfft(frames * povey, n=fft_size).abs().pow(2)
    energies = power @ mel_banks(num_bins, fft_size, sample_rate, low_freq, high).T
    return energies.clamp_min(LOG_FLOOR).log()


def fbank_file(
    path: str | Path,
    num_bins: int = 80,
    seconds: float | None = 30.0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """FBank features of the first ``seconds`` of an audio or video file (ATFLRec: 30 s).

    A file without an audio track (or shorter than one 25 ms window) gives a ``[0, num_bins]``
    tensor, which callers treat as silence; an unreadable file raises
    :class:`recadapt.errors.DataError` naming it (from :func:`decode_audio`).
    """
    return fbank(decode_audio(path, sample_rate, seconds), sample_rate, num_bins)


__all__ = ["LOG_FLOOR", "fbank", "fbank_file", "mel_banks", "mel_scale"]
