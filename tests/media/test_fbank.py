"""fbank: Kaldi framing, mel placement of a tone, silence, short clips, files, a reference."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from recadapt.media.fbank import LOG_FLOOR, fbank, fbank_file

RATE = 16000


def tone(freq: float, seconds: float = 1.0, rate: int = RATE, amplitude: float = 0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def centres_hz(num_bins: int, low: float = 20.0, high: float = RATE / 2) -> np.ndarray:
    """Band centres from the mel formula, written out independently of the module."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    edges = np.linspace(mel(low), mel(high), num_bins + 2)
    return 700.0 * (np.exp(edges[1:-1] / 1127.0) - 1.0)


@pytest.mark.parametrize("num_bins", [40, 80])
def test_shape_follows_kaldi_snip_edges(num_bins: int) -> None:
    feats = fbank(tone(440.0), num_bins=num_bins)
    assert feats.shape == (98, num_bins) and feats.dtype == torch.float32  # 1 + (16000-400)//160
    assert fbank(np.zeros(401, np.float32)).shape == (1, 80)
    assert fbank(torch.zeros(1, 560)).shape == (2, 80)  # [1, n] accepted


@pytest.mark.parametrize("num_bins", [40, 80])
@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 6000.0])
def test_tone_peaks_in_the_band_centred_nearest_it(num_bins: int, freq: float) -> None:
    feats = fbank(tone(freq), num_bins=num_bins)
    expected = int(np.argmin(np.abs(centres_hz(num_bins) - freq)))
    assert (feats.argmax(dim=1) == expected).all()


def test_silence_is_the_log_floor() -> None:
    feats = fbank(np.zeros(RATE, np.float32))
    assert torch.allclose(feats, torch.full_like(feats, math.log(LOG_FLOOR)))
    assert feats.max() < -15.0
    # a constant (DC) signal is silence too: the offset is removed per frame
    assert torch.allclose(fbank(np.full(RATE, 0.3, np.float32)), feats)


def test_clip_shorter_than_a_window_has_no_frames() -> None:
    assert fbank(tone(440.0, seconds=0.02), num_bins=40).shape == (0, 40)
    assert fbank(np.zeros(0, np.float32)).shape == (0, 80)


def test_bad_arguments_are_value_errors() -> None:
    x = tone(440.0)
    with pytest.raises(ValueError, match="mono"):
        fbank(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError, match="num_bins"):
        fbank(x, num_bins=0)
    with pytest.raises(ValueError, match="sample_rate"):
        fbank(x, sample_rate=0)
    with pytest.raises(ValueError, match="Nyquist"):
        fbank(x, high_freq=9000.0)
    with pytest.raises(ValueError, match="too short"):
        fbank(x, frame_shift_ms=0.01)
    with pytest.raises(ValueError, match="NaN"):
        fbank(np.full(1000, np.nan, np.float32))


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """Write 16-bit PCM; return the samples as they decode back (quantised, in [-1, 1])."""
    pcm = np.round(samples * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return pcm.astype(np.float32) / 32768.0


def test_fbank_file_equals_fbank_of_the_samples(tmp_path: Path) -> None:
    mix = tone(1000.0, seconds=0.5) + tone(3000.0, seconds=0.5, amplitude=0.1)
    samples = write_wav(tmp_path / "a.wav", mix)
    feats = fbank_file(tmp_path / "a.wav", num_bins=40)
    assert feats.shape == (48, 40)
    assert torch.allclose(feats, fbank(samples, num_bins=40), atol=1e-4)
    assert fbank_file(tmp_path / "a.wav", seconds=0.1).shape == (8, 80)  # 1600 samples


def test_fbank_file_on_a_real_microlens_clip(shared_data) -> None:
    path = shared_data("microlens_sample") / "1002.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    feats = fbank_file(path, num_bins=80, seconds=2.0)
    assert feats.shape[1] == 80 and feats.shape[0] in (0, 198)  # 0: a clip without audio
    assert torch.isfinite(feats).all()


def test_matches_kaldi_native_fbank_when_installed() -> None:
    knf = pytest.importorskip("kaldi_native_fbank")
    rng = np.random.default_rng(0)
    x = tone(440.0, 2.0, 22050, 0.3) + 0.05 * rng.standard_normal(44100).astype(np.float32)
    for num_bins in (40, 80):
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.frame_opts.samp_freq = 22050
        opts.mel_opts.num_bins = num_bins
        online = knf.OnlineFbank(opts)
        online.accept_waveform(22050, x.tolist())
        online.input_finished()
        ref = np.array([online.get_frame(i) for i in range(online.num_frames_ready)])
        ours = fbank(x, sample_rate=22050, num_bins=num_bins).numpy()
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-3)
