"""TALLRec on the packaged SmolLM2-135M: Yes/No tokens, prompts, LoRA-only training."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.train.loop import train_run

WORDS = ["apple", "river", "garden", "candle", "forest", "violin", "harbor", "meadow"]


def planted_csv(path, users=12, seed=0):
    """Items are "sunny X" (every user rates them 5) or "rainy X" (rated 1): the target's title
    alone decides the label, a pattern a rec-tuned LLM must pick up."""
    rng = np.random.default_rng(seed)
    titles = {f"i{k}": f"{'sunny' if k % 2 else 'rainy'} {WORDS[k % len(WORDS)]}"
              for k in range(16)}
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(users):
        for step, item in enumerate(rng.choice(16, size=6, replace=False)):
            rows.append(f"u{user},i{item},{step * 100 + user},{5 if item % 2 else 1}")
    (path / "inter.csv").write_text("\n".join(rows) + "\n")
    items = ["item_id,title"] + [f"{k},{t}" for k, t in titles.items()]
    (path / "items.csv").write_text("\n".join(items) + "\n")
    return path


@pytest.fixture(scope="module")
def tallrec_config(tmp_path_factory):
    folder = planted_csv(tmp_path_factory.mktemp("tallrec"))

    def make(**model):
        return validate_config({
            "data": {"source": str(folder / "inter.csv"), "item_path": str(folder / "items.csv"),
                     "title_field": "title", "task": "ctr",
                     "ctr": {"history_len": 2, "split": [0.6, 0.2, 0.2]}},
            "model": {"name": "tallrec", "prompt_format": "alpaca", "train_on_inputs": False,
                      "template": {"base": "tallrec", "wrapper": "plain"}, **model},
            "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "patience": 3, "seed": 0},
        })

    return make


def test_answer_tokens_resolve_to_single_ids(tallrec_config):
    from recadapt.encoders.llm import load_causal_lm
    from recadapt.models.tallrec import answer_token_id

    _, tokenizer = load_causal_lm("smollm2-135m")
    yes, no = answer_token_id(tokenizer, "Yes"), answer_token_id(tokenizer, "No")
    assert yes != no
    assert tokenizer.decode([yes]) == "Yes" and tokenizer.decode([no]) == "No"
    with pytest.raises(ConfigError, match="splits the answer word"):
        answer_token_id(tokenizer, "Affirmatively-yes")


def test_tallrec_learns_a_planted_pattern_with_lora_only(tallrec_config, tmp_path):
    from recadapt.models.registry import build_model
    from recadapt.train.runs import prepare_data

    config = tallrec_config()
    before = build_model(config, prepare_data(config).dataset)
    base_before = {n: p.detach().clone() for n, p in before.named_parameters()
                   if "lora_" not in n}
    result = train_run(config, tmp_path / "run", progress=False)
    assert result.metrics["test"]["AUC"] > 0.75
    trained = result.efficiency["trainable_params"]
    # LoRA r=8 on q and v of 30 layers: 30 * (8 * (576 + 576) + 8 * (576 + 192)) = 460,800
    assert trained == 460_800
    from recadapt.train.checkpoint import frozen_fingerprints, read_model_weights

    state, frozen = read_model_weights(tmp_path / "run" / "model.safetensors")
    saved = set(state)
    assert all("lora_" in name for name in saved & set(dict(before.named_parameters())))
    assert len(frozen) > 100 and not saved & set(frozen)  # the LLM is not saved, but ...
    assert frozen == frozen_fingerprints(before)  # ... it is bit-identical after training
    assert set(base_before) <= set(frozen)  # tied names (lm_head) appear under both


def test_prompt_ends_where_the_answer_is_scored(tallrec_config):
    from recadapt.models.registry import build_model
    from recadapt.train.runs import prepare_data

    config = tallrec_config()
    prepared = prepare_data(config)
    model = build_model(config, prepared.dataset)
    from recadapt.data.ctr import ctr_batches

    batch = next(ctr_batches(prepared.split.test, 4))
    ids, mask, last, answers = model.prompts.encode(batch, with_answer=True)
    for row in range(len(last)):
        position = int(last[row]) + 1  # the first answer token follows the prompt
        assert int(ids[row, position]) == int(answers[row, 0])
        assert int(answers[row, 0]) in {model.prompts.yes_id, model.prompts.no_id}
        assert int(mask[row].sum()) == position + answers.shape[1]
    text = model.prompts.tokenizer.decode(ids[0, : int(last[0]) + 1])
    assert "Whether the user will like the target movie" in text


def test_long_prompts_keep_their_end_and_warn_once(tallrec_config):
    """A prompt over model.max_length loses its beginning, never the question at the end, and
    the user hears of it once (a silently cut history hides what a run really saw)."""
    from recadapt.data.ctr import ctr_batches
    from recadapt.models.registry import build_model
    from recadapt.train.runs import prepare_data

    config = tallrec_config(max_length=24)
    prepared = prepare_data(config)
    model = build_model(config, prepared.dataset)
    batch = next(ctr_batches(prepared.split.test, 4))
    full = model.prompts.prompt_ids(batch, 0)
    assert len(full) > 24
    with pytest.warns(UserWarning, match="model.max_length 24"):
        ids, _, last, _ = model.prompts.encode(batch, with_answer=True)
    assert ids.shape[1] == 24
    kept = ids[0, : int(last[0]) + 1].tolist()
    assert kept == full[-len(kept):]  # the end of the prompt survives
    assert model.prompts.truncated == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.prompts.encode(batch, with_answer=False)  # no second warning
    assert model.prompts.truncated == 8
