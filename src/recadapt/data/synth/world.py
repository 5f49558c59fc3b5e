"""The synthetic world: latent item attributes, which modality shows which, users' preferences
and chains, and the interactions they produce (see :mod:`recadapt.data.synth`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recadapt.errors import ConfigError

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
