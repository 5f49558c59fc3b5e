"""Prompts for LLM recommenders, as data: the Yes/No instruction templates of TALLRec, ATFLRec
and RecLoRA with their Alpaca files (:mod:`.templates`), and A-LLMRec's candidate-list prompts
(:mod:`.candidates`)."""

from recadapt.data.prompts.candidates import (
    CANDIDATE_TEMPLATES,
    CandidatePrompts,
    CandidateTemplate,
    PromptLayout,
    match_candidate,
    normalise_title,
    resolve_candidate_template,
)
from recadapt.data.prompts.templates import (
    TEMPLATES,
    AlpacaRecord,
    PromptBuilder,
    PromptTemplate,
    alpaca_prompt,
    item_texts,
    label_of,
    placeholders,
    read_alpaca,
    resolve_template,
    to_alpaca,
    wrap,
    write_alpaca,
)

__all__ = [
    "CANDIDATE_TEMPLATES",
    "TEMPLATES",
    "AlpacaRecord",
    "CandidatePrompts",
    "CandidateTemplate",
    "PromptBuilder",
    "PromptLayout",
    "PromptTemplate",
    "alpaca_prompt",
    "item_texts",
    "label_of",
    "match_candidate",
    "normalise_title",
    "placeholders",
    "read_alpaca",
    "resolve_candidate_template",
    "resolve_template",
    "to_alpaca",
    "wrap",
    "write_alpaca",
]
