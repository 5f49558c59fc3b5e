"""Prompts for LLM recommenders: the built-in templates on a hand example, template mappings,
history handling, Alpaca JSON files, and generated titles mapped to listed candidates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recadapt.data.dataset import build_dataset
from recadapt.data.prompts import (
    CANDIDATE_TEMPLATES,
    TEMPLATES,
    AlpacaRecord,
    CandidateTemplate,
    PromptBuilder,
    PromptTemplate,
    alpaca_prompt,
    item_texts,
    label_of,
    match_candidate,
    normalise_title,
    read_alpaca,
    resolve_candidate_template,
    resolve_template,
    to_alpaca,
    write_alpaca,
)
from recadapt.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[2]
TITLES = {"i1": "Toy Story", "i2": "Heat", "i3": "Fargo", "i4": "Alien", "i5": "Big"}


def make_dataset(item_columns: dict | None = None, users: pd.DataFrame | None = None):
    """Items i1..i5 become indices 1..5 (order of first appearance); users u1, u2 → 0, 1."""
    inter = pd.DataFrame({"user": ["u1"] * 5 + ["u2"] * 2,
                          "item": ["i1", "i2", "i3", "i4", "i5", "i2", "i5"],
                          "timestamp": range(7)})
    items = pd.DataFrame({"title": TITLES, **(item_columns or {})})
    return build_dataset("tiny", inter, item_table=items, user_table=users, title_field="title")


@pytest.fixture
def dataset():
    return make_dataset()


TALLREC_EXPECTED = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nGiven the user's preference and unpreference, identify whether the user "
    'will like the target movie by answering "Yes." or "No.".\n\n'
    '### Input:\nUser Preference: "Toy Story", "Fargo"\nUser Unpreference: "Heat"\n'
    'Whether the user will like the target movie "Alien"?\n\n### Response:\n'
)


def test_tallrec_prompt_on_a_hand_example(dataset) -> None:
    builder = PromptBuilder(dataset, "tallrec")
    assert builder.build(0, [1, 2, 3], [1, 0, 1], 4) == TALLREC_EXPECTED
    assert builder.answer(1.0) == "Yes." and builder.answer(0.0) == "No."
    record = builder.record(0, [1, 2, 3], [1, 0, 1], 4, label=1)
    assert alpaca_prompt(record) == TALLREC_EXPECTED and record.output == "Yes."


def test_history_keeps_the_most_recent_items_and_skips_padding(dataset) -> None:
    builder = PromptBuilder(dataset, {"base": "tallrec", "input": "{history}|{liked}|{target}"},
                            history_len=2)
    text = builder.input_text(0, [0, 0, 1, 2, 0, 3], [0, 0, 1, 0, 0, 1], 5)
    assert text == '"Heat", "Fargo"|"Fargo"|"Big"'  # last 2 non-padding, labels aligned


def test_empty_lists_are_written_as_none(dataset) -> None:
    builder = PromptBuilder(dataset, "tallrec")
    text = builder.input_text(0, [1, 3], None, 4)  # no labels: all liked
    assert 'User Preference: "Toy Story", "Fargo"\nUser Unpreference: None\n' in text
    assert "User Preference: None\n" in builder.input_text(0, [0, 0], [1, 1], 4)


def test_reclora_with_ratings_and_a_user_profile() -> None:
    users = pd.DataFrame({"gender": ["F", "M"], "occupation": ["writer", "artist"],
                          "age": [25.0, np.nan]}, index=["u1", "u2"])
    builder = PromptBuilder(make_dataset(users=users), "reclora")
    text = builder.input_text(0, [1, 2, 3], None, 4, history_ratings=[5.0, 3.5, 4])
    assert text == (
        "The user's gender is F. Their job is writer. Their age is 25.\n"
        "The user watched the following movies in order in the past, and rated them:\n"
        "1. Toy Story (5 stars)\n2. Heat (3.5 stars)\n3. Fargo (4 stars)\n"
        "Based on the movies they have watched, deduce if they will like the movie "
        "***Alien***.\n"
        "Note that more stars the user rated the movie, the user like the movie more.\n"
        "You should ONLY tell me yes or no.")
    # a missing feature (u2 has no age) leaves the profile line out, as does a dataset
    # without user features
    for user, data in ((1, builder.dataset), (0, make_dataset())):
        text = PromptBuilder(data, "reclora").input_text(user, [2], None, 5,
                                                          history_ratings=[1.0])
        assert text.startswith("The user watched the following movies") and "gender" not in text
    with pytest.raises(ConfigError, match="history_ratings"):
        builder.input_text(0, [1], None, 4)


def test_chat_and_plain_wrappers(dataset) -> None:
    chat = PromptBuilder(dataset, {"base": "tallrec", "wrapper": "chat"})
    messages = chat.messages(0, [1, 2], [1, 0], 4)
    assert messages == [{"role": "user", "content": chat.build(0, [1, 2], [1, 0], 4)}]
    assert "### " not in messages[0]["content"]
    plain = PromptBuilder(dataset, {"base": "tallrec", "wrapper": "plain"})
    assert plain.build(0, [1], [1], 4) == (TEMPLATES["tallrec"].instruction + "\n"
                                           + plain.input_text(0, [1], [1], 4) + "\n")


def test_mapping_template_overrides_its_base() -> None:
    template = resolve_template({"base": "tallrec", "item": "<{title}>", "yes": "Sure"})
    assert isinstance(template, PromptTemplate)
    assert template.item == "<{title}>" and template.yes == "Sure"
    assert template.instruction == TEMPLATES["tallrec"].instruction
    assert resolve_template("atflrec") is TEMPLATES["atflrec"]
    assert resolve_template(template) is template


def test_template_errors_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown prompt template 'talrec'.*atflrec, reclora"):
        resolve_template("talrec")
    with pytest.raises(ConfigError, match="did you mean 'item'"):
        resolve_template({"base": "tallrec", "itme": "{title}"})
    with pytest.raises(ConfigError, match=r"unknown placeholder \{users\}"):
        resolve_template({"base": "tallrec", "input": "{users} {target}"})
    with pytest.raises(ConfigError, match="unknown prompt template 'nope'"):
        resolve_template({"base": "nope"})


def test_missing_item_field_names_it_and_the_columns(dataset) -> None:
    with pytest.raises(ConfigError, match=r"\{likes\}.*available: title"):
        PromptBuilder(dataset, "atflrec")
    with pytest.raises(ConfigError, match="target_item"):
        PromptBuilder(dataset, {"base": "tallrec", "item": "{index}. {title}"})


def test_atflrec_with_its_columns_and_a_missing_value() -> None:
    data = make_dataset({"likes": {"i1": 10.0, "i2": np.nan, "i3": 3.0},
                         "visits": {"i1": 200, "i2": 5, "i3": 7}})
    text = PromptBuilder(data, "atflrec").input_text(0, [1, 2], [1, 1], 3)
    assert text == ("User interested project: Toy Story, with 10 likes and 200 visits; "
                    "Heat, with  likes and 5 visits Target project: Fargo, with 3 likes "
                    "and 7 visits")


def test_shipped_prompt_configs_resolve(dataset) -> None:
    paths = sorted((REPO_ROOT / "configs" / "prompts").glob("*.yaml"))
    for path in paths:
        builder = PromptBuilder(dataset, str(path))
        assert "Toy Story" in builder.build(0, [1], [1], 2)


def test_alpaca_round_trip(tmp_path: Path, dataset) -> None:
    builder = PromptBuilder(dataset, "tallrec")
    records = [builder.record(0, [1, 2], [1, 0], 3, 1), builder.record(1, [2], [0], 5, 0),
               AlpacaRecord("Say hi", "", "Hi. — ü")]
    path = tmp_path / "sub" / "train.json"
    write_alpaca(path, records)
    assert read_alpaca(path) == records
    assert json.loads(path.read_text(encoding="utf-8")) == to_alpaca(records)
    assert to_alpaca(records)[1] == {"instruction": TEMPLATES["tallrec"].instruction,
                                     "input": builder.input_text(1, [2], [0], 5),
                                     "output": "No."}
    assert "### Input" not in alpaca_prompt(records[2])  # Alpaca's no-input variant


@pytest.mark.parametrize(("content", "message"), [
    ("[{", "line 1: not valid JSON"),
    ('{"instruction": "x"}', "JSON list of records.*dict"),
    ('[{"instruction": "a", "input": "b", "output": "c"}, {"instruction": "a", "input": "b"}]',
     "record index 1 has no 'output' key"),
    ('[{"instruction": "a", "input": 3, "output": "c"}]',
     "record index 0: 'input' must be a string"),
    ('["x"]', "record index 0 is a str"),
])
def test_malformed_alpaca_files_name_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        read_alpaca(path)
    assert "bad.json" in str(info.value)
    with pytest.raises(DataError, match=r"missing\.json"):
        read_alpaca(tmp_path / "missing.json")


def test_label_of() -> None:
    assert label_of("Yes.") == 1 and label_of(" no") == 0 and label_of("YES") == 1
    assert label_of('"Sure!"', yes="Sure") == 1
    with pytest.raises(DataError, match=r"'Maybe\.'"):
        label_of("Maybe.")


# ----------------------------------------------------------------------------- candidate lists


def test_candidate_templates_are_the_papers_prompts() -> None:
    movies = resolve_candidate_template("movies")
    assert movies is CANDIDATE_TEMPLATES["movies"]
    filled = movies.text.format(history='"Heat","Big"', candidates='"Fargo","Alien"')
    assert filled == ('This user has watched "Heat","Big" in the previous. Recommend one next '
                      "movie for this user to watch next from the following movie title set, "
                      '"Fargo","Alien". The recommendation is ')
    assert movies.item.format(title="Heat") == movies.answer.format(title="Heat") == '"Heat"'
    assert movies.separator == "," and movies.user == " is a user representation."
    items = resolve_candidate_template("items")
    assert "has bought {history}" in items.text and "item title set, {candidates}" in items.text


def test_candidate_template_mappings_override_their_base() -> None:
    template = resolve_candidate_template({"base": "items", "answer": "{title}",
                                           "separator": "; "})
    assert isinstance(template, CandidateTemplate)
    assert template.text == CANDIDATE_TEMPLATES["items"].text
    assert (template.answer, template.separator, template.item) == ("{title}", "; ", '"{title}"')
    own = resolve_candidate_template({"text": "Seen: {history}. Pick: {candidates}."})
    assert own.text == "Seen: {history}. Pick: {candidates}." and own.item == '"{title}"'
    assert resolve_candidate_template(own) is own
    assert CANDIDATE_TEMPLATES["items"].answer == '"{title}"'  # the built-in is not changed


@pytest.mark.parametrize(("spec", "message"), [
    ("film", r"unknown candidate template 'film'.*'items', 'movies'"),
    ({"text": "{history} only"}, r"model\.template\..*\{history\} and \{candidates\} once"),
    ({"text": "{history} {candidates} {target}"}, "no other placeholder"),
    ({"text": "{history} {history} {candidates}"}, "once each"),
    ({"base": "movies", "anwser": "{title}"}, "anwser"),
])
def test_candidate_template_errors_are_one_line_config_errors(spec, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        resolve_candidate_template(spec)
    assert "\n" not in str(err.value)


def test_item_texts_fill_a_format_per_item_index() -> None:
    data = make_dataset({"year": {"i1": 1995.0, "i2": np.nan, "i3": 1996.0, "i4": 1979.0,
                                  "i5": 1988.0},
                         "genre": {"i1": " Animation ", "i2": "Crime", "i3": None,
                                   "i4": "Horror", "i5": "Comedy"}})
    assert item_texts(data, "{title}") == ["", "Toy Story", "Heat", "Fargo", "Alien", "Big"]
    assert item_texts(data, "{title} ({year}): {genre}") == [
        "", "Toy Story (1995): Animation", "Heat (): Crime", "Fargo (1996): ",
        "Alien (1979): Horror", "Big (1988): Comedy"]
    with pytest.raises(ConfigError, match=r"\{rating\}.*available: title, year, genre"):
        item_texts(data, "{title} {rating}")


def test_item_texts_title_falls_back_to_the_title_field() -> None:
    inter = pd.DataFrame({"user": ["u1", "u1"], "item": ["a", "b"], "timestamp": [0, 1]})
    items = pd.DataFrame({"name": {"a": "Heat", "b": "Big"}})
    data = build_dataset("named", inter, item_table=items, title_field="name")
    assert item_texts(data, '"{title}"') == ["", '"Heat"', '"Big"']
    assert item_texts(data, "{name}") == ["", "Heat", "Big"]
    untitled = build_dataset("untitled", inter, item_table=items)
    with pytest.raises(ConfigError, match=r"\{title\}"):
        item_texts(untitled, "{title}")


def test_match_candidate_hand_cases():
    answers = {7: '"Toy Story"', 3: '"Heat"', 9: '"Toy Story"', 4: '"Se7en (1995)"'}
    assert match_candidate('"Heat"', answers) == 3
    assert match_candidate('  "Heat"\n', answers) == 3  # surrounding whitespace
    assert match_candidate("heat", answers) == 3  # case and quotes normalised
    assert match_candidate('"se7en 1995"', answers) == 4  # punctuation normalised
    assert match_candidate("SE7EN  (1995)!", answers) == 4
    assert match_candidate('"Toy Story"', answers) == 7  # equal titles: the first shown
    assert match_candidate('"toy story"', {9: '"Toy Story"', 7: '"Toy Story"'}) == 9
    assert match_candidate('"Heat 2"', answers) == 0  # a miss is 0, not the closest
    assert match_candidate("", answers) == 0
    assert match_candidate('""', {1: '""'}) == 1  # an exact empty answer still matches
    assert match_candidate("!!", {1: '"?"'}) == 0  # nothing left after normalising
    assert normalise_title('  "Toy-Story", 2 ') == "toy story 2"
