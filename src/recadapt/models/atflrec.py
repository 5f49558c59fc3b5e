"""ATFLRec (Qin 2024): audio and text through one frozen text model with LoRA, then a classifier.

The paper's pipeline (section II, Figures 1-4) and how it is built here:

* **Text** (Table I): the rec-tuning prompt of ``data/prompts``, built from the CTR batch by
  :class:`~recadapt.data.prompts.PromptBuilder` with the run's ``data.ctr.history_len``. The
  default template is ATFLRec's own with items written by title (the likes/visits of Table I
  exist only in the paper's MicroLens crawl; same text as ``configs/prompts/atflrec_titles.yaml``).
  ATFLRec *classifies* (the pooled states go to a classifier), so nothing is generated: the
  instruction and the input are written on their own lines (the ``plain`` wrapper, whatever the
  template's wrapper says) and the answer is never part of the text. Tokens are cut to
  ``max_length`` (III-4: 512, the model's maximum) by dropping the *beginning* of the prompt
  (the target item is at its end); the model's special tokens ([CLS]/[SEP], <s>/</s>) are kept.
* **Audio** (II-B-1, III-1): Kaldi FBank (25 ms windows, 10 ms shift, ``num_fbank`` 40 or 80
  mel bins, Table V) of the first ``audio_seconds`` (30 s) of each item's audio file (item
  column ``audio_field``), computed once when the model is created. The paper feeds audio
  vectors to a 512-position encoder while 30 s are 2998 frames, so the time axis must be
  reduced; it does not say how. Here the frames are zero-padded to the fixed count of
  ``audio_seconds`` and cut into ``audio_tokens`` (32) equal segments by adaptive average
  pooling, each segment averaging its *real* frames only; a segment that holds only padding
  (a clip shorter than ``audio_seconds``) is a masked token, and an item without audio (empty
  cell, a file without an audio track, shorter than one window) has every token masked, i.e.
  contributes nothing (silence). No other normalisation of the log energies: the network's
  BatchNorm is the paper's only one. The features live in non-persistent buffers (recomputed
  at creation, never in the state dict; memoised per file within a process).
* **Audio embedding network** (II-B-1): ``Linear(bins → 256)``, SiLU, ``Linear(256 → width of
  the text model)``, ``BatchNorm1d(width)``, applied to each audio token; batch statistics are
  taken over the valid tokens of the distinct items of a batch.
* **Audio stacking pooling** (Table IV "Audio": average / maximum, best maximum): the embedded
  tokens of the *liked* history items (``history_label >= 0.5``, i.e. the ``{liked}`` list of
  the prompt) are pooled elementwise per token position over items (``audio_pooling``,
  default max); a position no liked item has is masked, so an empty history gives masked
  (zero) tokens. The audio sequence is ``[pooled history tokens ; target item tokens]``
  (``2 × audio_tokens`` positions, with its attention mask).
* **Text model** (II-B-2): frozen; the paper uses RoBERTa, the default here is the packaged
  MiniLM (``text_model: hf:roberta-base`` or ``mpnet`` where available). LoRA (peft) on the
  attention query and value projections, r = 4 (III-4), alpha = 2r (not given in the paper),
  dropout 0.05 (not given). The model's own dropout stays active in training, as in any
  LoRA fine-tuning. Audio vectors enter as ``inputs_embeds``, so they get the model's position
  (and token-type) embeddings and embedding LayerNorm like word vectors: the audio tokens are
  ordered in time, and the first layer expects normalised inputs.
* **LoRA configurations** (Figure 4, Table III), ``lora_mode``:

  - ``dual`` (4a, the paper's best): the prompt through the model with LoRA adapter ``text``,
    the audio sequence through the same frozen weights with adapter ``audio``; each output is
    mean-pooled over its valid tokens and the two vectors are fused (Table IV "Multidata":
    ``fusion`` sum (best) | max | mean);
  - ``single`` (4b): one adapter (``text``) over one sequence: the prompt's word embeddings
    followed directly by the audio vectors (packed per row: text tokens, then the 2T audio
    positions, then padding), mean-pooled; the prompt keeps ``max_length - 2T`` tokens;
  - ``text`` (4c, TALLRec-style): one adapter over the prompt only; no audio features, no
    audio network. The only mode for Alpaca records (``data.format: alpaca``: each record's
    instruction and input are the prompt; the other modes are refused there).

* **Classifier**: ``Linear(width → 1)`` (``classifier_dropout`` before it, default 0: none in
  the paper) gives the logit; the loss is the base class's binary cross-entropy.
* **Trained**: LoRA weights, the audio network, the classifier; nothing else of the text model.
* **Schedule** (III-4) belongs to the training loop: Adam, batch 8, gradient accumulation 4,
  ``drop_last``, warm-up from 1e-9 over 50 iterations, then linear decay to 0
  (``train.warmup_start``, ``train.schedule: linear``; see ``configs/atflrec_synth.yaml``).
  III-4 counts *iterations* as batches ("gradient accumulation performed every 4
  iterations"), so its 50 warm-up iterations are ``warmup_steps: 13`` optimizer steps.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.data.ctr import prompt_args
from recadapt.data.prompts import PromptBuilder, wrap
from recadapt.encoders.text import pool_tokens
from recadapt.errors import ConfigError
from recadapt.models.base import CTRRecommender
from recadapt.models.registry import register_model
from recadapt.nn.peft_methods import active_lora, add_lora
from recadapt.progress import progress_bar

#: ATFLRec's Table I prompt with items by title (= configs/prompts/atflrec_titles.yaml)
DEFAULT_TEMPLATE: dict[str, Any] = {
    "base": "atflrec",
    "instruction": "Based on the user's historical interaction records and the titles of the "
                   "audio, please determine if the user is interested in the target audio and "
                   "answer 'Yes' or 'No'",
    "item": '"{title}"',
    "separator": ", ",
}

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
SAMPLE_RATE = 16000


class ATFLRecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_model: str = Field(
        "minilm", description="frozen text model: a packaged name (minilm, mpnet), hf:ID or a "
        "local folder (paper: RoBERTa, e.g. hf:roberta-base)")
    lora_mode: Literal["dual", "single", "text"] = Field(
        "dual", description="Figure 4: dual = LoRA 'text' on the prompt and LoRA 'audio' on "
        "the audio tokens, fused; single = one LoRA over prompt embeddings + audio tokens in "
        "one sequence; text = one LoRA, prompt only (no audio)")
    lora_r: int = Field(4, ge=1, description="LoRA rank (paper: 4)")
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha (default 2 x lora_r; "
                                     "not given in the paper)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout (not in the paper)")
    lora_targets: list[str] | None = Field(
        None, description="module-name suffixes for LoRA (default: attention query and value)")
    fusion: Literal["sum", "max", "mean"] = Field(
        "sum", description="dual: how the text and audio vectors are fused (Table IV "
        "Multidata; paper's best: sum)")
    audio_pooling: Literal["mean", "max"] = Field(
        "max", description="elementwise pooling of the liked history items' audio tokens "
        "(Table IV Audio; paper's best: max)")
    audio_field: str = Field("audio", description="item column with audio (or video) paths, "
                             "relative to the dataset folder; empty = no audio")
    num_fbank: int = Field(80, ge=1, description="mel bins of the FBank (Table V: 40 or 80)")
    audio_seconds: float = Field(30.0, gt=0, description="first seconds of audio read (paper: "
                                 "30); shorter clips are zero-padded, padding tokens masked")
    audio_tokens: int = Field(32, ge=1, description="audio tokens per item: the FBank frames "
                              "averaged in this many equal time segments (not in the paper)")
    audio_hidden: int = Field(256, ge=1, description="hidden width of the audio embedding "
                              "network (paper: 256)")
    template: str | dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_TEMPLATE),
        description="prompt template: a built-in name, a YAML file or a mapping (default: "
        "ATFLRec's with items by title); always written with the plain wrapper")
    max_length: int = Field(512, ge=16, description="tokens per sequence (paper: 512); longer "
                            "prompts lose their beginning")
    classifier_dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the "
                                      "classifier (none in the paper)")
    eval_batch_size: int = Field(32, ge=1, description="samples per scoring forward pass")


# ----------------------------------------------------------------------------- audio features


def fixed_frames(seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """FBank frames of ``seconds`` of audio (Kaldi ``snip_edges``: whole windows only)."""
    window = int(sample_rate * FRAME_LENGTH_MS * 0.001)
    shift = int(sample_rate * FRAME_SHIFT_MS * 0.001)
    samples = round(seconds * sample_rate)
    return 1 + (samples - window) // shift if samples >= window else 1


def segment_frames(frames: torch.Tensor, total: int, tokens: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames [f, bins]`` (``f <= total``) zero-padded to ``total`` frames and averaged in
    ``tokens`` adaptive segments over the real frames only: ``[tokens, bins]`` and the mask of
    segments holding at least one real frame (others are zero)."""
    frames = frames[:total]
    bins = frames.shape[1]
    padded = frames.new_zeros(total, bins)
    padded[: len(frames)] = frames
    real = frames.new_zeros(1, total)
    real[0, : len(frames)] = 1.0
    mean_all = nn.functional.adaptive_avg_pool1d(padded.T.unsqueeze(0), tokens)[0].T
    share = nn.functional.adaptive_avg_pool1d(real.unsqueeze(0), tokens)[0, 0]
    valid = share > 0
    out = torch.where(valid.unsqueeze(1), mean_all / share.clamp_min(1e-12).unsqueeze(1),
                      torch.zeros_like(mean_all))
    return out, valid


