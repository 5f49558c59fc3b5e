"""decode_audio: formats, resampling, cutting, video tracks, files without audio, bad files."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from recadapt.errors import DataError
from recadapt.media.audio import decode_audio
from recadapt.media.ffmpeg import ffmpeg_exe


def write_tone_wav(path: Path, freq: float = 440.0, seconds: float = 1.0, rate: int = 44100,
                   channels: int = 2, amplitude: float = 0.5) -> Path:
    """A sine tone as 16-bit PCM WAV (the same tone on every channel)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(mono[:, None], channels, axis=1).tobytes())
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *args], check=True, capture_output=True)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.fixture(scope="module")
def tone_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    wav = write_tone_wav(folder / "tone.wav")
    ffmpeg("-i", str(wav), "-c:a", "flac", str(folder / "tone.flac"))
    ffmpeg("-i", str(wav), "-c:a", "libmp3lame", "-b:a", "128k", str(folder / "tone.mp3"))
    # a video with a 440 Hz audio track, and one without any audio
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=44100", "-t", "1", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", str(folder / "with_audio.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1", "-pix_fmt",
           "yuv420p", str(folder / "silent.mp4"))
    return {p.name: p for p in folder.iterdir()}


@pytest.mark.parametrize("name", ["tone.wav", "tone.flac", "tone.mp3", "with_audio.mp4"])
def test_formats_decode_to_16k_mono_and_keep_the_pitch(tone_files, name: str) -> None:
    samples = decode_audio(tone_files[name])
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 16000) < 0.06 * 16000  # 1 s (MP3/AAC add codec padding)
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    assert abs(peak_hz(samples, 16000) - 440.0) < 2.0  # resampled 44.1 → 16 kHz, same pitch
    if name in ("tone.wav", "tone.flac"):  # lossless: the amplitude survives
        assert abs(np.abs(samples).max() - 0.5) < 0.01


def test_lossless_formats_give_the_same_samples(tone_files, tmp_path: Path) -> None:
    wav, flac = decode_audio(tone_files["tone.wav"]), decode_audio(tone_files["tone.flac"])
    assert wav.shape == flac.shape and np.abs(wav - flac).max() < 1e-4
    # channels are averaged: equal stereo channels decode like the mono file (no 3 dB boost)
    mono = decode_audio(write_tone_wav(tmp_path / "mono.wav", channels=1))
    assert np.abs(mono - wav).max() < 1e-4


def test_sample_rate_and_seconds(tone_files) -> None:
    at8k = decode_audio(tone_files["tone.wav"], sample_rate=8000)
    assert len(at8k) == 8000 and abs(peak_hz(at8k, 8000) - 440.0) < 2.0
    cut = decode_audio(tone_files["tone.wav"], seconds=0.25)
    assert len(cut) == 4000
    full = decode_audio(tone_files["tone.wav"])
    assert np.abs(cut - full[:4000]).max() < 1e-6  # the first 0.25 s, not another slice
    longer = decode_audio(tone_files["tone.wav"], seconds=5)  # more than the file: all of it
    assert len(longer) == len(full)


def test_video_without_audio_is_empty(tone_files) -> None:
    samples = decode_audio(tone_files["silent.mp4"])
    assert samples.dtype == np.float32 and samples.shape == (0,)


def test_corrupt_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"broken\.wav: cannot decode its audio") as err:
        decode_audio(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"absent\.flac: no such file"):
        decode_audio(tmp_path / "absent.flac")
    with pytest.raises(ValueError):
        decode_audio(bad, seconds=0)


def test_microlens_mp4_audio_track(microlens_sample: Path) -> None:
    videos = sorted(microlens_sample.glob("*.mp4"))
    samples = decode_audio(videos[0], seconds=3)
    assert samples.dtype == np.float32 and len(samples) == 48000  # HEVC + AAC, 44.1 kHz stereo
    assert 0.001 < float(np.sqrt(np.mean(samples ** 2))) < 1.0  # not silence, not clipped noise
