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

from recadapt.data.synth.files import encode_mp4, generate, iter_items, read_meta
from recadapt.data.synth.render import render_audio, render_cover, render_title, render_video
from recadapt.data.synth.world import (
    ATTRIBUTES,
    GENERATOR,
    PREFIX,
    RENDERED_BY,
    SynthConfig,
)

__all__ = [
    "ATTRIBUTES",
    "GENERATOR",
    "PREFIX",
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
