"""Damaged caches: every stored file carries its size and SHA-256; a truncated or altered file
is one line naming it and the command that rebuilds it, and a damaged shard of an unfinished
build is encoded again, alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from recadapt.cache import StateCache, build_cache
from recadapt.cli import app
from recadapt.errors import RecAdaptError

runner = CliRunner()


def build(encoder, texts, root, **kwargs):
    return build_cache(encoder, texts, None, root, dtype="fp32", shard_items=5, batch_size=2,
                       progress=False, **kwargs)


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_the_manifest_records_each_layer_files_size_and_checksum(fake_encoder, texts, tmp_path):
    import hashlib

    cache = build(fake_encoder(), texts, tmp_path)
    recorded = json.loads((cache.path / "manifest.json").read_text())["checksums"]
    assert sorted(recorded) == ["L000.npy", "L001.npy", "L002.npy"]
    for name, entry in recorded.items():
        data = (cache.path / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_truncated_layer_file_is_one_line_at_open(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    layer = cache.path / "L001.npy"
    layer.write_bytes(layer.read_bytes()[:-40])
    before = snapshot(cache.path)
    with pytest.raises(RecAdaptError, match=r"L001.npy has \d+ bytes, the manifest says \d+ "
                                            r"\(truncated.*recadapt cache build"):
        StateCache.open(cache.path)
    result = runner.invoke(app, ["cache", "info", str(cache.path)])
    assert result.exit_code == 1
    text = result.output.strip()
    assert len(text.splitlines()) == 1 and "Traceback" not in text and "L001.npy" in text
    assert snapshot(cache.path) == before  # nothing else touched


def test_flipped_bytes_are_refused_at_the_first_read(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    layer = cache.path / "L002.npy"
    data = bytearray(layer.read_bytes())
    data[-7] ^= 0xFF  # same size, one value changed
    layer.write_bytes(bytes(data))
    before = snapshot(cache.path)
    reopened = StateCache.open(cache.path)  # the size is right: the checksum waits for a read
    np.testing.assert_array_equal(reopened.layer(0), cache.layer(0))  # other layers still read
    with pytest.raises(RecAdaptError, match=r"L002.npy does not match its checksum.*"
                                            r"recadapt cache build"):
        reopened.layer(2)
    assert snapshot(cache.path) == before


def test_a_deleted_layer_file_is_one_line(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    (cache.path / "L000.npy").unlink()
    with pytest.raises(RecAdaptError, match=r"damaged: L000.npy is missing"):
        StateCache.open(cache.path)


def _interrupted(fake_encoder, texts, tmp_path):
    """A build stopped after two of five shards: the folder and its shard files."""
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(fake_encoder(fail_after=7), texts, tmp_path)
    folder = next(tmp_path.iterdir())
    return folder, folder / "shards"


def test_a_deleted_shard_is_encoded_again_alone(fake_encoder, texts, tmp_path):
    _, shards = _interrupted(fake_encoder, texts, tmp_path)
    (shards / "S00001-L002.npy").unlink()
    resumed = fake_encoder()
    cache = build(resumed, texts, tmp_path)
    assert resumed.encoded == 23 - 5  # shards 2-4 and shard 1 again; shard 0 kept
    want = build(fake_encoder(), texts, tmp_path / "fresh")
    for layer in (0, 1, 2):
        np.testing.assert_array_equal(cache.layer(layer), want.layer(layer))


def test_a_shard_with_flipped_bytes_is_encoded_again(fake_encoder, texts, tmp_path, capsys):
    _, shards = _interrupted(fake_encoder, texts, tmp_path)
    shard = shards / "S00000-L001.npy"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x10
    shard.write_bytes(bytes(data))
    resumed = fake_encoder()
    cache = build(resumed, texts, tmp_path)
    assert resumed.encoded == 23 - 5  # shard 0 again, shard 1 kept, shards 2-4 new
    assert "S00000-L001.npy does not match its checksum" in capsys.readouterr().err
    want = build(fake_encoder(), texts, tmp_path / "fresh")
    for layer in (0, 1, 2):
        np.testing.assert_array_equal(cache.layer(layer), want.layer(layer))


def test_a_shard_cut_short_before_its_checksum_is_encoded_again(fake_encoder, texts, tmp_path):
    _, shards = _interrupted(fake_encoder, texts, tmp_path)
    (shards / "S00001-L000.npy.sha256").unlink()  # as if the process died between the two
    resumed = fake_encoder()
    build(resumed, texts, tmp_path)
    assert resumed.encoded == 23 - 5
