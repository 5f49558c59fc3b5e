"""Video frame decoding: which frames (a clip whose colour encodes the frame number), sizes,
rotation, the real MicroLens HEVC samples, and bad files."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("imageio_ffmpeg")

from recadapt.errors import DataError
from recadapt.media.ffmpeg import ffmpeg_exe, run_ffmpeg
from recadapt.media.video import video_duration, video_frames

SAMPLES = ("1002", "10034", "10040")
FPS = 25


@pytest.fixture(scope="module")
def microlens(microlens_sample: Path) -> Path:
    return microlens_sample


def make_clip(path: Path, seconds: float = 4.0, size: str = "160x90",
              before: tuple[str, ...] = ()) -> Path:
    """A lossless 25 fps clip whose frame ``n`` is the uniform grey ``2n``."""
    source = (f"color=c=black:s={size}:r={FPS}:d={seconds},format=rgb24,"
              "geq=r='2*N':g='2*N':b='2*N'")
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", source, "-c:v", "ffv1", str(path)], check=True)
    if before:  # remux with input options (e.g. rotation metadata)
        target = path.with_name("re-" + path.name)
        subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", *before,
                        "-i", str(path), "-c", "copy", str(target)], check=True)
        return target
    return path


def frame_numbers(frames: np.ndarray) -> list[int]:
    """The frame number each decoded frame shows (its centre pixel is 2n)."""
    h, w = frames.shape[1] // 2, frames.shape[2] // 2
    return [int(v) // 2 for v in frames[:, h, w, 0]]


def middles(count: int, span: float, fps: int = FPS) -> list[int]:
    """Expected frames: for each of ``count`` equal segments, the last frame that starts
    strictly before the segment's middle (exact fractions: ties are decided by the rule)."""
    out = []
    for k in range(count):
        start = Fraction(2 * k + 1, 2) * Fraction(span).limit_denominator(1000) / count * fps
        out.append(math.ceil(start) - 1)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "count.mkv")


def test_frames_are_evenly_spaced_middles_within_seconds(clip: Path) -> None:
    frames = video_frames(clip, frames=8, seconds=2.0)
    assert frames.shape == (8, 90, 160, 3) and frames.dtype == np.uint8
    assert frame_numbers(frames) == middles(8, 2.0) == [3, 9, 15, 21, 28, 34, 40, 46]
    for count, seconds in [(16, 3.0), (5, 0.3), (3, 1.0)]:
        numbers = frame_numbers(video_frames(clip, frames=count, seconds=seconds))
        assert numbers == middles(count, seconds)
        assert max(numbers) < seconds * FPS  # nothing after the first `seconds`


def test_a_shorter_clip_is_sampled_over_its_whole_length(clip: Path) -> None:
    assert video_duration(clip) == pytest.approx(4.0, abs=1e-6)
    whole = frame_numbers(video_frames(clip, frames=4, seconds=10.0))
    assert whole == middles(4, 4.0) == [12, 37, 62, 87]
    assert frame_numbers(video_frames(clip, frames=4, seconds=None)) == whole


def test_more_frames_than_the_clip_has_repeat_in_time_order(tmp_path: Path) -> None:
    short = make_clip(tmp_path / "short.mkv", seconds=0.2)  # 5 frames
    numbers = frame_numbers(video_frames(short, frames=16, seconds=3.0))
    assert len(numbers) == 16
    assert numbers == sorted(numbers) and set(numbers) == {0, 1, 2, 3, 4}


def test_size_scales_the_shorter_side_down_keeping_the_aspect(clip: Path) -> None:
    assert video_frames(clip, frames=2, size=40).shape == (2, 40, 72, 3)
    assert video_frames(clip, frames=2, size=256).shape == (2, 90, 160, 3)  # never enlarged
    assert video_frames(clip, frames=2, size=None).shape == (2, 90, 160, 3)


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    rotated = make_clip(tmp_path / "rot.mp4", before=("-display_rotation", "90"))
    frames = video_frames(rotated, frames=4, seconds=10.0, size=None)
    assert frames.shape == (4, 160, 90, 3)  # portrait, as a player shows it
    assert frame_numbers(frames) == [12, 37, 62, 87]


def test_real_microlens_hevc_samples(microlens: Path) -> None:
    for name in SAMPLES:
        path = microlens / f"{name}.mp4"
        assert video_duration(path) > 3.0
        frames = video_frames(path)  # 16 frames of the first 3 s, shorter side 256
        assert frames.shape == (16, 256, 456, 3) and frames.dtype == np.uint8
        assert frames.std() > 10  # real pictures, not blank
        assert not np.array_equal(frames[0], frames[-1])
    path = microlens / "1002.mp4"  # 60 fps, every frame 1/60 s
    assert video_duration(path) == pytest.approx(16.37, abs=0.01)
    # reference: every frame of the first 3 s, decoded independently at the same size
    raw = run_ffmpeg(path, ["-t", "3", "-vf", "scale=114:64:flags=bicubic", "-fps_mode",
                            "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24"], "frames")
    every = np.frombuffer(raw, np.uint8).reshape(-1, 64, 114, 3)
    assert len(every) == 180
    for count, seconds in [(16, 3.0), (5, 1.0), (7, 3.0)]:  # (5, 1.0): middles on frame starts
        frames = video_frames(path, frames=count, seconds=seconds, size=64)
        np.testing.assert_array_equal(frames, every[middles(count, seconds, fps=60)])


def test_bad_files_raise_one_line_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.mp4: no such file"):
        video_frames(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"junk\.mp4: cannot decode its video frames") as err:
        video_frames(junk)
    assert "\n" not in str(err.value)
    sound = tmp_path / "tone.wav"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=d=0.5", str(sound)], check=True)
    with pytest.raises(DataError, match=r"tone\.wav: has no video stream"):
        video_frames(sound)
    with pytest.raises(ValueError, match="frames"):
        video_frames(junk, frames=0)
