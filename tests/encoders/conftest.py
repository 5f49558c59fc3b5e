"""Tiny random HF models saved to disk, so every encoder code path runs offline in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORDS = [
    "the", "a", "an", "of", "and", "to", "in", "is", "on", "for", "with", "movie", "film",
    "story", "love", "war", "space", "comedy", "drama", "action", "hero", "villain", "city",
    "night", "day", "music", "cat", "dog", "kitten", "mat", "rug", "sits", "sitting", "stock",
    "market", "fell", "today", "sharply", "blue", "sky", "red", "green", "book", "song", "game",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<eos>"]


def _vocab_file(folder: Path) -> Path:
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIALS + sorted(set(WORDS))) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece tokenizer over a small vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = BertTokenizerFast(vocab_file=str(_vocab_file(folder)))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _word_tokenizer(eos: str = "<eos>"):
    """A whitespace word-level tokenizer without a pad token (like most causal LMs)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(set(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token=eos)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama causal LM (with LM head) and a tokenizer that has no pad token."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _word_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer ViT on 32x32 images (8x8 patches), saved without an image processor."""
    from transformers import ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=48)
    ViTModel(config).save_pretrained(folder)
    return folder
