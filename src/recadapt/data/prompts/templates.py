"""Instruction data for LLM recommenders (TALLRec, ATFLRec, RecLoRA): prompts and Alpaca files.

Choices:

* **Templates are data.** A :class:`PromptTemplate` is a handful of ``str.format`` strings;
  the built-in ones (:data:`TEMPLATES`) are the papers' prompts, and a config adapts one to
  another dataset with a mapping such as ``{"base": "atflrec", "item": '"{title}"'}`` (or a
  YAML file of that mapping, see ``configs/prompts/``). No dataset is special-cased here.
* **Item formats read item columns.** ``item`` (history entries) and ``target_item`` name
  columns of ``dataset.item_features`` plus ``{rating}`` and ``{index}`` (1-based position
  in the list being written; history entries only). ``{title}`` falls back to the dataset's
  ``title_field`` when there is no ``title`` column (``movie_title`` in ML-100K). A column the
  dataset lacks is a :class:`ConfigError` naming it and the available columns: adapt
  ``item`` to your columns (ATFLRec's likes/visits exist only in its own data). Missing
  values are written as empty strings; whole floats without ``.0`` (``4.0`` → ``4``).
* **History** is oldest first; padding (item 0) is skipped and only the most recent
  ``history_len`` items are kept. ``{liked}`` are those labelled >= 0.5, ``{disliked}`` the
  others (no labels: all liked), ``{history}`` all of them; an empty list is written as
  ``empty`` ("None", as in TALLRec).
* **Profile** (``profile``, over ``dataset.user_features`` columns) is optional context, not
  a requirement: when the dataset has no user features, lacks a column the profile names, or
  the user's value is missing, the profile is left out, and a line of ``input`` holding only
  ``{profile}`` is dropped, so RecLoRA's template also runs on datasets without profiles.
* **Wrappers.** ``alpaca`` is the Stanford Alpaca prompt TALLRec fine-tunes with (the same
  text as :func:`alpaca_prompt`, so imported Alpaca JSON feeds the same models); ``plain`` is
  instruction and input on their own lines; ``chat`` gives the user message only, for the
  caller to pass through the tokenizer's chat template (:meth:`PromptBuilder.messages`).

* **Records.** On a dataset of instruction records (``data.format: alpaca``,
  ``Dataset.records``) every example already is its prompt: the instruction and input are the
  target record's own (item columns ``instruction`` and ``input``), and the template only
  contributes the answer words, the output text and the wrapper; its item formats are not used.

K-shot training subsets are :func:`recadapt.data.splits.k_shot`.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from recadapt.config import describe_error
from recadapt.data.dataset import PAD_ITEM, Dataset
from recadapt.errors import ConfigError, DataError
from recadapt.io import write_text

INPUT_FIELDS = ("liked", "disliked", "history", "target", "profile")
HISTORY_FIELDS = ("rating", "index")
ALPACA_KEYS = ("instruction", "input", "output")
ALPACA_HEADER = ("Below is an instruction that describes a task, paired with an input that "
                 "provides further context. Write a response that appropriately completes "
                 "the request.\n\n")
# Stanford Alpaca's variant for records whose input is empty
ALPACA_HEADER_NO_INPUT = ("Below is an instruction that describes a task. Write a response "
                          "that appropriately completes the request.\n\n")


def placeholders(fmt: str) -> list[str]:
    """The field names a ``str.format`` template uses (``{a.b}`` / ``{a[0]}`` → ``a``)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(fmt):
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base or base.isdigit():
            raise ValueError(f"positional placeholder {{{name}}} in {fmt!r}: name a field")
        names.append(base)
    return names