@lru_cache(maxsize=65536)
def _item_tokens(path: str, stamp: tuple[int, int], bins: int, seconds: float,
                 tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Segmented FBank of one file, memoised by path, modification time and size."""
    from recadapt.media.fbank import fbank_file

    frames = fbank_file(path, bins, seconds, SAMPLE_RATE)
    return segment_frames(frames, fixed_frames(seconds), tokens)


def audio_features(paths: list[Path | None], bins: int, seconds: float, tokens: int,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``[len(paths) + 1, tokens, bins]`` features and ``[.., tokens]`` masks, row 0 = padding
    (all masked), row ``i`` = ``paths[i - 1]`` (``None``: no audio, all masked)."""
    feats = torch.zeros(len(paths) + 1, tokens, bins)
    valid = torch.zeros(len(paths) + 1, tokens, dtype=torch.bool)
    for row, path in enumerate(progress_bar(paths, desc="ATFLRec FBank", unit="item",
                                    disable=not progress), 1):
        if path is None:
            continue
        stat = Path(path).stat() if Path(path).is_file() else None
        stamp = (stat.st_mtime_ns, stat.st_size) if stat is not None else (0, 0)
        feats[row], valid[row] = _item_tokens(str(path), stamp, bins, float(seconds), tokens)
    return feats, valid


def pool_history(tokens: torch.Tensor, valid: torch.Tensor, how: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio stacking pooling: ``tokens [B, L, T, d]`` of ``L`` history items pooled over the
    items, per token position and feature, where ``valid [B, L, T]``; returns ``[B, T, d]``
    (zero where no item is valid) and the mask ``[B, T]``."""
    mask = valid.unsqueeze(-1)
    count = valid.sum(1)  # [B, T]
    if how == "mean":
        pooled = (tokens * mask).sum(1) / count.clamp_min(1).unsqueeze(-1).to(tokens.dtype)
    elif how == "max":
        pooled = tokens.masked_fill(~mask, float("-inf")).amax(1)
        pooled = torch.where(count.unsqueeze(-1) > 0, pooled, torch.zeros_like(pooled))
    else:
        raise ValueError(f"unknown audio pooling {how!r}: mean or max")
    return pooled, count > 0


class AudioEmbedding(nn.Module):
    """II-B-1: ``Linear(bins → hidden)``, SiLU, ``Linear(hidden → width)``, BatchNorm over the
    width, per audio token; masked tokens are zero and left out of the batch statistics."""

    def __init__(self, bins: int, width: int, hidden: int = 256) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(bins, hidden), nn.SiLU(), nn.Linear(hidden, width))
        self.norm = nn.BatchNorm1d(width)

    def forward(self, feats: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``feats [..., bins]`` → ``[..., width]``."""
        if valid is None:
            valid = torch.ones(feats.shape[:-1], dtype=torch.bool, device=feats.device)
        x = self.proj(feats[valid])  # [n, width]
        norm = self.norm
        if norm.training and x.shape[0] < 2:  # batch statistics need two values
            x = nn.functional.batch_norm(x, norm.running_mean, norm.running_var, norm.weight,
                                         norm.bias, training=False, eps=norm.eps)
        elif x.shape[0] > 0:
            x = norm(x)
        out = x.new_zeros(*feats.shape[:-1], x.shape[-1])
        return out.index_put((valid,), x)


# ----------------------------------------------------------------------------- the model


def _fuse(a: torch.Tensor, b: torch.Tensor, how: str) -> torch.Tensor:
    if how == "sum":
        return a + b
    if how == "max":
        return torch.maximum(a, b)
    return (a + b) / 2


@register_model("atflrec", ATFLRecConfig)
class ATFLRec(CTRRecommender):
    """Frozen text model + LoRA over prompts and FBank audio tokens (module docstring)."""

    def __init__(self, config: ATFLRecConfig, dataset, run, progress: bool = True) -> None:
        super().__init__()
        from recadapt.config import EncoderSpec
        from recadapt.encoders import load_encoder

        if getattr(dataset, "records", False) and config.lora_mode != "text":
            raise ConfigError(f"model.lora_mode: {config.lora_mode} reads audio, which Alpaca "
                              "records (data.format: alpaca) do not have; set "
                              "model.lora_mode=text (ATFLRec text only)")
        self.config = config
        self.mode = config.lora_mode
        encoder = load_encoder(EncoderSpec(name="text", model=config.text_model))
        self.text_model = encoder.backbone()  # a fresh copy: LoRA modifies it in place
        self.tokenizer = encoder.tokenizer
        for param in self.text_model.parameters():
            param.requires_grad_(False)
        self.width = int(self.text_model.config.hidden_size)
        self.max_length = self._max_length(config)
        self.audio_len = 0 if self.mode == "text" else 2 * config.audio_tokens
        if self.mode == "dual" and self.audio_len > self.max_length:
            raise ConfigError(f"model.audio_tokens: 2 x {config.audio_tokens} audio positions "
                              f"exceed model.max_length {self.max_length}")
        if self.mode == "single" and self.audio_len > self.max_length - 16:
            raise ConfigError(f"model.audio_tokens: 2 x {config.audio_tokens} audio positions "
                              f"leave fewer than 16 of model.max_length {self.max_length} for "
                              "the prompt in lora_mode single; lower audio_tokens")
        alpha = config.lora_alpha if config.lora_alpha is not None else 2.0 * config.lora_r
        self.adapters = ["text", "audio"] if self.mode == "dual" else ["text"]
        for name in self.adapters:
            add_lora(self.text_model, config.lora_r, alpha, config.lora_dropout,
                     config.lora_targets, adapter_name=name)
        self.builder = PromptBuilder(dataset, config.template, run.data.ctr.history_len)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(self.width, 1)
        self.eval_batch_size = config.eval_batch_size
        self.audio_net: AudioEmbedding | None = None
        if self.mode != "text":
            paths = self._audio_paths(dataset, run, config.audio_field)
            feats, valid = audio_features(paths, config.num_fbank, config.audio_seconds,
                                          config.audio_tokens, progress=progress)
            self.register_buffer("audio_feats", feats, persistent=False)
            self.register_buffer("audio_valid", valid, persistent=False)
            self.audio_net = AudioEmbedding(config.num_fbank, self.width, config.audio_hidden)

    # -- construction helpers -------------------------------------------------------------
    def _max_length(self, config: ATFLRecConfig) -> int:
        limit = getattr(self.tokenizer, "model_max_length", None)
        if not isinstance(limit, int) or limit > 100_000:
            limit = int(getattr(self.text_model.config, "max_position_embeddings", 512))
        if config.max_length > limit:
            raise ConfigError(f"model.max_length: {config.max_length} exceeds the "
                              f"{limit} positions of {config.text_model!r}")
        return config.max_length

    @staticmethod
    def _audio_paths(dataset, run, field: str) -> list[Path | None]:
        from recadapt.config import EncoderSpec
        from recadapt.encoders import item_contents

        source = Path(run.data.source).expanduser()
        base = source if source.is_dir() else source.parent
        spec = EncoderSpec(name="audio", model="minilm", fields=[field])
        try:
            return item_contents(dataset, spec, "audio", base_dir=base)
        except ConfigError as err:
            raise ConfigError(f"model.audio_field: {err}") from None

    @property
    def _specials(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text ([CLS] / [SEP])."""
        if not hasattr(self, "_special_ids"):
            tok = self.tokenizer
            full = list(tok("recommend", verbose=False)["input_ids"])
            body = list(tok("recommend", add_special_tokens=False, verbose=False)["input_ids"])
            start = next((i for i in range(len(full) - len(body) + 1)
                          if full[i:i + len(body)] == body), None)
            if start is None:
                raise ConfigError(f"model.text_model: cannot tell the special tokens of "
                                  f"{self.config.text_model!r} apart from the text")
            self._special_ids = (full[:start], full[start + len(body):])
        return self._special_ids

    # -- text -----------------------------------------------------------------------------
    def prompt_texts(self, batch: dict[str, torch.Tensor]) -> list[str]:
        """The plain prompt of every sample (instruction and input on their own lines)."""
        texts = []
        for row in range(batch["item"].shape[0]):
            args = prompt_args(batch, row)
            text = self.builder.input_text(*args)
            texts.append(wrap(self.builder.instruction(args[3]), text, "plain"))
        return texts

    def encode_prompts(self, batch: dict[str, torch.Tensor], budget: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (right-padded), at most ``budget`` tokens per
        row, special tokens kept and the prompt's beginning dropped when too long."""
        tok = self.tokenizer
        prefix, suffix = self._specials
        keep = budget - len(prefix) - len(suffix)
        rows = []
        for text in self.prompt_texts(batch):
            body = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
            rows.append(prefix + body[max(0, len(body) - keep):] + suffix)
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids, mask

    # -- audio ----------------------------------------------------------------------------
    def item_audio(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedded audio tokens of ``items [N]``: ``[N, T, width]`` and mask ``[N, T]``."""
        if self.audio_net is None:
            raise RuntimeError("lora_mode text has no audio")
        valid = self.audio_valid[items]
        return self.audio_net(self.audio_feats[items], valid), valid

    def audio_sequence(self, batch: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[pooled liked-history tokens ; target tokens]``: ``[B, 2T, width]`` and mask."""
        device = self.audio_feats.device
        target = batch["item"].to(device)
        history = batch["history"].to(device)
        liked = (history > 0) & (batch["history_label"].to(device) >= 0.5)
        needed = torch.unique(torch.cat([target, history[liked]]))
        emb, valid = self.item_audio(needed)  # each distinct item once (BatchNorm statistics)
        row = torch.zeros(self.audio_feats.shape[0], dtype=torch.long, device=device)
        row[needed] = torch.arange(len(needed), device=device)
        hist_rows = row[history]  # [B, L]; not-liked entries are masked below
        hist_valid = valid[hist_rows] & liked.unsqueeze(-1)
        pooled, pooled_valid = pool_history(emb[hist_rows], hist_valid,
                                            self.config.audio_pooling)
        target_rows = row[target]
        return (torch.cat([pooled, emb[target_rows]], 1),
                torch.cat([pooled_valid, valid[target_rows]], 1))

    # -- forward --------------------------------------------------------------------------
    def _run(self, adapter: str, mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """Mean-pooled last states with LoRA ``adapter``; rows without any valid token get
        zeros (they attend to everything in the pass, so attention stays finite)."""
        empty = ~mask.bool().any(1)
        attend = torch.where(empty.unsqueeze(1), torch.ones_like(mask), mask)
        with active_lora(self.text_model, adapter):
            hidden = self.text_model(attention_mask=attend, **inputs).last_hidden_state
        pooled = pool_tokens(hidden, mask, "mean")
        return torch.where(empty.unsqueeze(1), torch.zeros_like(pooled), pooled)

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The vector the classifier reads, ``[B, width]``."""
        device = self.classifier.weight.device
        if self.mode == "single":
            return self._single(batch)
        ids, mask = self.encode_prompts(batch, self.max_length)
        ids, mask = ids.to(device), mask.to(device)
        text = self._run("text", mask, input_ids=ids)
        if self.mode == "text":
            return text
        audio, audio_mask = self.audio_sequence(batch)
        audio_vec = self._run("audio", audio_mask.long(), inputs_embeds=audio)
        return _fuse(text, audio_vec, self.config.fusion)

    def _single(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One sequence per row: prompt word embeddings, then the audio tokens, then padding."""
        device = self.classifier.weight.device
        ids, mask = self.encode_prompts(batch, self.max_length - self.audio_len)
        ids, mask = ids.to(device), mask.to(device)
        words = self.text_model.get_input_embeddings()(ids)  # [B, Lt, d]
        audio, audio_mask = self.audio_sequence(batch)  # [B, 2T, d]
        lengths = mask.sum(1, keepdim=True)  # [B, 1]
        size = ids.shape[1] + self.audio_len
        pos = torch.arange(size, device=device).unsqueeze(0)  # [1, S]
        is_text = pos < lengths
        audio_pos = (pos - lengths).clamp(0, self.audio_len - 1)
        is_audio = ~is_text & (pos - lengths < self.audio_len)
        text_part = words.gather(1, pos.clamp(max=ids.shape[1] - 1).expand(len(ids), -1)
                                 .unsqueeze(-1).expand(-1, -1, self.width))
        audio_part = audio.gather(1, audio_pos.unsqueeze(-1).expand(-1, -1, self.width))
        embeds = torch.where(is_text.unsqueeze(-1), text_part,
                             torch.where(is_audio.unsqueeze(-1), audio_part,
                                         torch.zeros_like(audio_part)))
        seq_mask = is_text | (is_audio & audio_mask.gather(1, audio_pos))
        return self._run("text", seq_mask.long(), inputs_embeds=embeds)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(batch))).squeeze(-1)

    # -- reporting ------------------------------------------------------------------------
    def lora_parameters(self) -> dict[str, int]:
        """Trainable LoRA parameters per adapter name."""
        counts = dict.fromkeys(self.adapters, 0)
        for name, param in self.text_model.named_parameters():
            for adapter in self.adapters:
                if f".lora_A.{adapter}." in name or f".lora_B.{adapter}." in name:
                    counts[adapter] += param.numel()
        return counts
