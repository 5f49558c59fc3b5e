"""A synthetic multimodal recommendation dataset (``recadapt data synth``), clearly labelled so.

No real dataset with a title, a cover, an audio clip and a short video for every item can be had
offline, so this module generates one. Its purpose is to make modalities *matter*: every item
has latent categorical attributes, each modality renders a different, partly overlapping subset
of them, and users choose items by those attributes plus a sequential pattern. A model that
reads all four modalities can then beat any subset of them, and content can beat popularity.

Latent attributes (default cardinalities; all drawn uniformly and independently per item)::

    genre (6)  topic (8)  colour (6)  shape (5)  texture (4)
    pitch (5)  timbre (4) rhythm (4)  motion (5)

Which modality renders which (:data:`RENDERED_BY`); the overlap is colour and shape, shown by
both the cover and the video, every other attribute is seen by exactly one modality:

* **title** ← genre, topic. Words carry the meaning (a synonym per value, e.g. horror →
  "Nightmare", ocean → "Harbor") in varied templates with neutral filler ("Volume 3", names),
  so a sentence encoder (all-MiniLM-L6-v2) places them by meaning, not by string identity.
* **image** (cover PNG) ← colour (hue of a shape), shape (circle, square, triangle, star,
  cross, ring), texture (grey background: plain, stripes, dots, checker, grid). Position, size,
  rotation, hue, grey levels and pattern scale are jittered; the shape stays inside the central
  crop that EfficientNet-Lite's preprocessing keeps.
* **audio** (16 kHz mono WAV) ← pitch (fundamental, 8 semitones apart), timbre (which
  harmonics: sine, odd, all, inharmonic bell partials), rhythm (sustained drone, slow notes,
  fast notes, swing, stutter). All three change a log-mel spectrogram's time average
  (frequency of the lowest line, the ladder of lines above it, the fraction and spacing of
  onsets and silence), which is what a mean-pooled Whisper encoder keeps.
* **video** (H.264 MP4) ← colour and shape of a moving object on a plain background, and
  motion (still, horizontal, vertical, orbit, zoom, diagonal). Frame encoders that *average
  per-frame states over time* are nearly blind to where a globally pooled CNN sees an object,
  so motion is rendered the way a camera sees it: each frame integrates the object over its
  exposure (motion blur). Horizontal motion smears every frame sideways, vertical up-down,
  orbit smears along changing directions, zoom blurs radially and varies the size, still stays
  sharp; those differences survive a time average of per-frame states.

Users: each prefers ``preferences_per_user`` random (attribute, value) pairs drawn from all
attributes, so many users care about something only one modality shows (texture: image only;
motion: video only; genre/topic: title only; pitch/timbre/rhythm: audio only). Each user also
follows a *chain attribute*: the next item tends to carry the value that a fixed global
permutation assigns to the previous item's value (e.g. a red item is often followed by a green
one), a sequential pattern learnable from data. Items have a Zipf-like popularity. An item is
drawn with probability ∝ exp(preference_strength · #matched preferences + sequential_strength ·
[chain matched] + popularity_strength · log(1 / popularity rank)), never twice for a user.

Everything is deterministic under ``seed``: the interactions come from one generator, and every
item's renderings from their own generator seeded by ``(seed, item, modality)``, so the files'
bytes (videos encoded single-threaded) are equal for equal configs.

The files follow the MicroLens layout with prefix ``synth`` (see :func:`generate`);
``synth_meta.json`` says ``"synthetic": true`` so every report on this data can say so.
"""

from __future__ import annotations

import colorsys
import csv
import json
import math
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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recadapt.errors import ConfigError, DataError, RecAdaptError

PREFIX = "synth"
GENERATOR = "recadapt data synth"

# Every value an attribute can take, in the order the first ``cardinality`` are used (ordered so
# that smaller cardinalities still spread out: hues around the circle, pitches far apart).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "genre": ("comedy", "horror", "romance", "action", "mystery", "documentary"),
    "topic": ("ocean", "space", "city", "forest", "desert", "mountain", "kitchen", "school"),
    "colour": ("red", "yellow", "green", "cyan", "blue", "magenta", "orange", "purple"),
    "shape": ("circle", "square", "triangle", "star", "cross", "ring"),
    "texture": ("plain", "stripes", "dots", "checker", "grid"),
    "pitch": ("110Hz", "175Hz", "277Hz", "440Hz", "698Hz", "1109Hz"),
    "timbre": ("sine", "odd", "saw", "bell"),
    "rhythm": ("drone", "slow", "fast", "swing", "stutter"),
    "motion": ("still", "horizontal", "vertical", "orbit", "zoom", "diagonal"),
}
DEFAULT_CARDINALITIES: dict[str, int] = {
    "genre": 6, "topic": 8, "colour": 6, "shape": 5, "texture": 4,
    "pitch": 5, "timbre": 4, "rhythm": 4, "motion": 5,
}
ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTE_VALUES)
RENDERED_BY: dict[str, tuple[str, ...]] = {
    "title": ("genre", "topic"),
    "image": ("colour", "shape", "texture"),
    "audio": ("pitch", "timbre", "rhythm"),
    "video": ("colour", "shape", "motion"),
}
_MODALITY_SEED = {"title": 1, "image": 2, "audio": 3, "video": 4}

GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "comedy": ("Comedy", "Laughs", "Jokes", "Farce", "Sitcom"),
    "horror": ("Horror", "Terror", "Nightmare", "Haunting", "Ghosts"),
    "romance": ("Romance", "Love", "Sweethearts", "Kiss", "Wedding"),
    "action": ("Action", "Battle", "Chase", "Explosions", "Combat"),
    "mystery": ("Mystery", "Detective", "Clues", "Secrets", "Whodunit"),
    "documentary": ("Documentary", "Chronicle", "True Story", "Report", "Facts"),
}
TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "ocean": ("Ocean", "Sea", "Waves", "Harbor", "Reef"),
    "space": ("Space", "Galaxy", "Stars", "Rocket", "Planet"),
    "city": ("City", "Streets", "Downtown", "Subway", "Skyscrapers"),
    "forest": ("Forest", "Woods", "Trees", "Jungle", "Wilderness"),
    "desert": ("Desert", "Sand", "Dunes", "Oasis", "Cactus"),
    "mountain": ("Mountain", "Peak", "Summit", "Glacier", "Alps"),
    "kitchen": ("Kitchen", "Recipe", "Chef", "Bakery", "Dinner"),
    "school": ("School", "Campus", "Classroom", "Teacher", "Homework"),
}
# Neutral words that stand in for a dropped attribute word, and the filler around them.
NEUTRAL_WORDS = ("Things", "Moments", "Business", "Matters", "Stuff", "Affairs")
FILLERS = ("Part II", "Volume 3", "Episode 12", "Collection", "Redux", "Edition", "Returns",
           "Files", "Notes", "Project", "1987", "Season 2", "Extended", "Remastered")
NAMES = ("Anna", "Marco", "Kenji", "Lola", "Priya", "Tomas", "Zoe", "Omar", "Ines", "Felix")
TITLE_TEMPLATES = ("{g} of the {t}", "The {t} {g}", "{t} {g}: {f}", "{n}'s {t} {g}",
                   "{g} in the {t} {f}", "{f}: {t} {g}", "{t} and {g}", "{n} and the {t} {g}")

HUES = {"red": 0.0, "yellow": 55.0, "green": 120.0, "cyan": 180.0, "blue": 228.0,
        "magenta": 300.0, "orange": 28.0, "purple": 270.0}
PITCH_HZ = {name: float(name.removesuffix("Hz")) for name in ATTRIBUTE_VALUES["pitch"]}


class SynthConfig(BaseModel):
    """Sizes, strengths and rendering settings of a synthetic dataset (defaults: generating
    takes about a minute and caching all four modalities minutes on 2 cores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: int = Field(1200, ge=2, description="Number of items.")
    users: int = Field(2500, ge=1, description="Number of users.")
    mean_seq_len: float = Field(12.0, description="Mean interactions per user.")
    min_seq_len: int = Field(5, ge=1, description="Fewest interactions per user.")
    max_seq_len: int = Field(30, ge=1, description="Most interactions per user.")
    seed: int = Field(0, ge=0, description="Seed of everything generated.")
    image_size: int = Field(128, ge=32, le=1024, description="Cover side in pixels.")
    audio_seconds: float = Field(3.0, gt=0, le=60, description="Audio clip length.")
    sample_rate: int = Field(16000, ge=8000, le=48000, description="Audio sample rate (Hz).")
    video_seconds: float = Field(3.0, gt=0, le=60, description="Video clip length.")
    video_fps: int = Field(8, ge=1, le=60, description="Video frames per second.")
    video_size: int = Field(128, ge=32, le=1024, description="Video side in pixels (even).")
    cardinalities: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CARDINALITIES),
                                          description="Values per latent attribute.")
    preferences_per_user: int = Field(3, ge=0, description="Preferred (attribute, value)s.")
    preference_strength: float = Field(2.5, ge=0, description="Logit per matched preference.")
    sequential_strength: float = Field(2.5, ge=0,
                                       description="Logit for following the chain attribute.")
    popularity_strength: float = Field(0.8, ge=0,
                                       description="Zipf exponent of item popularity.")
    noise: float = Field(0.5, ge=0, le=1, description="Rendering jitter, 0 (none) to 1.")
    title_dropout: float = Field(0.1, ge=0, le=1,
                                 description="Chance a title word is replaced by a neutral one.")

    @model_validator(mode="after")
    def _consistent(self) -> SynthConfig:
        if not self.min_seq_len <= self.mean_seq_len <= self.max_seq_len:
            raise ValueError("need min_seq_len <= mean_seq_len <= max_seq_len")
        if self.max_seq_len > self.items:
            raise ValueError("max_seq_len exceeds items (a user never sees an item twice)")
        if self.video_size % 2:
            raise ValueError("video_size must be even (H.264 with yuv420p)")
        unknown = sorted(set(self.cardinalities) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(f"cardinalities: unknown attributes {unknown}; known {ATTRIBUTES}")
        for name, count in self.cardinalities.items():
            most = len(ATTRIBUTE_VALUES[name])
            if not 2 <= count <= most:
                raise ValueError(f"cardinalities.{name} must be 2..{most}, got {count}")
        if self.preferences_per_user > len(ATTRIBUTES):
            raise ValueError(f"preferences_per_user must be at most {len(ATTRIBUTES)}")
        return self

    @classmethod
    def build(cls, **values: Any) -> SynthConfig:
        """Validate ``values``; a bad one raises a one-line :class:`ConfigError`."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "synth config"
            raise ConfigError(f"{where}: {first['msg']}") from None

    def values(self, attribute: str) -> tuple[str, ...]:
        """The values ``attribute`` takes under this config."""
        count = self.cardinalities.get(attribute, DEFAULT_CARDINALITIES[attribute])
        return ATTRIBUTE_VALUES[attribute][:count]


