"""The MicroLens reader: the public layout in tmp folders (real titles and MP4s when present),
header/no-header files, media columns, the synthetic flag, and bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recadapt.config import EncoderSpec
from recadapt.data.readers import read_dataset
from recadapt.encoders.contents import item_contents
from recadapt.errors import DataError

SAMPLES = ("1002", "10034", "10040")
PREFIX = "MicroLens-100k"


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


def column(dataset, name):
    """A feature column by raw item id (missing → None)."""
    values = dataset.item_features[name].tolist()
    return {dataset.item_ids[i]: (None if pd.isna(values[i]) else values[i])
            for i in range(1, len(dataset.item_ids))}


@pytest.fixture
def real_layout(shared_data, tmp_path):
    """A MicroLens-100k folder: real titles (the first 30 lines plus the sample videos' ids),
    the real MP4s symlinked, made-up pairs and one cover."""
    sample = shared_data("microlens_sample")
    lines = (sample / f"{PREFIX}_title_en.csv").read_text(encoding="utf-8").splitlines()
    wanted = {str(i) for i in range(1, 31)} | set(SAMPLES)
    kept = [line for line in lines if line.split(",", 1)[0].strip() in wanted]
    folder = tmp_path / "MicroLens-100k"
    folder.mkdir()
    (folder / f"{PREFIX}_title_en.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (folder / f"{PREFIX}_videos").mkdir()
    for name in SAMPLES:
        (folder / f"{PREFIX}_videos" / f"{name}.mp4").symlink_to(sample / f"{name}.mp4")
    (folder / f"{PREFIX}_covers").mkdir()
    (folder / f"{PREFIX}_covers" / "2.jpg").write_bytes(b"\xff\xd8 not checked here")
    pairs = ["user,item,timestamp", "u1,1002,30", "u1,2,10", "u1,10034,20", "u2,10040,5",
             "u2,2,7", "u2,999999,9", "u3,1002,1", "u3,3,2"]
    (folder / f"{PREFIX}_pairs.csv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return folder


def test_real_layout_reads_end_to_end(real_layout, shared_data):
    d = read_dataset(real_layout)  # format auto: a folder with PREFIX_pairs.csv
    assert (d.name, d.synthetic) == ("MicroLens-100k", False)
    assert list(d.item_ids) == ["[PAD]", "1002", "2", "10034", "10040", "999999", "3"]
    assert seqs(d) == [["2", "10034", "1002"], ["10040", "2", "999999"], ["1002", "3"]]
    assert d.text_fields == ["title"] and d.title_field == "title"
    titles = column(d, "title")
    assert titles["2"] == "beautiful dish with 5 pounds of duck intestines"
    assert titles["3"] == "This sudden reversal"
    assert titles["999999"] is None  # in the pairs, not in the title file: kept, no title
    assert all(titles[n] for n in SAMPLES)
    videos = column(d, "video")
    assert videos == {"1002": f"{PREFIX}_videos/1002.mp4", "2": None,
                      "10034": f"{PREFIX}_videos/10034.mp4",
                      "10040": f"{PREFIX}_videos/10040.mp4", "999999": None, "3": None}
    assert column(d, "audio") == videos  # no audio folder: the videos' sound tracks
    assert column(d, "image")["2"] == f"{PREFIX}_covers/2.jpg"
    assert column(d, "image")["1002"] is None
    assert pd.isna(d.item_features["video"].iloc[0])  # row 0: padding
    # the encoders' view: paths under the folder, None for items without a video
    spec = EncoderSpec(name="video", model="efficientnet-lite0", kind="video", fields=["video"])
    contents = item_contents(d, spec, "video", base_dir=real_layout)
    assert contents[0] == real_layout / f"{PREFIX}_videos/1002.mp4" and contents[0].is_file()
    assert contents[1] is None
    text = item_contents(d, EncoderSpec(name="title", model="minilm"), "text")
    assert text[1] == titles["2"] and text[4] == ""


def test_real_title_file_has_every_line_as_id_and_title(shared_data, tmp_path):
    """The full public title file (19,738 lines, no header, unquoted)."""
    sample = shared_data("microlens_sample")
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / f"{PREFIX}_title_en.csv").symlink_to(sample / f"{PREFIX}_title_en.csv")
    rows = ["user,item,timestamp"] + [f"u{i % 7},{i},{i}" for i in range(1, 19739)]
    (folder / f"{PREFIX}_pairs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    d = read_dataset(folder / f"{PREFIX}_pairs.csv")  # the pairs file works as source too
    assert d.num_items == 19738
    titles = d.item_features["title"]
    lines = (sample / f"{PREFIX}_title_en.csv").read_text(encoding="utf-8").splitlines()
    blank = sum(1 for line in lines if not line.split(",", 1)[1].strip())  # e.g. "1849, "
    assert 0 < blank < 100 and titles.iloc[1:].notna().sum() == 19738 - blank
    assert titles.iloc[1] == "Gu long song gaga bad"
    assert titles.iloc[19738] == "the film version of The Journey of Flower trailer was " \
                                 "publicly ridiculed"
    assert "image" not in d.item_features and "video" not in d.item_features


def test_synth_layout_with_header_audio_meta_and_extra_files(write, tmp_path):
    write("s/synth_pairs.csv", "user,item,timestamp\n1,1,10\n1,2,11\n2,2,5\n2,3,6\n")
    write("s/synth_title_en.csv", 'item,title\n1,"red song, slow"\n2,blue dance\n3,\n')
    write("s/synth_items.csv", "item,genre\n1,pop\n2,rock\n3,jazz\n")
    for item in ("1", "2", "3"):
        write(f"s/synth_covers/{item}.png", b"png")
        write(f"s/synth_videos/{item}.mp4", b"mp4")
    write("s/synth_audio/1.wav", b"wav")
    write("s/synth_audio/2.flac", b"flac")
    write("s/synth_audio/notes.txt", "ignored")
    write("s/synth_meta.json", json.dumps({"synthetic": True, "name": "synth", "seed": 0}))
    d = read_dataset(tmp_path / "s", format="microlens")
    assert (d.name, d.synthetic) == ("synth", True)
    assert column(d, "title") == {"1": "red song, slow", "2": "blue dance", "3": None}
    assert "genre" not in d.item_features  # synth_items.csv is not read
    assert column(d, "audio") == {"1": "synth_audio/1.wav", "2": "synth_audio/2.flac",
                                  "3": "synth_videos/3.mp4"}
    assert column(d, "image")["3"] == "synth_covers/3.png"
    assert d.interactions["timestamp"].tolist() == [10.0, 11.0, 5.0, 6.0]
    assert read_dataset(tmp_path / "s", name="mine").name == "mine"


def test_headerless_pairs_and_two_columns(write, tmp_path):
    write("a/x_pairs.csv", "7,1,3\n7,2,1\n8,1,2\n")
    write("a/x_title_en.csv", "1, one\n2, two, with comma\n")
    d = read_dataset(tmp_path / "a")
    assert seqs(d) == [["2", "1"], ["1"]]
    assert column(d, "title") == {"1": "one", "2": "two, with comma"}
    write("b/y_pairs.csv", "user,item\nA,1\nA,2\n")
    d = read_dataset(tmp_path / "b", format="microlens")
    assert d.interactions["timestamp"].tolist() == [0.0, 1.0]  # file order
    assert d.text_fields == [] and d.item_features.shape[1] == 0


def test_columns_name_the_pairs_header(write, tmp_path):
    write("c/z_pairs.csv", "uid,iid,ts\nA,1,2\nA,2,1\n")
    d = read_dataset(tmp_path / "c", format="microlens",
                     columns={"user": "uid", "item": "iid", "timestamp": "ts"})
    assert seqs(d) == [["2", "1"]]


def test_jpg_is_preferred_over_png_when_an_item_has_both(write, tmp_path):
    write("d/p_pairs.csv", "user,item\n1,5\n")
    write("d/p_covers/5.png", b"png")
    write("d/p_covers/5.jpg", b"jpg")
    d = read_dataset(tmp_path / "d")
    assert column(d, "image") == {"5": "p_covers/5.jpg"}
    assert "video" not in d.item_features and "audio" not in d.item_features


@pytest.mark.parametrize(("files", "error"), [
    ({"e_pairs.csv": "user,item,timestamp\n1,2,3\n1,3\n"},
     r"e_pairs\.csv, line 3: 2 ','-separated fields"),
    ({"e_pairs.csv": "user,item,timestamp\n1,2,soon\n"},
     r"e_pairs\.csv, line 2: 'timestamp' value 'soon' is not a number"),
    ({"e_pairs.csv": "1,2,3,4\n"}, r"e_pairs\.csv, line 1: 4 fields; expected 'user,item"),
    ({"e_pairs.csv": ""}, r"e_pairs\.csv: the file is empty"),
    ({"e_pairs.csv": "user,item\n,2\n"}, r"e_pairs\.csv, line 2: empty 'user'"),
    ({"e_pairs.csv": "1,2,3\n", "e_title_en.csv": "1,a\n2\n"},
     r"e_title_en\.csv, line 2: no comma; expected 'item,title'"),
    ({"e_pairs.csv": "1,2,3\n", "e_title_en.csv": 'item,title\n1,"open\n'},
     r"e_title_en\.csv, line \d+: malformed row"),
    ({"e_pairs.csv": "1,2,3\n", "e_title_en.csv": " ,a\n"},
     r"e_title_en\.csv, line 1: empty item id"),
    ({"e_pairs.csv": "1,2,3\n", "e_meta.json": '{"synthetic": true,\n'},
     r"e_meta\.json, line \d: not valid JSON"),
    ({"e_pairs.csv": "1,2,3\n", "e_meta.json": '{"synthetic": "yes"}'},
     r"e_meta\.json: 'synthetic' is 'yes'; use true or false"),
    ({"e_pairs.csv": b"1,2,3\n1,\xff,4\n"}, r"e_pairs\.csv, line 2: bytes that are not valid"),
])
def test_bad_files_raise_one_line_errors(write, tmp_path, files, error):
    for name, content in files.items():
        write(f"bad/{name}", content)
    with pytest.raises(DataError, match=error) as err:
        read_dataset(tmp_path / "bad", format="microlens")
    assert "\n" not in str(err.value)


def test_folder_errors(write, tmp_path):
    write("two/a_pairs.csv", "1,2\n")
    write("two/b_pairs.csv", "1,2\n")
    with pytest.raises(DataError, match=r"exactly one MicroLens .* found a_pairs\.csv, "
                                        r"b_pairs\.csv"):
        read_dataset(tmp_path / "two", format="microlens")
    with pytest.raises(DataError, match=r"no \*\.inter or \*_pairs\.csv files"):
        read_dataset(write("empty/readme.txt", "x").parent)
    other = write("f/other.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"reads a folder or its PREFIX_pairs\.csv"):
        read_dataset(other, format="microlens")
    # a lone *_pairs.csv without a title file stays a plain csv table
    plain = write("g/x_pairs.csv", "user_id,item_id\n1,2\n1,3\n")
    assert read_dataset(plain).num_items == 2
    assert read_dataset(plain.parent).item_features.shape[1] == 0  # the folder: microlens
