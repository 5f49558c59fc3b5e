"""TALLRec (Bao et al. 2023; RecLoRA 2.3 and appendix B.2): a causal LLM rec-tuned with LoRA to
answer "Yes" or "No" to "will the user like the target item?".

Where the paper is silent, the defaults follow the authors' code (``finetune_rec.py``, built on
alpaca-lora), and each choice is a setting so that the earlier behaviour stays reachable:

* **Prompt** (``prompt_format``): the text comes from ``data/prompts`` (template as config:
  TALLRec's by default; ATFLRec's Table I and RecLoRA's Figure 2 are built in; on a
  ``data.format: alpaca`` dataset each record's own instruction and input). ``alpaca`` (default,
  as TALLRec) writes it in the Stanford Alpaca wrapper ("Below is an instruction that describes
  a task, paired with an input ... ### Instruction: ... ### Input: ... ### Response:"), or
  whatever wrapper the template names (``wrapper: plain``); ``chat`` passes the user message
  through the tokenizer's chat template (refused when it has none; recadapt's behaviour before
  the switch, since SmolLM2-Instruct has one).
* **Loss** (``train_on_inputs``): the causal-LM loss on every non-padding token of prompt +
  answer (default true, the alpaca-lora default that TALLRec's runs keep), or on the answer
  tokens only (false: the answer word, the rest of the output text such as ".", and EOS; the
  prompt is labelled -100). Either way it is the mean over the labelled tokens of the batch.
* **Warm start** (``init_adapter``): TALLRec starts rec-tuning from an Alpaca instruction LoRA;
  a peft adapter folder given here is loaded into the LoRA layers before training (it must
  have the run's ``lora_r``, ``lora_alpha`` and targets). Default none: LoRA starts at zero.
* LoRA from peft on the q/v projections (r 8, alpha 16, dropout 0.05 as TALLRec's code); every
  LLM weight stays frozen.
* Scoring (RecLoRA eq. 4): the softmax over the logits of the answer words "Yes" and "No" at the
  first answer position, i.e. the logit ``z_yes - z_no`` whose sigmoid is that softmax. Their
  token ids are read from the tokenizer (the word encoded alone, without special tokens); a
  tokenizer that splits either word into several tokens is refused with a clear error, since a
  one-position softmax would then be meaningless.
* Prompts longer than ``max_length`` tokens lose their *beginning* (the question about the target
  is at the end); the history length (``data.ctr.history_len``) keeps them short in practice.
  The first truncation warns once (naming that prompt's length; ``LLMPrompts.truncated`` counts
  them all), since a silently cut history would make "longer text histories" experiments
  compare the same prompts.
* Only the hidden states of the positions that carry a loss or a score go through the LM head
  (the full ``[batch, length, vocabulary]`` logits would dominate memory on CPU).
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recadapt.data.ctr import prompt_args
from recadapt.data.prompts import PromptBuilder
from recadapt.encoders.llm import load_causal_lm
from recadapt.errors import ConfigError
from recadapt.models.base import CTRRecommender
from recadapt.models.registry import register_model
from recadapt.nn.peft_methods import add_lora, load_lora_adapter

#: the label of tokens that carry no loss (Hugging Face's convention)
IGNORE_INDEX = -100


class TALLRecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: str = Field("smollm2-135m", description="causal LM: hf:ID, a local folder, or a "
                     "packaged name (smollm2-135m, gemma3-270m)")
    template: str | dict[str, Any] = Field(
        "tallrec", description="prompt template: a built-in name (tallrec, atflrec, reclora), a "
        "YAML file, or a mapping (base: NAME plus fields to override)")
    prompt_format: Literal["alpaca", "chat"] = Field(
        "alpaca", description="alpaca: the template's text wrapper, the Stanford Alpaca prompt "
        "as TALLRec (a template may set wrapper: plain); chat: the tokenizer's chat template")
    train_on_inputs: bool = Field(
        True, description="loss on every prompt and answer token (TALLRec's code); false: on "
        "the answer tokens only")
    init_adapter: str | None = Field(
        None, description="a peft LoRA adapter folder (e.g. an Alpaca instruction LoRA) the "
        "LoRA starts from; it must match lora_r, lora_alpha and lora_targets")
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_targets: list[str] | None = Field(
        None, description="module-name suffixes for LoRA (default: q and v projections)")
    max_length: int = Field(512, ge=16, description="prompt + answer tokens (longer prompts "
                            "lose their beginning)")
    eval_batch_size: int = Field(16, ge=1, description="samples per scoring forward pass")

    @model_validator(mode="before")
    @classmethod
    def _legacy_chat_template(cls, data: Any) -> Any:
        """Configs written before ``prompt_format`` (run folders made earlier) name
        ``chat_template``; they ran with the chat template (auto/yes) or the template's wrapper
        (no) and the answer-only loss, and reopen that way."""
        if isinstance(data, dict) and "chat_template" in data:
            data = dict(data)
            legacy = data.pop("chat_template")
            data.setdefault("prompt_format", "alpaca" if legacy in ("no", False) else "chat")
            data.setdefault("train_on_inputs", False)
        return data


def answer_token_id(tokenizer: Any, word: str) -> int:
    """The single token id of ``word`` (encoded alone); several tokens are refused."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ConfigError(
            f"model.template: the tokenizer splits the answer word {word!r} into {len(ids)} "
            f"tokens {ids}; the Yes/No softmax needs one token each: choose answer words "
            "(template yes/no) that are single tokens for this LLM")
    return int(ids[0])


