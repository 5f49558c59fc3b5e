"""The synthetic multimodal dataset: deterministic under a seed, complete MicroLens layout,
decodable media, labelled synthetic, written atomically, and reachable from the CLI."""

from __future__ import annotations

import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from recadapt.cli import app
from recadapt.data import synth
from recadapt.data.synth import ATTRIBUTES, RENDERED_BY, SynthConfig, generate
from recadapt.data.synth import files as synth_files
from recadapt.data.synth import world as synth_world
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.media.ffmpeg import run_ffmpeg

TINY = {"items": 20, "users": 30, "min_seq_len": 3, "mean_seq_len": 5.0, "max_seq_len": 8,
        "image_size": 48, "video_size": 32, "audio_seconds": 1.0, "video_seconds": 1.0,
        "video_fps": 4, "sample_rate": 16000}
TEXT_FILES = ("synth_pairs.csv", "synth_title_en.csv", "synth_meta.json", "synth_items.csv",
              "synth_users.json")


def tiny(**overrides) -> SynthConfig:
    return SynthConfig.build(**{**TINY, **overrides})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "a", tiny(seed=3), progress=False)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def video_frames(path: Path, size: int) -> np.ndarray:
    raw = run_ffmpeg(path, ["-f", "rawvideo", "-pix_fmt", "rgb24"], "video frames")
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, size, size, 3)


def media_arrays(folder: Path, item: int) -> tuple[np.ndarray, bytes, np.ndarray]:
    cover = np.asarray(Image.open(folder / "synth_covers" / f"{item}.png"))
    with wave.open(str(folder / "synth_audio" / f"{item}.wav"), "rb") as handle:
        samples = handle.readframes(handle.getnframes())
    return cover, samples, video_frames(folder / "synth_videos" / f"{item}.mp4", 32)


def test_layout_and_counts(folder):
    names = {p.name for p in folder.iterdir()}
    assert {*TEXT_FILES, "synth_covers", "synth_audio", "synth_videos"} == names
    for sub, ext in (("synth_covers", "png"), ("synth_audio", "wav"), ("synth_videos", "mp4")):
        assert sorted(p.name for p in (folder / sub).iterdir()) == sorted(
            f"{i}.{ext}" for i in range(1, 21))
    pairs = read_csv(folder / "synth_pairs.csv")
    assert list(pairs[0]) == ["user", "item", "timestamp"]
    titles = read_csv(folder / "synth_title_en.csv")
    assert list(titles[0]) == ["item", "title"]
    assert [int(r["item"]) for r in titles] == list(range(1, 21))
    assert all(r["title"].strip() for r in titles)
    items = read_csv(folder / "synth_items.csv")
    assert list(items[0]) == ["item", *ATTRIBUTES] and len(items) == 20