class PromptTemplate(BaseModel):
    """How one example is written; every text is a ``str.format`` template (see module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: str
    input: str
    item: str
    target_item: str | None = None
    separator: str = ", "
    profile: str | None = None
    yes: str = "Yes"
    no: str = "No"
    output: str = "{answer}."
    empty: str = "None"
    wrapper: Literal["alpaca", "plain", "chat"] = "alpaca"

    @field_validator("input")
    @classmethod
    def _input_fields(cls, value: str) -> str:
        unknown = sorted(set(placeholders(value)) - set(INPUT_FIELDS))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; input may use "
                             + ", ".join(f"{{{f}}}" for f in INPUT_FIELDS))
        return value

    @field_validator("output")
    @classmethod
    def _output_fields(cls, value: str) -> str:
        if set(placeholders(value)) - {"answer"}:
            raise ValueError("output may only use {answer}")
        return value

    @field_validator("item", "target_item", "profile")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            placeholders(value)  # raises on a malformed format string
        return value


TEMPLATES: dict[str, PromptTemplate] = {
    # TALLRec (Bao et al., 2023), its movie prompt
    "tallrec": PromptTemplate(
        instruction="Given the user's preference and unpreference, identify whether the user "
                    'will like the target movie by answering "Yes." or "No.".',
        input="User Preference: {liked}\nUser Unpreference: {disliked}\n"
              "Whether the user will like the target movie {target}?",
        item='"{title}"',
    ),
    # ATFLRec Table I; "; " between entries because each entry already holds commas
    "atflrec": PromptTemplate(
        instruction="Based on the user's historical interaction records, as well as the audio "
                    "title, content, likes, and visits, please determine if the user is "
                    "interested in the target audio and answer 'Yes' or 'No'",
        input="User interested project: {liked} Target project: {target}",
        item="{title}, with {likes} likes and {visits} visits",
        separator="; ",
    ),
    # RecLoRA Figure 2, in neutral wording ("the user"/"they" instead of "he")
    "reclora": PromptTemplate(
        instruction="Given the user's profile and the movies they rated in the past, predict "
                    "whether they will like the target movie.",
        input="{profile}\n"
              "The user watched the following movies in order in the past, and rated them:\n"
              "{history}\n"
              "Based on the movies they have watched, deduce if they will like the movie "
              "***{target}***.\n"
              "Note that more stars the user rated the movie, the user like the movie more.\n"
              "You should ONLY tell me yes or no.",
        item="{index}. {title} ({rating} stars)",
        target_item="{title}",
        separator="\n",
        profile="The user's gender is {gender}. Their job is {occupation}. "
                "Their age is {age}.",
    ),
}


def resolve_template(spec: str | Path | Mapping[str, Any] | PromptTemplate) -> PromptTemplate:
    """A template from a built-in name, a ``.yaml`` file, or a mapping of fields.

    A mapping (or file) may start from another template with ``base: NAME`` and override
    any of its fields.
    """
    if isinstance(spec, PromptTemplate):
        return spec
    if isinstance(spec, (str, Path)):
        name = str(spec)
        if name in TEMPLATES:
            return TEMPLATES[name]
        if name.endswith((".yaml", ".yml")):
            return resolve_template(_read_yaml(Path(name)))
        raise ConfigError(f"unknown prompt template {name!r}: use one of "
                          f"{', '.join(sorted(TEMPLATES))}, a mapping or a .yaml file")
    if isinstance(spec, Mapping):
        fields = dict(spec)
        base = fields.pop("base", None)
        if base is not None:
            if not isinstance(base, str):
                raise ConfigError(f"prompt template base must be a template name, got {base!r}")
            fields = {**resolve_template(base).model_dump(), **fields}
        try:
            return PromptTemplate(**fields)
        except ValidationError as err:
            raise ConfigError(f"prompt template: {describe_error(err, PromptTemplate)}") from None
    raise TypeError(f"a prompt template is a name, a mapping or a PromptTemplate, not {spec!r}")


def _read_yaml(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise ConfigError(f"prompt template file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"prompt template file {path} is not valid YAML: {err}") from None
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"prompt template file {path} must hold a mapping of template fields")
    return loaded


def _plain(value: Any) -> Any:
    """A table value as it should be written: missing → "", whole float → int."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class AlpacaRecord:
    """One instruction-tuning example in the Stanford Alpaca layout."""

    instruction: str
    input: str
    output: str