class LLMPrompts:
    """Turns CTR batches into token ids for a causal LM: prompt (+ answer) per sample."""

    def __init__(self, builder: PromptBuilder, tokenizer: Any, prompt_format: str,
                 max_length: int) -> None:
        self.builder, self.tokenizer, self.max_length = builder, tokenizer, max_length
        if prompt_format not in ("alpaca", "chat"):
            raise ConfigError(f"model.prompt_format: {prompt_format!r}; use alpaca or chat")
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError("model.prompt_format: chat, but the LLM's tokenizer has no chat "
                              "template; use alpaca")
        self.chat = prompt_format == "chat"
        template = builder.template
        self.yes_id = answer_token_id(tokenizer, template.yes)
        self.no_id = answer_token_id(tokenizer, template.no)
        if self.yes_id == self.no_id:
            raise ConfigError("model.template: yes and no map to the same token")
        # the output text after the answer word ("Yes." → "."), then EOS
        rest = template.output.format(answer="\0").split("\0", 1)[1]
        tail = tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else []
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self.tail = [int(t) for t in tail] + eos
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
            eos[0] if eos else 0)
        #: prompts cut to ``max_length`` so far (their beginning is dropped)
        self.truncated = 0

    def prompt_ids(self, batch: dict[str, torch.Tensor], row: int) -> list[int]:
        args = prompt_args(batch, row)
        if self.chat:
            text = self.tokenizer.apply_chat_template(self.builder.messages(*args),
                                                      add_generation_prompt=True, tokenize=False)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(self.builder.build(*args))["input_ids"])

    def encode(self, batch: dict[str, torch.Tensor], with_answer: bool
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids``, ``attention_mask`` (right-padded), the index of each row's last
        prompt token, and the answer token ids ``[B, 1 + len(tail)]`` (Yes/No first)."""
        rows, answers = [], []
        budget = self.max_length - (1 + len(self.tail) if with_answer else 0)
        for row in range(batch["item"].shape[0]):
            ids = self.prompt_ids(batch, row)
            if len(ids) > budget:
                self._note_truncation(len(ids), budget)
                ids = ids[-budget:]
            liked = with_answer and float(batch["label"][row]) >= 0.5
            answer = [self.yes_id if liked else self.no_id, *self.tail]
            rows.append(ids + (answer if with_answer else []))
            answers.append(answer)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        last = torch.empty(len(rows), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            mask[i, : len(ids)] = 1
            last[i] = len(ids) - 1 - (len(answers[i]) if with_answer else 0)
        return input_ids, mask, last, torch.tensor(answers, dtype=torch.long)

    @staticmethod
    def labels(input_ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor,
               answer_len: int, train_on_inputs: bool) -> torch.Tensor:
        """Causal-LM labels aligned with ``input_ids`` (token ``t`` is predicted from the
        states at ``t - 1``): every non-padding token when ``train_on_inputs``, else the
        ``answer_len`` answer tokens after each row's ``last`` prompt token; the rest
        :data:`IGNORE_INDEX`."""
        if train_on_inputs:
            keep = mask.bool()
        else:
            steps = torch.arange(input_ids.shape[1]).unsqueeze(0)
            start = last.unsqueeze(1) + 1
            keep = (steps >= start) & (steps < start + answer_len)
        return torch.where(keep, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    def _note_truncation(self, length: int, budget: int) -> None:
        if not self.truncated:
            warnings.warn(f"model.max_length {self.max_length}: a prompt of {length} tokens "
                          f"keeps only its last {budget}; raise model.max_length or shorten "
                          "data.ctr.history_len", UserWarning, stacklevel=3)
        self.truncated += 1


@register_model("tallrec", TALLRecConfig)
class TALLRec(CTRRecommender):
    """A frozen causal LLM + LoRA answering Yes/No (module docstring)."""

    def __init__(self, config: TALLRecConfig, dataset, run) -> None:
        super().__init__()
        self.lm, tokenizer = load_causal_lm(config.llm)
        for param in self.lm.parameters():
            param.requires_grad_(False)
        self.adapt(config)
        if config.init_adapter:
            self.warm_start(config)
        builder = PromptBuilder(dataset, config.template, run.data.ctr.history_len)
        self.prompts = LLMPrompts(builder, tokenizer, config.prompt_format, config.max_length)
        self.train_on_inputs = config.train_on_inputs
        self.eval_batch_size = config.eval_batch_size

    def adapt(self, config: TALLRecConfig) -> None:
        """Add the trainable adapter to the frozen LLM: peft LoRA (RecLoRA: its meta-LoRA
        bank)."""
        add_lora(self.lm, config.lora_r, config.lora_alpha, config.lora_dropout,
                 config.lora_targets)

    def warm_start(self, config: TALLRecConfig) -> None:
        """Load ``config.init_adapter`` (a peft LoRA folder) into the LoRA just added."""
        load_lora_adapter(self.lm, config.init_adapter, r=config.lora_r,
                          alpha=config.lora_alpha)

    def personalize(self, batch: dict[str, torch.Tensor]) -> AbstractContextManager[Any]:
        """Per-sample state the LLM's forward pass needs (RecLoRA: gate weights). None."""
        return nullcontext()

    def _hidden(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from recadapt.encoders.llm import base_decoder

        device = next(self.lm.parameters()).device
        out = base_decoder(self.lm)(input_ids=input_ids.to(device),
                                    attention_mask=mask.to(device), use_cache=False)
        return out.last_hidden_state

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm.get_output_embeddings()(hidden)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        input_ids, mask, last, _ = self.prompts.encode(batch, with_answer=False)
        with self.personalize(batch):
            hidden = self._hidden(input_ids, mask)
        at = hidden[torch.arange(len(last), device=hidden.device), last.to(hidden.device)]
        logits = self._head(at)
        return logits[:, self.prompts.yes_id] - logits[:, self.prompts.no_id]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        input_ids, mask, last, answers = self.prompts.encode(batch, with_answer=True)
        labels = self.prompts.labels(input_ids, mask, last, answers.shape[1],
                                     self.train_on_inputs)
        with self.personalize(batch):
            hidden = self._hidden(input_ids, mask)
        targets = labels[:, 1:].to(hidden.device)  # position t predicts token t + 1
        scored = targets != IGNORE_INDEX
        logits = self._head(hidden[:, :-1][scored]).float()  # [labelled tokens, vocab]
        return nn.functional.cross_entropy(logits, targets[scored])


@register_model("rella", TALLRecConfig)
class ReLLa(TALLRec):
    """ReLLa (Lin et al. 2024): TALLRec whose prompt lists the behaviours retrieved as most
    relevant to the target (``data.ctr.retrieval``, the same retrieval RecLoRA uses)."""

    @classmethod
    def create(cls, config: TALLRecConfig, dataset, run) -> ReLLa:
        if run.data.ctr.retrieval is None:
            raise ConfigError("model.name: rella retrieves the prompt's behaviours; set "
                              "data.ctr.retrieval (e.g. {long_len: 60, short_len: 10}) or use "
                              "tallrec")
        return cls(config, dataset, run)
