"""The state cache: round trips, keys that refuse stale states, resumable and split builds."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recadapt.cache import (
    StateCache,
    build_cache,
    cache_key,
    content_fingerprint,
    describe,
    finalize_cache,
    format_description,
)
from recadapt.errors import RecAdaptError


def reference(encoder, texts, layers):
    return [t.numpy() for t in encoder.encode(texts, layers=layers)]


def build(encoder, texts, root, **kwargs):
    options = {"layers": None, "dtype": "fp32", "shard_items": 5, "batch_size": 2,
               "progress": False}
    options.update(kwargs)
    layers = options.pop("layers")
    return build_cache(encoder, texts, layers, root, **options)


def test_fp32_round_trip_is_exact(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    assert cache.num_items == len(texts)
    assert cache.layers == [0, 1, 2]
    assert cache.layer_dims == {0: 4, 1: 4, 2: 6}
    assert cache.dtype == "fp32"
    for got, want in zip(cache.load(), reference(fake_encoder(), texts, [0, 1, 2]), strict=True):
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), want)
    assert cache.nbytes >= len(texts) * (4 + 4 + 6) * 4
    assert not (cache.path / "shards").exists()  # merged into one file per layer
    assert cache.path.name.startswith("fake-hash-")


def test_fp16_round_trip_within_tolerance_and_layer_order(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path, layers=[2, 0], dtype="fp16")
    assert cache.layers == [0, 2]
    assert cache.layer(2).dtype == np.float16
    got = cache.load([2, 0])
    want = reference(fake_encoder(), texts, [2, 0])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-3, atol=1e-3)
    assert cache.load([0], dtype=torch.float16)[0].dtype == torch.float16


def test_memmap_and_rows_match_full_arrays(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    full = cache.load()
    for slot, layer in enumerate(cache.layers):
        mapped = cache.layer(layer)
        assert isinstance(mapped, np.memmap)
        assert mapped.shape == (len(texts), cache.layer_dims[layer])
        np.testing.assert_array_equal(np.asarray(mapped), full[slot].numpy())
        index = np.array([22, 0, 7, 7, 13])
        np.testing.assert_array_equal(cache.rows(layer, index), full[slot].numpy()[index])
    with pytest.raises(RecAdaptError, match=r"holds layers \[0, 1, 2\], not layer 5"):
        cache.layer(5)
    clone = pickle.loads(pickle.dumps(cache))  # DataLoader workers: no mapped arrays copied
    assert clone._maps == {}
    np.testing.assert_array_equal(clone.rows(1, [3]), cache.rows(1, [3]))


def test_complete_cache_reopened_without_encoding(fake_encoder, texts, tmp_path):
    first = build(fake_encoder(), texts, tmp_path)
    again = fake_encoder()
    second = build(again, texts, tmp_path)
    assert again.calls == 0
    assert second.path == first.path
    assert second.manifest["built_at"] == first.manifest["built_at"]


@pytest.mark.parametrize("change", ["revision", "layers", "contents", "dtype", "source"])
def test_key_mismatch_refused(fake_encoder, texts, tmp_path, change):
    cache = build(fake_encoder(), texts, tmp_path)
    info = fake_encoder().info
    parts = {"info": info, "layers": [0, 1, 2], "dtype": "fp32",
             "content_hash": content_fingerprint(texts), "num_items": len(texts)}
    assert StateCache.open(cache.path, cache_key(**parts)).num_items == len(texts)
    if change == "revision":
        parts["info"] = fake_encoder(revision="r2").info
        expected = "built from revision r1 of fake:hash, this run needs revision r2"
    elif change == "source":
        parts["info"] = fake_encoder(source="hf:other").info
        expected = "was built by fake:hash, this run needs hf:other"
    elif change == "layers":
        parts["layers"] = [2]
        expected = "holds layers [0, 1, 2], this run needs layers [2]"
    elif change == "contents":
        edited = [*texts[:-1], "edited"]
        parts["content_hash"] = content_fingerprint(edited)
        expected = "different item contents"
    else:
        parts["dtype"] = "fp16"
        expected = "stores fp32, this run needs fp16"
    with pytest.raises(RecAdaptError) as err:
        StateCache.open(cache.path, cache_key(**parts))
    message = str(err.value)
    assert expected in message and str(cache.path) in message and "\n" not in message
    assert "recadapt cache build" in message


def test_different_jobs_get_different_folders(fake_encoder, texts, tmp_path):
    a = build(fake_encoder(), texts, tmp_path)
    b = build(fake_encoder(revision="r2"), texts, tmp_path)
    c = build(fake_encoder(), texts, tmp_path, dtype="fp16")
    d = build(fake_encoder(revision="r3"), texts, tmp_path, name="Title Text")
    assert len({a.path, b.path, c.path, d.path}) == 4
    assert d.path.name.startswith("title-text-")
    # the same job under another name is the same states: the existing folder serves it
    assert build(fake_encoder(), texts, tmp_path, name="Other").path == a.path


def test_folder_holding_another_key_is_never_overwritten(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path)
    manifest = json.loads((cache.path / "manifest.json").read_text())
    manifest["key"]["encoder"]["revision"] = "someone-else"
    (cache.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecAdaptError, match=r"holds another cache.*refusing to overwrite"):
        build(fake_encoder(), texts, tmp_path)


def test_interrupted_build_resumes_only_missing_shards(fake_encoder, texts, tmp_path):
    # 23 items, shards of 5 → 5 shards; batches of 2 → 3 calls per full shard.
    crashing = fake_encoder(fail_after=7)  # shards 0 and 1 (6 calls) done, shard 2 dies
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(crashing, texts, tmp_path)
    folder = next(tmp_path.iterdir())
    shard_files = sorted(p.name for p in (folder / "shards").iterdir())
    assert shard_files == sorted(f"S{s:05d}-L{layer:03d}.npy{suffix}" for s in (0, 1)
                                 for layer in (0, 1, 2) for suffix in ("", ".sha256"))
    assert json.loads((folder / "manifest.json").read_text())["complete"] is False
    with pytest.raises(RecAdaptError, match=r"incomplete \(2 of 5 shards built\).*resume"):
        StateCache.open(folder)

    working = fake_encoder()
    cache = build(working, texts, tmp_path)
    assert cache.path == folder
    assert working.encoded == len(texts) - 10
    uninterrupted = build(fake_encoder(), texts, tmp_path / "other")
    for got, want in zip(cache.load(), uninterrupted.load(), strict=True):
        assert torch.equal(got, want)


def test_resume_keeps_the_folders_shard_size(fake_encoder, texts, tmp_path):
    with pytest.raises(RuntimeError):
        build(fake_encoder(fail_after=3), texts, tmp_path, shard_items=5)
    working = fake_encoder()
    cache = build(working, texts, tmp_path, shard_items=7)
    assert cache.manifest["shard_items"] == 5
    assert working.encoded == len(texts) - 5
    np.testing.assert_array_equal(cache.load()[2].numpy(),
                                  reference(fake_encoder(), texts, [2])[0])


def test_disjoint_shard_builders_then_one_finalizes(fake_encoder, texts, tmp_path):
    encoders = [fake_encoder(), fake_encoder()]
    paths = [build(enc, texts, tmp_path, shard_filter=lambda s, r=rank: s % 2 == r,
                   finalize=False) for rank, enc in enumerate(encoders)]
    assert paths[0] == paths[1] and isinstance(paths[0], Path)
    assert encoders[0].encoded + encoders[1].encoded == len(texts)
    cache = finalize_cache(paths[0])
    for got, want in zip(cache.load(), reference(fake_encoder(), texts, [0, 1, 2]),
                         strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


def test_finalize_refuses_missing_shards(fake_encoder, texts, tmp_path):
    path = build(fake_encoder(), texts, tmp_path, shard_filter=lambda s: s == 0, finalize=False)
    with pytest.raises(RecAdaptError, match="4 of 5 shards are not built yet"):
        finalize_cache(path)


def test_fp16_overflow_is_a_clear_error(fake_encoder, texts, tmp_path):
    with pytest.raises(RecAdaptError, match=r"beyond the fp16 range.*cache\.dtype: fp32"):
        build(fake_encoder(scale=1e6), texts, tmp_path, dtype="fp16")
    cache = build(fake_encoder(scale=1e6), texts, tmp_path, dtype="fp32")
    assert float(cache.layer(0).max()) > 65504


def test_open_refuses_non_caches(tmp_path):
    with pytest.raises(RecAdaptError, match="does not exist"):
        StateCache.open(tmp_path / "nowhere")
    with pytest.raises(RecAdaptError, match="not a recadapt cache"):
        StateCache.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RecAdaptError, match="damaged"):
        StateCache.open(tmp_path)


def test_build_refuses_a_foreign_folder(fake_encoder, texts, tmp_path):
    root = tmp_path / "root"
    first = build(fake_encoder(), texts, root)
    first_name = first.path.name
    shutil.rmtree(first.path)
    first.path.mkdir()
    (first.path / "notes.txt").write_text("mine")
    with pytest.raises(RecAdaptError, match=r"not a recadapt cache.*refusing"):
        build(fake_encoder(), texts, root)
    assert (root / first_name / "notes.txt").read_text() == "mine"


def test_bad_arguments(fake_encoder, texts, tmp_path):
    with pytest.raises(RecAdaptError, match="out of range"):
        build(fake_encoder(), texts, tmp_path, layers=[3])
    with pytest.raises(RecAdaptError, match="dtype must be one of"):
        build(fake_encoder(), texts, tmp_path, dtype="bf16")


def test_content_fingerprint(tmp_path):
    image = tmp_path / "a.jpg"
    other = tmp_path / "b.jpg"
    image.write_bytes(b"\xff\xd8 first")
    other.write_bytes(b"\xff\xd8 second")
    before = content_fingerprint([image, other])
    assert content_fingerprint([image, other]) == before
    assert content_fingerprint([other, image]) != before  # order is part of the key
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "a.jpg").write_bytes(image.read_bytes())
    (moved / "b.jpg").write_bytes(other.read_bytes())
    assert content_fingerprint([moved / "a.jpg", moved / "b.jpg"]) == before  # bytes, not names
    image.write_bytes(b"\xff\xd8 edited")
    assert content_fingerprint([image, other]) != before
    assert content_fingerprint(["ab", "c"]) != content_fingerprint(["a", "bc"])
    assert content_fingerprint([str(image)]) != content_fingerprint([image])  # text vs file
    with pytest.raises(RecAdaptError, match=r"item 1: file not found: .*missing\.png"):
        content_fingerprint([image, tmp_path / "missing.png"])


def test_describe(fake_encoder, texts, tmp_path):
    cache = build(fake_encoder(), texts, tmp_path, dtype="fp16")
    d = describe(cache)
    assert d["items"] == 23 and d["layers"] == [0, 1, 2] and d["dims"] == [4, 4, 6]
    assert d["source"] == "fake:hash" and d["revision"] == "r1" and d["dtype"] == "fp16"
    assert d["bytes"] == cache.nbytes and d["built_at"]
    text = format_description(d)
    assert "0-2" in text and "L2:6" in text and "fp16" in text
    json.dumps(d)


def test_open_or_build_reads_the_cache_section(fake_encoder, texts, tmp_path):
    from recadapt.cache import open_or_build
    from recadapt.config import CacheConfig

    config = CacheConfig(dir=str(tmp_path / "states"), dtype="fp32", shard_items=4)
    cache = open_or_build(fake_encoder(), texts, [1], config, progress=False, name="title")
    assert cache.path.parent == tmp_path / "states" and cache.path.name.startswith("title-")
    assert cache.manifest["shard_items"] == 4 and cache.dtype == "fp32"
    assert cache.info == fake_encoder().info  # the encoder identity survives the manifest


def test_a_cache_of_more_layers_serves_a_subset_without_encoding(fake_encoder, texts, tmp_path):
    wide = build(fake_encoder(), texts, tmp_path, layers=[0, 1, 2])
    encoder = fake_encoder()
    narrow = build(encoder, texts, tmp_path, layers=[2])
    assert encoder.encoded == 0 and narrow.path == wide.path
    np.testing.assert_array_equal(narrow.load([2])[0].numpy(), wide.load([2])[0].numpy())
    other = fake_encoder(revision="r2")  # anything else different: a new cache
    build(other, texts, tmp_path, layers=[2])
    assert other.encoded == len(texts)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_missing_contents_have_their_own_fingerprint():
    assert content_fingerprint([None, "a"]) != content_fingerprint(["", "a"])
    assert content_fingerprint([None, "a"]) == content_fingerprint([None, "a"])
