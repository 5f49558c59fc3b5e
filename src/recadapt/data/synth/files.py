"""Writing the dataset: media files, the MicroLens-layout CSVs and ``synth_meta.json``, built in
a work folder and moved into place whole (:func:`generate`)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from recadapt.data.synth.render import (
    _rng,
    render_audio,
    render_cover,
    render_title,
    render_video,
)
from recadapt.data.synth.world import (
    ATTRIBUTES,
    GENERATOR,
    PREFIX,
    RENDERED_BY,
    SynthConfig,
    _attributes,
    _interactions,
    _transitions,
)
from recadapt.errors import DataError, RecAdaptError


def _write_png(path: Path, picture: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(picture).save(path, format="PNG")


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


def encode_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode ``[T, H, W, 3]`` uint8 RGB frames as H.264/yuv420p MP4 by piping raw frames into
    the packaged ffmpeg; single-threaded and bitexact so equal frames give equal bytes."""
    from recadapt.media.ffmpeg import ffmpeg_exe

    count, height, width, _ = frames.shape
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps),
               "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
               "-pix_fmt", "yuv420p", "-threads", "1", "-g", str(count),
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
               "-movflags", "+faststart", "-f", "mp4", str(path)]
    done = subprocess.run(command, input=np.ascontiguousarray(frames).tobytes(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise DataError(f"{path}: ffmpeg could not encode the video: {reason}")


def _write_csv(path: Path, header: list[str], rows: Any) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _item_values(config: SynthConfig, attrs: np.ndarray, item: int) -> dict[str, str]:
    return {a: config.values(a)[int(attrs[item, k])] for k, a in enumerate(ATTRIBUTES)}


def _render_media(folder: Path, config: SynthConfig, attrs: np.ndarray,
                  progress: bool) -> None:
    """Covers, audio and videos of every item; ffmpeg encodes run on two threads while the next
    items render (at most a few frame stacks in memory)."""
    from recadapt.progress import progress_bar

    covers, audio, videos = (folder / f"{PREFIX}_{k}" for k in ("covers", "audio", "videos"))
    for path in (covers, audio, videos):
        path.mkdir()
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for index in progress_bar(range(config.items), desc="synth items", unit="item",
                          disable=not progress, dynamic_ncols=True):
            item = index + 1
            values = _item_values(config, attrs, index)
            _write_png(covers / f"{item}.png",
                       render_cover(values, config, _rng(config, item, "image")))
            _write_wav(audio / f"{item}.wav",
                       render_audio(values, config, _rng(config, item, "audio")),
                       config.sample_rate)
            frames = render_video(values, config, _rng(config, item, "video"))
            pending.append(pool.submit(encode_mp4, videos / f"{item}.mp4", frames,
                                       config.video_fps))
            while len(pending) > 4:
                pending.pop(0).result()
        for future in pending:
            future.result()


def _meta(config: SynthConfig, follow: list[np.ndarray], counts: dict[str, int]) -> dict[str, Any]:
    return {
        "synthetic": True,
        "name": PREFIX,
        "generator": GENERATOR,
        "seed": config.seed,
        "config": config.model_dump(),
        "attributes": {a: list(config.values(a)) for a in ATTRIBUTES},
        "rendered_by": {m: list(a) for m, a in RENDERED_BY.items()},
        "transitions": {a: {config.values(a)[v]: config.values(a)[int(follow[k][v])]
                            for v in range(len(follow[k]))}
                        for k, a in enumerate(ATTRIBUTES)},
        "counts": counts,
        "files": {"interactions": f"{PREFIX}_pairs.csv", "title": f"{PREFIX}_title_en.csv",
                  "image": f"{PREFIX}_covers/{{item}}.png", "audio": f"{PREFIX}_audio/{{item}}.wav",
                  "video": f"{PREFIX}_videos/{{item}}.mp4",
                  "attributes": f"{PREFIX}_items.csv", "users": f"{PREFIX}_users.json"},
        "description": (
            "SYNTHETIC data generated by recadapt, not real users or items. Items carry latent "
            "categorical attributes; titles render genre and topic, covers colour, shape and "
            "texture, audio pitch, timbre and rhythm, videos colour, shape and motion. Users "
            "prefer a few (attribute, value) pairs, follow a transition on one attribute from "
            "item to item, and favour popular items. See docs/synthetic_data.md."
        ),
    }


def generate(out_dir: str | Path, config: SynthConfig | None = None, *, progress: bool = True,
             overwrite: bool = False) -> Path:
    """Write a synthetic dataset in the MicroLens layout (prefix ``synth``) to ``out_dir``.

    Files: ``synth_pairs.csv`` (``user,item,timestamp``, 1-based ids, timestamps increasing per
    user), ``synth_title_en.csv`` (``item,title``), ``synth_covers/{item}.png``,
    ``synth_audio/{item}.wav``, ``synth_videos/{item}.mp4``, ``synth_meta.json`` (says
    ``"synthetic": true``), and the ground truth for analysis, which readers ignore:
    ``synth_items.csv`` (latent attributes per item) and ``synth_users.json`` (each user's
    preferences and chain attribute, item popularity ranks).

    The folder appears complete or not at all: everything is built in a temporary folder next
    to ``out_dir`` and moved into place at the end. A non-empty ``out_dir`` is refused unless
    ``overwrite``.
    """
    config = config or SynthConfig()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RecAdaptError(f"{out} is a file; give a folder to write the synthetic dataset to")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise RecAdaptError(f"{out} is not empty; choose another folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _build(work, config, progress)
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _build(folder: Path, config: SynthConfig, progress: bool) -> None:
    rng = np.random.default_rng(config.seed)
    attrs = _attributes(config, rng)
    follow = _transitions(config, rng)
    pairs, truth = _interactions(config, attrs, follow, rng)
    _write_csv(folder / f"{PREFIX}_pairs.csv", ["user", "item", "timestamp"], pairs.tolist())
    titles = [(item + 1, render_title(_item_values(config, attrs, item), config,
                                      _rng(config, item + 1, "title")))
              for item in range(config.items)]
    _write_csv(folder / f"{PREFIX}_title_en.csv", ["item", "title"], titles)
    _write_csv(folder / f"{PREFIX}_items.csv", ["item", *ATTRIBUTES],
               ([item + 1, *_item_values(config, attrs, item).values()]
                for item in range(config.items)))
    (folder / f"{PREFIX}_users.json").write_text(
        json.dumps({"synthetic": True, **truth}) + "\n", encoding="utf-8")
    _render_media(folder, config, attrs, progress)
    counts = {"items": config.items, "users": config.users, "interactions": len(pairs)}
    (folder / f"{PREFIX}_meta.json").write_text(
        json.dumps(_meta(config, follow, counts), indent=2) + "\n", encoding="utf-8")


def _move_into_place(work: Path, out: Path) -> None:
    """``os.replace`` the finished folder onto ``out``; an existing ``out`` is moved aside
    first and deleted only after the new one is in place."""
    aside = None
    if out.exists():
        aside = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, aside)
    try:
        os.replace(work, out)
    except BaseException:
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``synth_meta.json`` of a generated folder."""
    path = Path(folder) / f"{PREFIX}_meta.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; is {folder} a folder written by {GENERATOR}?")
    return json.loads(path.read_text(encoding="utf-8"))


def iter_items(folder: str | Path) -> Iterator[dict[str, str]]:
    """Rows of ``synth_items.csv`` (``item`` plus each latent attribute), for analysis."""
    with (Path(folder) / f"{PREFIX}_items.csv").open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)
