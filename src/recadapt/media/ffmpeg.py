"""The one place that runs ffmpeg: find the binary, run it, turn failures into clear errors."""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from recadapt.errors import DataError, RecAdaptError


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by ``imageio-ffmpeg`` (or ``$IMAGEIO_FFMPEG_EXE``)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RecAdaptError(
            "decoding audio/video needs the ffmpeg binary of imageio-ffmpeg: "
            "pip install imageio-ffmpeg"
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(path: str | Path, args: Sequence[str], what: str) -> bytes:
    """Run ``ffmpeg -i path ARGS`` writing raw output to stdout; return those bytes.

    ``what`` names the decoded stream in errors ("audio", "video frames"). A missing file, a
    file ffmpeg cannot read, or one without the wanted stream raises :class:`DataError` naming
    the file and ffmpeg's own last line of explanation.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (cannot decode its {what})")
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               *args, "-"]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"ffmpeg exit code {done.returncode}"
        raise DataError(f"{path}: cannot decode its {what}: {reason}")
    return done.stdout


def decoder_version() -> str:
    """``imageio-ffmpeg==VERSION``: the ffmpeg build that decodes (part of the audio and video
    encoders' cache keys, since another build may give slightly different samples)."""
    try:
        return f"imageio-ffmpeg=={importlib.metadata.version('imageio-ffmpeg')}"
    except importlib.metadata.PackageNotFoundError:
        return "imageio-ffmpeg (not installed)"