def test_sequences_are_valid(folder):
    pairs = np.loadtxt(folder / "synth_pairs.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert set(pairs[:, 0]) == set(range(1, 31))
    assert pairs[:, 1].min() >= 1 and pairs[:, 1].max() <= 20
    for user in range(1, 31):
        rows = pairs[pairs[:, 0] == user]
        assert 3 <= len(rows) <= 8
        assert np.all(np.diff(rows[:, 2]) > 0), "timestamps increase within a user"
        assert len(set(rows[:, 1])) == len(rows), "no item twice for a user"


def test_metadata_says_synthetic(folder):
    meta = json.loads((folder / "synth_meta.json").read_text())
    assert meta["synthetic"] is True and meta["name"] == "synth"
    assert meta["generator"] == "recadapt data synth" and meta["seed"] == 3
    assert "SYNTHETIC" in meta["description"]
    assert meta["config"]["items"] == 20
    assert meta["rendered_by"] == {m: list(a) for m, a in RENDERED_BY.items()}
    assert set(meta["attributes"]) == set(ATTRIBUTES)
    for row in read_csv(folder / "synth_items.csv"):
        assert all(row[a] in meta["attributes"][a] for a in ATTRIBUTES)
    assert meta["counts"]["interactions"] == len(read_csv(folder / "synth_pairs.csv"))
    assert synth.read_meta(folder) == meta


def test_media_decode(folder):
    with Image.open(folder / "synth_covers" / "1.png") as image:
        assert image.size == (48, 48) and image.mode == "RGB"
    with wave.open(str(folder / "synth_audio" / "1.wav"), "rb") as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (
            1, 2, 16000)
        assert handle.getnframes() == 16000
    frames = video_frames(folder / "synth_videos" / "1.mp4", 32)
    assert frames.shape == (4, 32, 32, 3)
    assert frames.std() > 1  # not blank


def test_same_seed_same_bytes_other_seed_differs(tmp_path, folder):
    again = generate(tmp_path / "b", tiny(seed=3), progress=False)
    other = generate(tmp_path / "c", tiny(seed=4), progress=False)
    for name in TEXT_FILES:
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name
    for name in ("synth_pairs.csv", "synth_title_en.csv", "synth_items.csv"):
        assert (folder / name).read_bytes() != (other / name).read_bytes(), name
    for item in (1, 7, 20):
        first, second, third = (media_arrays(f, item) for f in (folder, again, other))
        for a, b in zip(first, second, strict=True):
            assert np.array_equal(a, b)
        assert (folder / "synth_videos" / f"{item}.mp4").read_bytes() == (
            again / "synth_videos" / f"{item}.mp4").read_bytes()
        assert not np.array_equal(first[0], third[0])
        assert first[1] != third[1]


def test_refuses_non_empty_folder_and_overwrites_on_request(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RecAdaptError, match="not empty"):
        generate(out, tiny(items=4, users=3, max_seq_len=4, mean_seq_len=3.5), progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    generate(out, tiny(items=4, users=3, max_seq_len=4, mean_seq_len=3.5), progress=False,
             overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "synth_meta.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left aside


def test_failure_leaves_no_partial_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_files, "encode_mp4", broken)  # where generate looks it up
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "out", tiny(items=4, users=3, max_seq_len=4, mean_seq_len=3.5),
                 progress=False)
    assert list(tmp_path.iterdir()) == []


def test_renderings_show_their_attributes():
    config = tiny(noise=0.0)
    values = {"genre": "horror", "topic": "space", "colour": "blue", "shape": "square",
              "texture": "plain", "pitch": "440Hz", "timbre": "sine", "rhythm": "drone",
              "motion": "still"}
    rng = np.random.default_rng(0)
    samples = synth.render_audio(values, config, rng).astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / len(samples) == pytest.approx(440, abs=2)
    cover = synth.render_cover(values, config, rng).astype(int)
    centre = cover[24, 24]
    assert centre[2] > centre[0] + 100 and centre[2] > centre[1] + 50  # blue
    still = synth.render_video(values, config, rng)
    assert np.array_equal(still[0], still[-1])
    moving = synth.render_video({**values, "motion": "horizontal"}, config, rng)
    assert not np.array_equal(moving[0], moving[1])
    words = {w.lower().strip(":'s") for w in synth.render_title(values, config, rng).split()}
    topic_words = {w.lower() for w in synth_world.TOPIC_WORDS["space"]}
    assert words & topic_words or words & {w.lower() for w in synth_world.NEUTRAL_WORDS}


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="min_seq_len <= mean_seq_len"):
        SynthConfig.build(min_seq_len=10, mean_seq_len=5)
    with pytest.raises(ConfigError, match="cardinalities"):
        SynthConfig.build(cardinalities={"shape": 9})
    with pytest.raises(ConfigError, match="items"):
        SynthConfig.build(items=1)


def test_cli_writes_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    args = ["data", "synth", str(tmp_path / "s"), "--items", "6", "--users", "5",
            "--min-seq-len", "3", "--mean-seq-len", "3.5", "--max-seq-len", "5",
            "--seconds", "1", "--fps", "2", "--image-size", "32", "--seed", "1", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output
    assert json.loads((tmp_path / "s" / "synth_meta.json").read_text())["synthetic"] is True
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert again.output.strip().startswith("error: ") and len(again.output.splitlines()) == 1
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_cli_defaults_are_the_config_defaults():
    import inspect

    from recadapt.cli import data_synth

    defaults = SynthConfig()
    params = inspect.signature(data_synth.__wrapped__).parameters
    assert params["items"].default == defaults.items
    assert params["users"].default == defaults.users
    assert params["seed"].default == defaults.seed
    assert params["mean_seq_len"].default == defaults.mean_seq_len
    assert params["min_seq_len"].default == defaults.min_seq_len
    assert params["max_seq_len"].default == defaults.max_seq_len
    assert params["seconds"].default == defaults.audio_seconds == defaults.video_seconds
    assert params["fps"].default == defaults.video_fps
    assert params["image_size"].default == defaults.image_size == defaults.video_size
    assert params["noise"].default == defaults.noise


def test_the_microlens_reader_reads_it_as_synthetic(folder):
    from recadapt.data.readers import read_dataset

    dataset = read_dataset(folder)
    assert dataset.synthetic is True and dataset.name == "synth"
    assert dataset.num_users == 30
    assert {"title", "image", "audio", "video"} <= set(dataset.item_features.columns)
