"""A-LLMRec's candidate-list prompts (Figure 3; Figure 5 without embeddings): the template
(:class:`CandidateTemplate`, built-ins in :data:`CANDIDATE_TEMPLATES`), the prompt written as
token ids with the positions of its soft tokens (:class:`CandidatePrompts`), and the mapping of a
generated title back to a listed candidate (:func:`match_candidate`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from recadapt.config import describe_error
from recadapt.data.prompts.templates import placeholders
from recadapt.errors import ConfigError


class CandidateTemplate(BaseModel):
    """A-LLMRec's next-item prompt (Figure 3; Figure 5 without embeddings): the history and a
    list of candidate titles; the LLM answers with the chosen title.

    ``text`` holds ``{history}`` and ``{candidates}``; each entry is ``item`` (over item
    columns, ``{title}`` as in :class:`PromptTemplate`) joined by ``separator``; ``answer`` is
    the target text the LLM learns to write (then EOS). ``user`` follows the user token when
    the prompt has one (A-LLMRec, MLP-LLM). ``profile_question`` follows the history in the
    free-text probe of section 5.4.4 (favourite genres of MovieLens users; the categories of a
    shop's items)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    user: str = " is a user representation."
    item: str = '"{title}"'
    separator: str = ","
    answer: str = '"{title}"'
    profile_question: str = (" in the previous. What kinds of items does this user like most? "
                             "Answer: ")

    @field_validator("text")
    @classmethod
    def _lists(cls, value: str) -> str:
        names = placeholders(value)
        if sorted(names) != ["candidates", "history"]:
            raise ValueError("text must hold {history} and {candidates} once each, and no other "
                             f"placeholder (got {names})")
        return value


#: the paper's prompts; "movies" (Amazon Movies / MovieLens) and "items" (purchases)
CANDIDATE_TEMPLATES: dict[str, CandidateTemplate] = {
    "movies": CandidateTemplate(
        text="This user has watched {history} in the previous. Recommend one next movie for "
             "this user to watch next from the following movie title set, {candidates}. The "
             "recommendation is ",
        profile_question=" in the previous. Which movie genres does this user like most? "
                         "Answer: "),
    "items": CandidateTemplate(
        text="This user has bought {history} in the previous. Recommend one next item for "
             "this user to buy next from the following item title set, {candidates}. The "
             "recommendation is ",
        profile_question=" in the previous. Which product categories does this user like "
                         "most? Answer: "),
}


def resolve_candidate_template(spec: str | Mapping[str, Any] | CandidateTemplate
                               ) -> CandidateTemplate:
    """A built-in name, or a mapping (``base: NAME`` plus fields to override)."""
    if isinstance(spec, CandidateTemplate):
        return spec
    if isinstance(spec, str):
        if spec not in CANDIDATE_TEMPLATES:
            raise ConfigError(f"model.template: unknown candidate template {spec!r}; choose one "
                              f"of {sorted(CANDIDATE_TEMPLATES)} or give a mapping")
        return CANDIDATE_TEMPLATES[spec]
    fields = dict(spec)
    base = fields.pop("base", None)
    if base is not None and base not in CANDIDATE_TEMPLATES:
        raise ConfigError(f"model.template.base: unknown candidate template {base!r}; choose "
                          f"one of {sorted(CANDIDATE_TEMPLATES)}")
    merged = {**(CANDIDATE_TEMPLATES[base].model_dump() if base in CANDIDATE_TEMPLATES else {}),
              **fields}
    try:
        return CandidateTemplate(**merged)
    except ValidationError as err:
        raise ConfigError(
            describe_error(err, CandidateTemplate, prefix="model.template.")) from None


@dataclass
class PromptLayout:
    """Token ids of one prompt, with the positions whose embeddings are replaced: the user
    token and, after each title, that item's projected embedding (placeholders hold pad ids)."""

    ids: list[int]
    user_slot: int | None = None
    item_slots: list[tuple[int, int]] = field(default_factory=list)  # (position, item)
    shown: list[int] = field(default_factory=list)  # candidates in prompt order


class CandidatePrompts:
    """Writes Figure 3 / Figure 5 prompts as token ids, piece by piece, so every soft token
    lands at a known position."""

    def __init__(self, template: CandidateTemplate, titles: Sequence[str], tokenizer: Any,
                 user_token: bool, item_tokens: bool) -> None:
        self.template, self.tokenizer = template, tokenizer
        self.user_token, self.item_tokens = user_token, item_tokens
        self.titles = list(titles)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
            tokenizer.eos_token_id or 0)
        self.eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self.prefix = list(tokenizer("")["input_ids"])  # BOS when the tokenizer adds one
        self._cache: dict[str, list[int]] = {}
        text = template.text
        at_history, at_candidates = text.index("{history}"), text.index("{candidates}")
        if at_history > at_candidates:
            raise ConfigError("model.template.text: {history} must come before {candidates}")
        self.head = text[:at_history]
        self.middle = text[at_history + len("{history}"):at_candidates]
        tail = text[at_candidates + len("{candidates}"):]
        # "The recommendation is " + '"Title"' would end the prompt on a lone-space token the
        # LM never sees before a word; BPE writes ' "' as one token. The space moves to the
        # answer: the same text, tokenized as the LM read it in pre-training.
        self.tail = tail.rstrip()
        self.answer_prefix = tail[len(self.tail):]

    def tokens(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._cache[text]

    def entry(self, item: int) -> str:
        return self.template.item.format(title=self.titles[item])

    def answer(self, item: int) -> list[int]:
        """The target text's tokens, then EOS (what eq. 8 trains and scoring measures)."""
        return self.tokens(self.answer_prefix + self.template.answer.format(
            title=self.titles[item])) + self.eos

    def layout(self, history: Sequence[int], candidates: Sequence[int]) -> PromptLayout:
        out = PromptLayout(ids=list(self.prefix), shown=list(candidates))
        if self.user_token:
            out.user_slot = len(out.ids)
            out.ids.append(self.pad_id)
            out.ids += self.tokens(self.template.user)
        out.ids += self.tokens(self.head)
        self._items(out, history)
        out.ids += self.tokens(self.middle)
        self._items(out, candidates)
        out.ids += self.tokens(self.tail)
        return out

    def _items(self, out: PromptLayout, items: Sequence[int]) -> None:
        for n, item in enumerate(items):
            if n:
                out.ids += self.tokens(self.template.separator)
            out.ids += self.tokens(self.entry(item))
            if self.item_tokens:
                out.item_slots.append((len(out.ids), int(item)))
                out.ids.append(self.pad_id)


def normalise_title(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def match_candidate(generated: str, answers: dict[int, str]) -> int:
    """The candidate whose answer text the generation is: exact (surrounding whitespace
    ignored), then after normalisation (case, punctuation, spacing); ``0`` when none matches.
    ``answers`` maps item → answer text in prompt order; among equal answers the first shown
    wins."""
    text = generated.strip()
    for item, answer in answers.items():
        if text == answer.strip():
            return item
    norm = normalise_title(text)
    for item, answer in answers.items():
        if norm and norm == normalise_title(answer):
            return item
    return 0
