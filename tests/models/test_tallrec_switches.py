"""TALLRec's fidelity switches on a tiny random Llama: the loss mask (train_on_inputs), the Alpaca
prompt (prompt_format), the warm start from a peft adapter (init_adapter)."""

from __future__ import annotations

import json

import pytest
import torch

from recadapt.config import validate_config
from recadapt.data.ctr import ctr_batches
from recadapt.data.prompts import wrap
from recadapt.errors import ConfigError
from recadapt.models.reclora import RecLoRAConfig
from recadapt.models.registry import build_model
from recadapt.models.tallrec import IGNORE_INDEX, TALLRecConfig
from recadapt.train.runs import prepare_data

ALPACA = ("Below is an instruction that describes a task, paired with an input that provides "
          "further context. Write a response that appropriately completes the request.\n\n"
          "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")


@pytest.fixture(scope="module")
def make(tiny_llm, alpaca_folder):
    def build(**model):
        config = validate_config({
            "data": {"source": str(alpaca_folder), "task": "ctr"},
            "model": {"name": "tallrec", "llm": str(tiny_llm), **model},
            "train": {"seed": 0}})
        prepared = prepare_data(config)
        torch.manual_seed(0)
        return build_model(config, prepared.dataset), prepared
    return build


def first_batch(prepared, size=4):
    return next(ctr_batches(prepared.split.train, size))


def test_defaults_follow_the_authors_code_and_reclora_keeps_the_old_ones():
    config = TALLRecConfig()
    assert (config.prompt_format, config.train_on_inputs, config.init_adapter) == (
        "alpaca", True, None)
    assert (RecLoRAConfig().prompt_format, RecLoRAConfig().train_on_inputs) == ("chat", False)
    # a config written before the switches (a run folder) reopens with its old behaviour
    old = TALLRecConfig(chat_template="auto")
    assert (old.prompt_format, old.train_on_inputs) == ("chat", False)
    assert TALLRecConfig(chat_template="no").prompt_format == "alpaca"
    assert TALLRecConfig(chat_template="no", train_on_inputs=True).train_on_inputs


def test_alpaca_wrapper_text_is_exact(make, alpaca_folder):
    assert wrap("Do X.", "Some input") == ALPACA.format(instruction="Do X.", input="Some input")
    model, prepared = make()
    batch = first_batch(prepared)
    record = json.loads((alpaca_folder / "train.json").read_text())[0]
    ids = model.prompts.prompt_ids(batch, 0)
    text = model.prompts.tokenizer.decode(ids)
    assert text == ALPACA.format(**record)
    assert "<|im_start|>" not in text


def test_chat_format_is_the_tokenizer_chat_template(make, alpaca_folder):
    model, prepared = make(prompt_format="chat")
    text = model.prompts.tokenizer.decode(model.prompts.prompt_ids(first_batch(prepared), 0))
    record = json.loads((alpaca_folder / "train.json").read_text())[0]
    assert "<|im_start|>user" in text and "### Instruction" not in text
    assert record["input"] in text and text.rstrip().endswith("<|im_start|>assistant")


@pytest.mark.parametrize("train_on_inputs", [False, True])
def test_loss_mask(make, train_on_inputs):
    model, prepared = make(train_on_inputs=train_on_inputs)
    batch = first_batch(prepared)
    ids, mask, last, answers = model.prompts.encode(batch, with_answer=True)
    labels = model.prompts.labels(ids, mask, last, answers.shape[1], train_on_inputs)
    assert (mask == 0).any()  # rows of different lengths: padding exists
    for row in range(len(ids)):
        length = int(mask[row].sum())
        answer = slice(int(last[row]) + 1, length)
        assert labels[row, answer].tolist() == answers[row].tolist() == ids[row, answer].tolist()
        assert (labels[row, length:] == IGNORE_INDEX).all()  # padding never
        prompt = labels[row, : int(last[row]) + 1]
        if train_on_inputs:
            assert prompt.tolist() == ids[row, : int(last[row]) + 1].tolist()
        else:
            assert (prompt == IGNORE_INDEX).all()
    # the loss is Hugging Face's causal-LM loss over exactly these labels
    model.eval()
    with torch.no_grad():
        ours = model.loss(batch)
        reference = model.lm(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(ours, reference, atol=1e-5)


def save_adapter(tiny_llm, folder, r=8, alpha=16, targets=("q_proj", "v_proj"), hidden=None):
    """A peft adapter saved with save_pretrained from the tiny model (or one of another width),
    with random (non-zero) LoRA weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    if hidden is None:
        base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    else:
        config = AutoConfig.from_pretrained(tiny_llm)
        config.hidden_size, config.intermediate_size = hidden, 2 * hidden
        base = LlamaForCausalLM(config)
    peft_model = get_peft_model(base, LoraConfig(r=r, lora_alpha=alpha,
                                                 target_modules=list(targets)))
    torch.manual_seed(1)
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.1)
    peft_model.save_pretrained(folder)
    return {name.removeprefix("base_model.model."): param.detach().clone()
            for name, param in peft_model.named_parameters() if "lora_" in name}


def test_init_adapter_round_trip(make, tiny_llm, tmp_path):
    saved = save_adapter(tiny_llm, tmp_path / "adapter")
    model, _ = make(init_adapter=str(tmp_path / "adapter"))
    loaded = {name: param for name, param in model.lm.named_parameters() if "lora_" in name}
    assert set(loaded) == set(saved) and len(saved) == 8  # A and B of q and v in 2 layers
    for name, value in saved.items():
        assert torch.equal(loaded[name], value), name
        assert loaded[name].requires_grad
    fresh, _ = make()
    assert all(p.abs().sum() == 0 for n, p in fresh.lm.named_parameters() if "lora_B" in n)


def test_init_adapter_mismatches_are_one_line(make, tiny_llm, tmp_path):
    with pytest.raises(ConfigError, match=r"model.init_adapter: .*missing is not a folder"):
        make(init_adapter=str(tmp_path / "missing"))
    save_adapter(tiny_llm, tmp_path / "r4", r=4, alpha=8)
    with pytest.raises(ConfigError, match=r"has r=4, lora_alpha=8 .* the model r=8"):
        make(init_adapter=str(tmp_path / "r4"))
    save_adapter(tiny_llm, tmp_path / "qkv", targets=("q_proj", "k_proj", "v_proj"))
    with pytest.raises(ConfigError, match=r"does not fit this model's LoRA layers.*k_proj"):
        make(init_adapter=str(tmp_path / "qkv"))
    save_adapter(tiny_llm, tmp_path / "wide", hidden=48)
    with pytest.raises(ConfigError, match=r"does not fit this base model: .*size mismatch") as info:
        make(init_adapter=str(tmp_path / "wide"))
    assert "\n" not in str(info.value)
