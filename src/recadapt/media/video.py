"""Video frames as uint8 arrays, decoded by ffmpeg (:func:`recadapt.media.ffmpeg.run_ffmpeg`).

Choices:

* **Which frames.** ``F`` frames spread evenly over the first ``seconds`` of the clip, or over
  the whole clip when it is shorter (``D = min(seconds, duration)``): frame ``k`` is the one
  on screen at the middle of the ``k``-th of ``F`` equal segments, ``t_k = (k + 1/2) * D / F``
  (precisely: the last frame that starts strictly before ``t_k``; a frame starting exactly at
  ``t_k`` counts for the next one). Middles rather than segment starts, so a black first
  frame or fade-in is not always picked, and the same rule works for any frame rate
  (variable rates too). ffmpeg's ``fps`` filter does exactly this selection
  (``trim=duration=D,fps=F/D``), and only the first ``D`` seconds are decoded. A clip with
  fewer distinct frames than ``F`` repeats frames.
* **Duration** comes from the video stream's packet timestamps (``-c copy -f framecrc``, a
  demux without decoding, ~50 ms for a 16 s clip), not the container header, which may
  count a longer audio track.
* **Size.** Frames are scaled down in ffmpeg so the shorter side is at most ``size`` pixels
  (aspect ratio kept, never enlarged): MicroLens clips are 1280x720 HEVC and the encoders
  use 224 px, so full-size RGB frames would be wasted memory and conversion time.
* **Orientation.** Frames are written as PPM images, each carrying its own width and height,
  so phone videos with rotation metadata (ffmpeg auto-rotates them) never come out
  mis-shaped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from recadapt.errors import DataError
from recadapt.media.ffmpeg import run_ffmpeg

#: the CROSSAN paper encodes the first 3 seconds of each micro-video
DEFAULT_SECONDS = 3.0
DEFAULT_FRAMES = 16
_NOPTS = -(1 << 63)
_PPM_HEADER = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")


def video_duration(path: str | Path) -> float | None:
    """Seconds from the first video packet to the end of the last one, or ``None`` when the
    stream has no usable timestamps. A file without a video stream raises DataError.

    Only the first video stream that is not an attached picture (``0:V:0``, so an MP3's cover
    art is not taken for a video) is read; packets are copied, not decoded."""
    out = run_ffmpeg(path, ["-map", "0:V:0?", "-c", "copy", "-f", "framecrc"], "video frames")
    text = out.decode("utf-8", "replace")
    if "#media_type 0: video" not in text:
        raise DataError(f"{path}: has no video stream; give a video file (MP4, WebM, MKV...)")
    base: float | None = None
    first: int | None = None
    last: int | None = None
    for line in text.splitlines():
        if line.startswith("#tb 0:"):
            num, _, den = line.split(":", 1)[1].strip().partition("/")
            base = int(num) / int(den or 1)
            continue
        fields = [f.strip() for f in line.split(",")]
        if line.startswith("#") or len(fields) < 4 or fields[0] != "0":
            continue
        try:
            pts, length = int(fields[2]), max(int(fields[3]), 0)
        except ValueError:
            continue
        if pts == _NOPTS:
            continue
        first = pts if first is None else min(first, pts)
        last = pts + length if last is None else max(last, pts + length)
    if base is None or first is None or last is None or last <= first:
        return None
    return (last - first) * base


def video_frames(
    path: str | Path,
    frames: int = DEFAULT_FRAMES,
    seconds: float | None = DEFAULT_SECONDS,
    size: int | None = 256,
) -> np.ndarray:
    """``frames`` evenly spaced RGB frames of the video at ``path``: uint8 ``[F, H, W, 3]``.

    Args:
        path: any file ffmpeg reads with a video stream (MP4/HEVC, WebM, MKV, GIF, ...).
        frames: how many frames ``F`` to return (always exactly ``F``).
        seconds: sample within the first ``seconds`` (``None``: the whole clip); a shorter clip
            is sampled over its whole length.
        size: the shorter side is scaled down to at most this many pixels, aspect kept
            (``None``: decoded size).

    A missing, unreadable or video-less file raises :class:`DataError` naming the file.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    duration = video_duration(path)
    span = duration if seconds is None else (
        seconds if duration is None else min(seconds, duration))
    filters = ["setpts=PTS-STARTPTS"]
    if span is not None:
        filters += [f"trim=duration={span:.6f}", f"fps=fps={frames}/{span:.6f}"]
    if size is not None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        filters.append(
            f"scale=w='if(lte(iw,ih),min(iw,{size}),-2)':h='if(lte(iw,ih),-2,min(ih,{size}))'"
            ":flags=bicubic"
        )
    limit = ["-frames:v", str(frames)] if span is not None else []
    args = ["-map", "0:V:0", "-an", "-sn", "-dn", "-vf", ",".join(filters), *limit,
            "-c:v", "ppm", "-f", "image2pipe"]
    decoded = _split_ppm(run_ffmpeg(path, args, "video frames"), Path(path))
    if not decoded:
        raise DataError(f"{path}: no video frames could be decoded; check the file plays")
    if span is None and len(decoded) > frames:  # no timestamps at all: spread over all frames
        picks = ((np.arange(frames) + 0.5) * len(decoded) / frames).astype(int)
        decoded = [decoded[i] for i in picks]
    while len(decoded) < frames:  # the last frame on screen until the end
        decoded.append(decoded[-1])
    return np.stack(decoded[:frames])


def _split_ppm(data: bytes, path: Path) -> list[np.ndarray]:
    """Concatenated binary PPM images (ffmpeg's ``image2pipe`` + ``ppm``) → ``H x W x 3``."""
    out: list[np.ndarray] = []
    at = 0
    while at < len(data):
        match = _PPM_HEADER.match(data, at)
        if match is None or int(match.group(3)) != 255:
            raise DataError(f"{path}: ffmpeg returned unreadable frames; check the file plays")
        width, height = int(match.group(1)), int(match.group(2))
        begin = match.end()
        end = begin + width * height * 3
        if end > len(data):
            raise DataError(f"{path}: ffmpeg returned a truncated frame; check the file plays")
        out.append(np.frombuffer(data, np.uint8, width * height * 3, begin)
                   .reshape(height, width, 3))
        at = end
    return out
