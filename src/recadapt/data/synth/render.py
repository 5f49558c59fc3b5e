"""Each modality rendered from an item's attribute values: pure functions of (values, config,
rng) — title text, cover picture, video frames, audio samples."""

from __future__ import annotations

import colorsys
import math

import numpy as np

from recadapt.data.synth.world import (
    _MODALITY_SEED,
    FILLERS,
    GENRE_WORDS,
    HUES,
    NAMES,
    NEUTRAL_WORDS,
    PITCH_HZ,
    TITLE_TEMPLATES,
    TOPIC_WORDS,
    SynthConfig,
)


def _rng(config: SynthConfig, item: int, modality: str) -> np.random.Generator:
    return np.random.default_rng([config.seed, item, _MODALITY_SEED[modality]])


def render_title(values: dict[str, str], config: SynthConfig, rng: np.random.Generator) -> str:
    """A title whose words name the item's genre and topic (each dropped with
    ``title_dropout``), in a random template with neutral filler."""

    def word(table: dict[str, tuple[str, ...]], value: str) -> str:
        if rng.random() < config.title_dropout:
            return str(rng.choice(NEUTRAL_WORDS))
        return str(rng.choice(table[value]))

    template = str(rng.choice(TITLE_TEMPLATES))
    return template.format(g=word(GENRE_WORDS, values["genre"]),
                           t=word(TOPIC_WORDS, values["topic"]),
                           f=str(rng.choice(FILLERS)), n=str(rng.choice(NAMES)))