def wrap(instruction: str, input_text: str, wrapper: str = "alpaca") -> str:
    """The model's prompt text for ``wrapper`` (see the module docstring)."""
    if wrapper == "alpaca":
        if not input_text:
            return f"{ALPACA_HEADER_NO_INPUT}### Instruction:\n{instruction}\n\n### Response:\n"
        return (f"{ALPACA_HEADER}### Instruction:\n{instruction}\n\n"
                f"### Input:\n{input_text}\n\n### Response:\n")
    if wrapper == "plain":
        return f"{instruction}\n{input_text}\n"
    if wrapper == "chat":
        return f"{instruction}\n{input_text}"
    raise ValueError(f"unknown wrapper {wrapper!r}: alpaca, plain or chat")


def alpaca_prompt(record: AlpacaRecord) -> str:
    """The prompt of an Alpaca record, exactly as :class:`PromptBuilder` writes it."""
    return wrap(record.instruction, record.input, "alpaca")


class PromptBuilder:
    """Writes a user's history and a target item of ``dataset`` as a prompt of ``template``.

    Every column the template names is checked here, once, so a wrong template fails before
    any example is written.
    """

    def __init__(self, dataset: Dataset,
                 template: str | Mapping[str, Any] | PromptTemplate = "tallrec",
                 history_len: int = 10) -> None:
        if int(history_len) != history_len or history_len < 1:
            raise ValueError(f"history_len must be a positive whole number, got {history_len!r}")
        self.dataset = dataset
        self.template = resolve_template(template)
        self.history_len = int(history_len)
        t = self.template
        #: the records' own instruction and input columns (``Dataset.records``), or None
        self.record_columns: tuple[np.ndarray, np.ndarray] | None = None
        if getattr(dataset, "records", False):
            features = dataset.item_features
            self.record_columns = (features["instruction"].fillna("").to_numpy(dtype=object),
                                   features["input"].fillna("").to_numpy(dtype=object))
            self.target_format, self.item_fields, self.columns = "", [], {}
            self.profile_columns, self._input_no_profile = None, t.input
            return
        self.target_format = t.target_item if t.target_item is not None else t.item
        self.item_fields = placeholders(t.item)
        target_fields = placeholders(self.target_format)
        if set(target_fields) & set(HISTORY_FIELDS):
            raise ConfigError(f"prompt template target_item {self.target_format!r} uses "
                              "{rating} or {index}, which only history entries have: set "
                              "target_item to a format over item columns")
        self.columns = {name: self._item_column(name) for name in
                        dict.fromkeys([*self.item_fields, *target_fields])
                        if name not in HISTORY_FIELDS}
        self.profile_columns = self._profile_columns()
        self._input_no_profile = "\n".join(
            line for line in t.input.split("\n") if line.strip() != "{profile}")

    def _item_column(self, name: str) -> np.ndarray:
        features = self.dataset.item_features
        column = name
        if name not in features.columns and name == "title":
            column = self.dataset.title_field
        if column is None or column not in features.columns:
            available = ", ".join(map(str, features.columns)) or "none"
            raise ConfigError(
                f"prompt template item format uses {{{name}}} but dataset "
                f"{self.dataset.name!r} has no such item column (available: {available}, "
                "plus {rating} and {index}): adapt the template's item/target_item to them")
        return features[column].to_numpy(dtype=object)

    def _profile_columns(self) -> dict[str, np.ndarray] | None:
        """User feature columns of the profile, or None when the profile is left out."""
        users = self.dataset.user_features
        if self.template.profile is None or users is None:
            return None
        names = placeholders(self.template.profile)
        if any(name not in users.columns for name in names):
            return None
        return {name: users[name].to_numpy(dtype=object) for name in names}

    # ------------------------------------------------------------------------- text

    def answer(self, label: float) -> str:
        """The response text for ``label`` (>= 0.5: yes), e.g. ``"Yes."``."""
        t = self.template
        return t.output.format(answer=t.yes if label >= 0.5 else t.no)

    def input_text(self, user: int, history_items: Sequence[int],
                   history_labels: Sequence[float] | None, target: int,
                   history_ratings: Sequence[float] | None = None) -> str:
        """The template's ``input`` filled for one example (no wrapper)."""
        t = self.template
        if not 1 <= int(target) <= self.dataset.num_items:
            raise ValueError(f"target item {target} is not in 1..{self.dataset.num_items}")
        if self.record_columns is not None:
            return str(self.record_columns[1][int(target)])
        items, labels, ratings = self._history(history_items, history_labels, history_ratings)
        liked = [i for i, label in enumerate(labels) if label >= 0.5]
        disliked = [i for i, label in enumerate(labels) if label < 0.5]
        values = {
            "liked": self._entries(items[liked], ratings[liked]),
            "disliked": self._entries(items[disliked], ratings[disliked]),
            "history": self._entries(items, ratings),
            "target": self._format_item(self.target_format, int(target)),
            "profile": self._profile(user),
        }
        return (t.input if values["profile"] else self._input_no_profile).format(**values)

    def instruction(self, target: int) -> str:
        """The instruction of the example about ``target``: the template's, or a record's own."""
        if self.record_columns is not None:
            return str(self.record_columns[0][int(target)])
        return self.template.instruction

    def build(self, user: int, history_items: Sequence[int],
              history_labels: Sequence[float] | None, target: int,
              history_ratings: Sequence[float] | None = None) -> str:
        """The full prompt up to and including the response prefix (``chat``: the user message)."""
        text = self.input_text(user, history_items, history_labels, target, history_ratings)
        return wrap(self.instruction(target), text, self.template.wrapper)

    def messages(self, user: int, history_items: Sequence[int],
                 history_labels: Sequence[float] | None, target: int,
                 history_ratings: Sequence[float] | None = None) -> list[dict[str, str]]:
        """The example as chat messages, for ``tokenizer.apply_chat_template``."""
        text = self.input_text(user, history_items, history_labels, target, history_ratings)
        return [{"role": "user", "content": wrap(self.instruction(target), text, "chat")}]

    def record(self, user: int, history_items: Sequence[int],
               history_labels: Sequence[float] | None, target: int, label: float,
               history_ratings: Sequence[float] | None = None) -> AlpacaRecord:
        """The example with its answer as an Alpaca record (for :func:`write_alpaca`)."""
        text = self.input_text(user, history_items, history_labels, target, history_ratings)
        return AlpacaRecord(self.instruction(target), text, self.answer(label))

    # ------------------------------------------------------------------------- helpers

    def _history(self, history_items: Sequence[int], history_labels: Sequence[float] | None,
                 history_ratings: Sequence[float] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Aligned items, labels, ratings: padding dropped, the last ``history_len`` kept."""
        items = np.asarray(history_items, dtype=np.int64).reshape(-1)
        n = len(items)
        labels = np.ones(n) if history_labels is None else np.asarray(history_labels, float)
        if history_ratings is None:
            if "rating" in self.item_fields:
                raise ConfigError("prompt template item format uses {rating}: pass "
                                  "history_ratings, or drop {rating} from the template's item")
            ratings = np.full(n, np.nan)
        else:
            ratings = np.asarray(history_ratings, dtype=float)
        if labels.shape != (n,) or ratings.shape != (n,):
            raise ValueError(f"{n} history items but {labels.size} labels and "
                             f"{ratings.size} ratings: they must be aligned")
        if n and (items.min() < 0 or items.max() > self.dataset.num_items):
            raise ValueError(f"history items must be in 0..{self.dataset.num_items}")
        keep = np.flatnonzero(items != PAD_ITEM)[-self.history_len:]
        return items[keep], labels[keep], ratings[keep]

    def _entries(self, items: np.ndarray, ratings: np.ndarray) -> str:
        if len(items) == 0:
            return self.template.empty
        return self.template.separator.join(
            self._format_item(self.template.item, int(item), rating=_plain(rating), index=i)
            for i, (item, rating) in enumerate(zip(items, ratings, strict=True), 1))

    def _format_item(self, fmt: str, item: int, **extra: Any) -> str:
        values = {name: _plain(column[item]) for name, column in self.columns.items()}
        return fmt.format(**values, **extra)

    def _profile(self, user: int) -> str:
        if not 0 <= int(user) < self.dataset.num_users:
            raise ValueError(f"user {user} is not in 0..{self.dataset.num_users - 1}")
        if self.profile_columns is None or self.template.profile is None:
            return ""
        values = {name: _plain(column[int(user)]) for name, column in
                  self.profile_columns.items()}
        if any(value == "" for value in values.values()):
            return ""
        return self.template.profile.format(**values)


# ----------------------------------------------------------------------------- Alpaca JSON


def to_alpaca(records: Iterable[AlpacaRecord]) -> list[dict[str, str]]:
    """Records as Alpaca JSON objects ``{"instruction", "input", "output"}``."""
    return [asdict(record) for record in records]


def write_alpaca(path: str | Path, records: Iterable[AlpacaRecord]) -> None:
    """Write records as an Alpaca JSON list, atomically (UTF-8, readable non-ASCII titles)."""
    write_text(path, json.dumps(to_alpaca(records), ensure_ascii=False, indent=2) + "\n")


def read_alpaca(path: str | Path) -> list[AlpacaRecord]:
    """Read an Alpaca JSON list (TALLRec's data files; ``.jsonl``: one record a line); extra
    keys in a record are ignored. The checks and their one-line errors are those of
    ``data.format: alpaca`` (:func:`recadapt.data.readers.alpaca.parse_records`)."""
    from recadapt.data.readers.alpaca import parse_records

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such Alpaca JSON file")
    return [AlpacaRecord(*record) for record in parse_records(path)]


def label_of(output: str, yes: str = "Yes", no: str = "No") -> int:
    """1 for the yes answer, 0 for the no answer (case, whitespace and punctuation ignored)."""
    junk = string.punctuation + string.whitespace
    word = output.strip(junk).casefold() if isinstance(output, str) else None
    if word == yes.strip(junk).casefold():
        return 1
    if word == no.strip(junk).casefold():
        return 0
    raise DataError(f"answer {output!r} is neither {yes!r} nor {no!r}")


__all__ = [
    "TEMPLATES",
    "AlpacaRecord",
    "PromptBuilder",
    "PromptTemplate",
    "alpaca_prompt",
    "label_of",
    "read_alpaca",
    "resolve_template",
    "to_alpaca",
    "wrap",
    "write_alpaca",
]


def item_texts(dataset: Dataset, fmt: str) -> list[str]:
    """``fmt`` (``str.format`` over item columns; ``{title}`` falls back to the dataset's
    ``title_field``) filled for every item index (row 0, the padding item, gives ``""``)."""
    features = dataset.item_features
    columns: dict[str, np.ndarray] = {}
    for name in placeholders(fmt):
        column = name if name in features.columns else (
            dataset.title_field if name == "title" else None)
        if column is None or column not in features.columns:
            available = ", ".join(map(str, features.columns)) or "none"
            raise ConfigError(f"item format {fmt!r} uses {{{name}}} but dataset "
                              f"{dataset.name!r} has no such item column (available: "
                              f"{available})")
        columns[name] = features[column].to_numpy(dtype=object)
    out = [""]
    for row in range(1, dataset.num_items + 1):
        values = {k: _cell(v[row]) for k, v in columns.items()}
        out.append(fmt.format(**values))
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