# --------------------------------------------------------------------------------------------
# latent attributes and users


def _attributes(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """``[items, attributes]`` value indices, uniform and independent."""
    return np.stack([rng.integers(0, len(config.values(a)), config.items) for a in ATTRIBUTES],
                    axis=1)


def _transitions(config: SynthConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Per attribute, a permutation without fixed points: the value that tends to follow."""
    out = []
    for name in ATTRIBUTES:
        count = len(config.values(name))
        shift = rng.integers(1, count)  # a random non-zero rotation of a random order
        order = rng.permutation(count)
        follow = np.empty(count, dtype=np.int64)
        follow[order] = order[(np.arange(count) + shift) % count]
        out.append(follow)
    return out


def _sequence_lengths(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Shifted-geometric lengths with the configured mean, clipped to [min, max]."""
    low, high = config.min_seq_len, config.max_seq_len
    extra = config.mean_seq_len - low
    if extra <= 0:
        return np.full(config.users, low, dtype=np.int64)
    lengths = low + rng.geometric(1.0 / (extra + 1.0), config.users) - 1
    return np.clip(lengths, low, high).astype(np.int64)


def _interactions(config: SynthConfig, attrs: np.ndarray, follow: list[np.ndarray],
                  rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """``[n, 3]`` int64 rows (user, item, timestamp), 1-based ids, and the user model's
    ground truth (popularity ranks, per-user preferences and chain attribute)."""
    n_items, n_attrs = attrs.shape
    ranks = rng.permutation(n_items) + 1
    base_popularity = -config.popularity_strength * np.log(ranks)
    lengths = _sequence_lengths(config, rng)
    rows: list[np.ndarray] = []
    users: list[dict[str, Any]] = []
    for user in range(config.users):
        chosen = rng.choice(n_attrs, size=config.preferences_per_user, replace=False)
        prefs = [(int(a), int(rng.integers(0, len(config.values(ATTRIBUTES[a])))))
                 for a in chosen]
        chain = int(rng.integers(0, n_attrs))
        logits = base_popularity.copy()
        for a, v in prefs:
            logits += config.preference_strength * (attrs[:, a] == v)
        seen = np.zeros(n_items, dtype=bool)
        items = np.empty(lengths[user], dtype=np.int64)
        previous = -1
        for step in range(lengths[user]):
            score = logits + rng.gumbel(size=n_items)
            if previous >= 0:
                wanted = follow[chain][attrs[previous, chain]]
                score += config.sequential_strength * (attrs[:, chain] == wanted)
            score[seen] = -np.inf
            previous = int(np.argmax(score))
            seen[previous] = True
            items[step] = previous
        start = int(rng.integers(1_600_000_000, 1_700_000_000))
        times = start + np.cumsum(rng.integers(600, 3 * 86_400, lengths[user]))
        rows.append(np.stack([np.full(len(items), user + 1), items + 1, times], axis=1))
        users.append({"preferences": {ATTRIBUTES[a]: config.values(ATTRIBUTES[a])[v]
                                      for a, v in prefs},
                      "chain": ATTRIBUTES[chain]})
    truth = {"popularity_rank": ranks.tolist(), "users": users}
    return np.concatenate(rows).astype(np.int64), truth


# --------------------------------------------------------------------------------------------
# rendering: pure functions of (attribute values, config, rng)


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


# --------------------------------------------------------------------------------------------
# writing


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
    from tqdm.auto import tqdm

    covers, audio, videos = (folder / f"{PREFIX}_{k}" for k in ("covers", "audio", "videos"))
    for path in (covers, audio, videos):
        path.mkdir()
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for index in tqdm(range(config.items), desc="synth items", unit="item",
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


__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_VALUES",
    "DEFAULT_CARDINALITIES",
    "RENDERED_BY",
    "SynthConfig",
    "encode_mp4",
    "generate",
    "iter_items",
    "read_meta",
    "render_audio",
    "render_cover",
    "render_title",
    "render_video",
]