def _polygons(shape: str) -> list[tuple[np.ndarray, int]]:
    """Unit-radius outline(s) of a shape as (``[k, 2]`` points, fill) pairs drawn in order."""

    def regular(k: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
        angles = phase + 2 * np.pi * np.arange(k) / k
        return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    if shape == "circle":
        return [(regular(48), 255)]
    if shape == "square":
        return [(regular(4, 1.0, np.pi / 4), 255)]
    if shape == "triangle":
        return [(regular(3, 1.0, -np.pi / 2), 255)]
    if shape == "star":
        points = regular(10, 1.0, -np.pi / 2)
        points[1::2] *= 0.42
        return [(points, 255)]
    if shape == "cross":
        w = 0.34
        arm = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
               (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
        return [(np.array(arm, dtype=float), 255)]
    if shape == "ring":
        return [(regular(48), 255), (regular(48, 0.55), 0)]
    raise ValueError(f"unknown shape {shape!r}")


def _shape_mask(shape: str, size: int, centre: tuple[float, float], radius: float,
                angle: float, scale: int = 2) -> np.ndarray:
    """Float mask ``[size, size]`` in 0..1, anti-aliased by drawing at ``scale`` x size."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    for points, fill in _polygons(shape):
        xy = (points @ rotation.T) * radius + np.asarray(centre)
        draw.polygon([(float(x) * scale, float(y) * scale) for x, y in xy], fill=fill)
    small = canvas.resize((size, size), Image.BILINEAR) if scale > 1 else canvas
    return np.asarray(small, dtype=np.float32) / 255.0


def _colour(name: str, noise: float, rng: np.random.Generator) -> np.ndarray:
    hue = (HUES[name] + noise * rng.uniform(-8, 8)) % 360 / 360
    saturation = rng.uniform(0.8, 1.0) if noise else 0.9
    value = rng.uniform(0.8, 1.0) if noise else 0.9
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)


def _texture(name: str, size: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Grey background ``[size, size]`` in 0..1 with the texture's pattern."""
    low = 0.3 + noise * rng.uniform(-0.08, 0.08)
    contrast = 0.28 + noise * rng.uniform(-0.06, 0.06)
    period = size * (0.1 + noise * rng.uniform(-0.02, 0.02))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + rng.uniform(0, period, 2)[:, None, None]
    if name == "plain":
        pattern = np.full((size, size), 0.5, dtype=np.float32)
    elif name == "stripes":
        pattern = ((x + y) / period % 1.0 < 0.5).astype(np.float32)
    elif name == "dots":
        dx, dy = (x / period % 1.0) - 0.5, (y / period % 1.0) - 0.5
        pattern = (dx * dx + dy * dy < 0.25 ** 2).astype(np.float32)
    elif name == "checker":
        pattern = (((x // period) + (y // period)) % 2).astype(np.float32)
    elif name == "grid":
        pattern = ((x / period % 1.0 < 0.16) | (y / period % 1.0 < 0.16)).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {name!r}")
    return low + contrast * pattern


def _grain(shape: tuple[int, ...], noise: float, rng: np.random.Generator) -> np.ndarray:
    """Pixel noise (on the 0..255 scale) to add before quantising."""
    if not noise:
        return np.zeros(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(noise * 6)


def _finish(picture: np.ndarray, grain: np.ndarray) -> np.ndarray:
    """Quantise ``[..., 3]`` floats in 0..1 plus ``grain`` to uint8."""
    return np.clip(picture * np.float32(255) + np.float32(0.5) + grain, 0, 255).astype(np.uint8)


def render_cover(values: dict[str, str], config: SynthConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """``[size, size, 3]`` uint8: a coloured shape on a textured grey background."""
    size, noise = config.image_size, config.noise
    background = _texture(values["texture"], size, noise, rng)
    colour = _colour(values["colour"], noise, rng)
    centre = size / 2 + noise * rng.uniform(-0.08, 0.08, 2) * size
    radius = size * (0.27 + noise * rng.uniform(-0.04, 0.04))
    mask = _shape_mask(values["shape"], size, (float(centre[0]), float(centre[1])), radius,
                       float(rng.uniform(-0.3, 0.3) * noise))
    picture = background[..., None] * (1 - mask[..., None]) + colour * mask[..., None]
    return _finish(picture, _grain(picture.shape, noise, rng))


def _tri(phase: np.ndarray | float) -> np.ndarray:
    """Triangle wave in -1..1 with period 1 (constant speed, so blur streaks stay long)."""
    return 4 * np.abs((np.asarray(phase) + 0.25) % 1.0 - 0.5) - 1


def render_video(values: dict[str, str], config: SynthConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """``[frames, size, size, 3]`` uint8: the item's coloured shape moving on a plain dark
    background, each frame the average of 6 sub-frame renders over its exposure (motion blur,
    so the motion shows in every single frame, not only across frames)."""
    size, noise, fps = config.video_size, config.noise, config.video_fps
    frames = max(1, round(config.video_seconds * fps))
    shade = 0.2 + noise * rng.uniform(-0.05, 0.05)
    colour = _colour(values["colour"], noise, rng)
    radius = size * (0.17 + noise * rng.uniform(-0.02, 0.02))
    base_angle = float(rng.uniform(-0.3, 0.3) * noise)
    rate = 1.5 * (1 + noise * rng.uniform(-0.15, 0.15))  # motion cycles per second
    phase = float(rng.uniform(0, 1))
    amplitude = size * 0.27
    centre = np.full(2, size / 2) + noise * rng.uniform(-0.04, 0.04, 2) * size
    motion = values["motion"]
    subframes = 6
    grain = _grain((size, size, 3), noise, rng)  # one static sensor pattern: cheap, still noise
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    for index in range(frames):
        mask = np.zeros((size, size), dtype=np.float32)
        for sub in range(subframes):
            t = (index + sub / subframes) / fps
            cycle = rate * t + phase
            where, scale, angle = centre.copy(), 1.0, base_angle
            if motion == "horizontal":
                where[0] += amplitude * _tri(cycle)
            elif motion == "vertical":
                where[1] += amplitude * _tri(cycle)
            elif motion == "diagonal":
                where += amplitude * 0.75 * _tri(cycle)
            elif motion == "orbit":
                turn = 2 * np.pi * cycle * 0.8
                where += amplitude * 0.8 * np.array([np.cos(turn), np.sin(turn)])
                angle += turn
            elif motion == "zoom":
                scale = 1.0 + 0.55 * float(_tri(cycle))
            elif motion != "still":
                raise ValueError(f"unknown motion {motion!r}")
            mask += _shape_mask(values["shape"], size, (float(where[0]), float(where[1])),
                                radius * scale, angle, scale=1)
        mask = (mask / subframes)[..., None]
        video[index] = _finish(shade * (1 - mask) + colour * mask, grain)
    return video


def _rhythm_notes(name: str, seconds: float, rng: np.random.Generator,
                  noise: float) -> list[tuple[float, float]]:
    """(onset, duration) of every note of a rhythm within ``seconds``."""
    if name == "drone":
        return [(0.0, seconds)]
    patterns = {  # one period: [(offset, duration)], period length
        "slow": ([(0.0, 0.3)], 0.5),
        "fast": ([(0.0, 0.07)], 1 / 6),
        "swing": ([(0.0, 0.32), (0.45, 0.1)], 0.75),
        "stutter": ([(0.0, 0.05), (0.1, 0.05), (0.2, 0.05)], 0.8),
    }
    if name not in patterns:
        raise ValueError(f"unknown rhythm {name!r}")
    notes, period = patterns[name]
    start = -noise * rng.uniform(0, period)
    out = []
    while start < seconds:
        out += [(start + offset, duration) for offset, duration in notes
                if start + offset + duration > 0 and start + offset < seconds]
        start += period
    return out


def _partials(timbre: str) -> list[tuple[float, float, float]]:
    """(frequency ratio, amplitude, decay per second) of each partial."""
    if timbre == "sine":
        return [(1.0, 1.0, 0.0)]
    if timbre == "odd":
        return [(n, 1.0 / n, 0.0) for n in (1, 3, 5, 7, 9, 11)]
    if timbre == "saw":
        return [(n, 1.0 / n, 0.0) for n in range(1, 13)]
    if timbre == "bell":
        return [(1.0, 1.0, 2.0), (2.76, 0.7, 4.0), (5.40, 0.5, 6.0), (8.93, 0.35, 8.0)]
    raise ValueError(f"unknown timbre {timbre!r}")


def render_audio(values: dict[str, str], config: SynthConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """int16 mono samples: notes at the item's pitch with its timbre in its rhythm."""
    rate, noise = config.sample_rate, config.noise
    n = round(config.audio_seconds * rate)
    f0 = PITCH_HZ[values["pitch"]] * 2 ** (noise * rng.uniform(-0.5, 0.5) / 12)
    signal = np.zeros(n, dtype=np.float64)
    attack, release = int(0.005 * rate), int(0.01 * rate)
    partials = [(f0 * r, a, d) for r, a, d in _partials(values["timbre"]) if f0 * r < 0.45 * rate]
    for onset, duration in _rhythm_notes(values["rhythm"], config.audio_seconds, rng, noise):
        first = max(0, round(onset * rate))
        last = min(n, round((onset + duration) * rate))
        if last <= first:
            continue
        t = (np.arange(first, last) - onset * rate) / rate
        note = np.zeros(last - first)
        for frequency, amplitude, decay in partials:
            note += amplitude * np.exp(-decay * t) * np.sin(2 * np.pi * frequency * t
                                                             + rng.uniform(0, 2 * np.pi))
        envelope = np.ones(last - first)
        ramp_in, ramp_out = min(attack, len(note)), min(release, len(note))
        envelope[:ramp_in] *= np.linspace(0, 1, ramp_in, endpoint=False)
        envelope[len(note) - ramp_out:] *= np.linspace(1, 0, ramp_out)
        signal[first:last] += note * envelope
    peak = float(np.abs(signal).max()) or 1.0
    signal *= rng.uniform(0.35, 0.7) / peak if noise else 0.5 / peak
    if noise:
        signal += rng.normal(0, 0.004 * noise, n)
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
