"""Audio as a float32 mono waveform, decoded by ffmpeg (:func:`recadapt.media.ffmpeg.run_ffmpeg`).

Choices:

* **One decoder for every format.** WAV, FLAC, MP3, OGG and the audio track of MP4/MKV/WebM
  files all go through the ffmpeg binary of ``imageio-ffmpeg`` asking for raw 32-bit floats
  (``-vn -ac 1 -ar SR -f f32le``), so a clip decodes to the same samples on every machine
  and no Python audio library (soundfile, librosa, torchaudio) is needed.
* **Mono, resampled in ffmpeg.** Channels are averaged by ffmpeg's down-mix, normalised so
  its weights sum to one (``-rematrix_maxval 1``: identical channels give exactly the mono
  signal instead of a 3 dB boost), and the rate is converted by its resampler (``-ar``),
  because every audio encoder here (Whisper, AST) reads 16 kHz mono.
* **Only what is read is decoded.** ``seconds`` becomes ``-t``: ffmpeg stops after the first
  ``seconds`` of output, so a 10-minute podcast costs the same as its first 30 s.
* **A readable file without an audio stream is silence, not an error.** Micro-video datasets
  have silent clips (MP4s with no audio track); failing the whole cache build on one of them
  would be worse than encoding it as "no audio". :func:`decode_audio` returns an empty array
  for such a file (the encoders turn empty clips into their silence input, as for a missing
  path). A file ffmpeg cannot read at all still raises :class:`DataError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recadapt.errors import DataError
from recadapt.media.ffmpeg import decoder_version, run_ffmpeg

#: the rate Whisper and AST were trained on
DEFAULT_SAMPLE_RATE = 16000


def decode_audio(
    path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE, seconds: float | None = None
) -> np.ndarray:
    """The audio of ``path`` as float32 mono samples in ``[-1, 1]`` at ``sample_rate`` Hz.

    Args:
        path: an audio file (WAV, FLAC, MP3, ...) or a video file whose audio track is read.
        sample_rate: output rate in Hz (ffmpeg resamples).
        seconds: decode only the first ``seconds`` (``None``: the whole file).

    Returns a 1-D array; it is empty for a file that has no audio stream (documented as
    silence, see the module docstring). A missing or unreadable file raises
    :class:`DataError` naming it.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    # rematrix_maxval 1: the down-mix weights sum to one (a mean), so a stereo file whose
    # channels are equal decodes to the same samples as its mono version (ffmpeg's default
    # would raise it by 3 dB and clip loud correlated stereo)
    args = ["-map", "0:a:0", "-vn", "-ac", "1", "-rematrix_maxval", "1.0",
            "-ar", str(int(sample_rate))]
    if seconds is not None:
        args += ["-t", f"{float(seconds):.6f}"]
    args += ["-f", "f32le"]
    try:
        raw = run_ffmpeg(path, args, "audio")
    except DataError:
        if _readable_without_audio(path):
            return np.zeros(0, dtype=np.float32)
        raise
    samples = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    # decoders may overshoot full scale by a hair (MP3, AAC); the contract is [-1, 1]
    return np.clip(samples, -1.0, 1.0)


def _readable_without_audio(path: str | Path) -> bool:
    """Whether ffmpeg reads ``path`` and finds streams, none of them audio (only asked after a
    failed decode, so the common case costs one ffmpeg run)."""
    try:
        listing = run_ffmpeg(path, ["-map", "0", "-c", "copy", "-t", "0", "-f", "framecrc"],
                             "streams")
    except DataError:
        return False
    kinds = [line.rsplit(":", 1)[-1].strip()
             for line in listing.decode("utf-8", "replace").splitlines()
             if line.startswith("#media_type")]
    return bool(kinds) and "audio" not in kinds


__all__ = ["DEFAULT_SAMPLE_RATE", "decode_audio", "decoder_version"]
