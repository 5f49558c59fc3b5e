"""Typed run configuration: YAML files + ``key.sub=value`` overrides, validated by pydantic.

Layers, lowest first: built-in defaults < the YAML file < command-line overrides. Unknown keys
and wrong types are refused with a one-line message naming the key and the closest valid one.
The ``model`` section is a mapping here: it is validated by the config class its model
registered (``recadapt.models.registry.resolve_model``) where models are built, so each model
declares its own hyperparameters with defaults and help text and importing this module imports
no model.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recadapt.errors import ConfigError

DEFAULT_MODEL = "sasrec"


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RetrievalConfig(Section):
    """``data.ctr.retrieval``: keep each sample's behaviours most similar to its target
    (RecLoRA 3.4, ReLLa; ``recadapt.data.retrieval``) instead of the most recent."""

    model: str = Field("smollm2-135m", description="LLM whose last hidden state represents "
                       "an item's text (hf:ID, a folder or a packaged name)")
    item_format: str = Field("{title}", description="item text over item columns")
    dims: int = Field(64, ge=1, description="PCA dimensions of the item representations")
    long_len: int = Field(60, ge=1, description="behaviours kept for the ID (CTR) model")
    short_len: int = Field(10, ge=1, description="behaviours kept for the prompt")
    long_from: Literal["similar", "recent"] = Field(
        "similar", description="the ID model's behaviours: retrieved, or the most recent "
        "(RecLoRA Table 3 'w/o long retriever')")
    short_from: Literal["similar", "recent"] = Field(
        "similar", description="the prompt's behaviours: retrieved, or the most recent "
        "(Table 3 'w/o short retriever')")


class CTRDataConfig(Section):
    """The CTR protocol (recadapt.data.ctr): labels, histories, global-time split, K-shot."""

    label_threshold: float = Field(
        4.0, description="rating >= threshold is a positive (MovieLens 4; half-star scales 3.5)"
    )
    negatives: int = Field(
        1, ge=0, description="data without ratings: sampled label-0 items per interaction"
    )
    split: list[float] = Field(default_factory=lambda: [0.8, 0.1, 0.1],
                               description="train/valid/test ratios cut by global time")
    history_len: int = Field(10, ge=1, description="behaviours before each sample it sees")
    k_shot: int | None = Field(None, ge=1, description="train on K samples (fixed by seed)")
    seed: int = Field(0, description="seed of K-shot subsets and sampled negatives")
    max_eval_samples: int | None = Field(
        None, ge=2, description="evaluate on a seeded subsample of valid/test (slow LLMs)"
    )
    max_test_samples: int | None = Field(
        None, ge=2, description="test subsample size when it should differ from "
        "max_eval_samples: a larger one narrows the reported AUC's error bar for one pass, "
        "while validation after every epoch stays cheap"
    )
    retrieval: RetrievalConfig | None = Field(
        None, description="semantic retrieval: history_len is then the pool searched; the ID "
        "model reads retrieval.long_len behaviours, the prompt retrieval.short_len"
    )


class DataConfig(Section):
    task: Literal["next_item", "ctr"] = Field(
        "next_item", description="next_item: rank the next item (leave-one-out); ctr: predict "
        "a label per (user, item) sample (AUC, LogLoss)"
    )
    source: str = Field("dslabs", description="dataset path, or 'dslabs' (packaged MovieLens)")
    format: Literal["auto", "recbole", "unisrec", "dslabs", "microlens", "minionerec", "csv",
                    "tsv", "parquet", "jsonl", "alpaca"] = (
        Field("auto", description="file format; 'auto' detects it from the files (alpaca: "
              "Yes/No instruction records, CTR only)")
    )
    name: str | None = Field(None, description="dataset name in reports (default: from source)")
    columns: dict[str, str] | None = Field(
        None, description="column names for table formats: keys user, item, timestamp, rating"
    )
    item_path: str | None = Field(None, description="optional item table for table formats")
    text_fields: list[str] | None = Field(None, description="item text columns (default: all)")
    title_field: str | None = Field(None, description="column shown as the item's name")
    k_core: int = Field(0, ge=0, description="keep users and items with >= k interactions")
    split: Literal["leave_one_out"] = Field(
        "leave_one_out", description="next-item protocol: last item test, second-to-last valid"
    )
    max_seq_len: int = Field(50, ge=1, description="most recent items a model sees")
    max_windows_per_user: int | None = Field(
        None, ge=1, description="train on each user's most recent windows of max_seq_len items "
        "only (1 = SASRec.pytorch); default: every training item is a target once"
    )
    k_shot_users: int | None = Field(
        None, ge=1, description="next-item few-shot: train on K users' sequences only (drawn "
        "once with train.seed); every user is still evaluated"
    )
    cold_users: int | None = Field(
        None, ge=1, description="next-item cold-user scenario: hold out this many users, train "
        "without them and test on their first cold_user_interactions items")
    cold_user_interactions: int = Field(3, ge=2, description="a cold user's interactions")
    ctr: CTRDataConfig = Field(default_factory=CTRDataConfig)


class TrainConfig(Section):
    epochs: int = Field(50, ge=0, description="maximum number of epochs")
    batch_size: int = Field(256, ge=1, description="sequences per optimisation step")
    grad_accum_steps: int = Field(1, ge=1, description="batches accumulated per step")
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "linear"] = Field(
        "constant", description="after warm-up: keep lr, or decay linearly to 0"
    )
    warmup_steps: int = Field(0, ge=0, description="steps of linear warm-up from 0")
    max_grad_norm: float | None = Field(None, gt=0, description="gradient clipping")
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    monitor: str = Field("NDCG@10", description="validation metric for early stopping")
    eval_every: int = Field(1, ge=1, description="validate every N epochs")
    drop_last: bool = Field(False, description="drop each epoch's incomplete last batch")
    warmup_start: float = Field(
        0.0, ge=0, description="learning rate at the first warm-up step (ATFLRec: 1e-9)"
    )
    time_budget_minutes: float | None = Field(
        None, gt=0, description="stop after this many minutes of training steps (validation not "
        "counted), mid-epoch if need be; the best validated weights so far are evaluated"
    )
    seed: int = 42
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no", description="passed to accelerate; 'fp16' needs a GPU"
    )
    cpu: bool = Field(False, description="force CPU even when an accelerator is present")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: all)")

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        """YAML reads a bare ``no`` (``train.mixed_precision=no``) as false: mean 'no'."""
        return "no" if value is False else value


class EvalConfig(Section):
    protocol: Literal["full", "sampled"] = Field(
        "full", description="rank the target among all items (full) or 1 + N negatives (sampled)"
    )
    ks: list[int] = Field(default_factory=lambda: [10, 20], description="cut-offs for HR/NDCG")
    num_negatives: int = Field(100, ge=1, description="negatives per user (sampled protocol)")
    batch_size: int = Field(1024, ge=1)
    max_users: int | None = Field(
        None, ge=1, description="evaluate a seeded subsample of this many valid/test users "
        "(LLM rankers cost seconds per user); every model of a comparison gets the same users"
    )
    seed: int = 0


class EncoderSpec(Section):
    """One frozen foundation model over one item modality (a tower's input).

    Content-based models (IISAN, CROSSAN, the embedded-PEFT baselines, ...) read the list
    ``encoders`` in order: for IISAN the first entry is the text (or larger) modality and the
    second the image (or second text field) modality.
    """

    name: str = Field(description="modality name used in reports, e.g. text, title, image")
    model: str = Field(
        description="hf:ID, a local model folder, or a packaged name "
        "(minilm, mpnet, smollm2-135m, efficientnet-lite0, efficientnet-lite2, whisper-tiny-en)"
    )
    kind: Literal["auto", "text", "llm", "image", "audio", "video"] = Field(
        "auto", description="what the model is; auto: from the packaged name or the HF config. "
        "video over an image model (e.g. efficientnet-lite0) runs it on sampled frames and "
        "averages over time"
    )
    fields: list[str] | None = Field(
        None, description="item columns giving the content (text: joined; image: one path "
        "column); default: all text fields"
    )
    template: str | None = Field(
        None, description="text template over the fields, e.g. 'Title: {title}. Genres: {class}'"
    )
    pooling: Literal["auto", "cls", "mean", "last"] = Field(
        "auto", description="token pooling per layer; auto: mean for text encoders, last token "
        "for causal LLMs (CNN stages are always global-average pooled)"
    )
    max_length: int = Field(64, ge=1, description="tokens per item text (longer is cut)")
    batch_size: int = Field(32, ge=1, description="items per forward pass when encoding")
    seconds: float | None = Field(
        None, gt=0, description="audio/video: read only the first N seconds (default: 30 for "
        "audio, 3 for video, as in the papers)"
    )
    frames: int = Field(16, ge=1, description="video: evenly spaced frames decoded per clip")


class CacheConfig(Section):
    """Where and how per-layer encoder states are stored (see recadapt.cache)."""

    dir: str = Field(".cache/recadapt", description="root folder of the state caches")
    dtype: Literal["fp16", "fp32"] = Field("fp16", description="storage precision")
    shard_items: int = Field(2048, ge=1, description="items per shard file (resume unit)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the frozen encoder runs while a cache is built; auto: this "
        "process's GPU when there is one (its local GPU under accelerate launch), else the CPU"
    )


class StageConfig(Section):
    """A prerequisite run of a model (its frozen collaborative model, A-LLMRec's stage 1,
    RecLoRA's CTR model): a trained run folder, or the settings to train one into
    ``RUN/stages/FIELD`` first (``recadapt.train.stages``). Models subclass it to set their
    defaults (e.g. the model a stage trains)."""

    run: str | None = Field(None, description="a trained run folder (frozen), or a run built "
                            "on one (its stage of this name is used); empty: trained first "
                            "into RUN/stages/FIELD")
    model: dict[str, Any] = Field(default_factory=dict,
                                  description="the prerequisite's model section")
    train: dict[str, Any] = Field(
        default_factory=dict, description="its train settings over the defaults (seed, threads, "
        "device, precision and the monitored metric are inherited from the run)")
    data: dict[str, Any] = Field(default_factory=dict,
                                 description="overrides of the run's data section")


class RunConfig(Section):
    """A complete run: what data, which model, how to train and evaluate."""

    data: DataConfig = Field(default_factory=DataConfig)
    encoders: list[EncoderSpec] = Field(
        default_factory=list, description="frozen foundation models of content-based models"
    )
    cache: CacheConfig = Field(default_factory=CacheConfig)
    model: dict[str, Any] = Field(default_factory=lambda: {"name": DEFAULT_MODEL})
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def describe_error(err: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """First pydantic error as one line: the dotted key, the problem, the closest valid key."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = prefix + ".".join(loc)
    if first["type"] == "extra_forbidden":
        valid = _valid_keys(root, loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f" (did you mean {prefix + '.'.join([*loc[:-1], close[0]])!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    return f"{key}: {first['msg']} (got {first.get('input')!r})"


def _valid_keys(root: type[BaseModel], path: list[str]) -> list[str]:
    model: Any = root
    for part in path:
        if part.isdigit():  # an entry of a list section such as encoders.0
            args = typing.get_args(model)
            model = args[0] if args else None
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "model.name=gru4rec"]`` → nested dict; values are parsed as YAML."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key.sub=value, e.g. train.epochs=10")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return result


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = deep_merge(current, value)
        elif isinstance(value, dict) and isinstance(current, list) and all(
            str(k).isdigit() for k in value
        ):  # `encoders.1.model=mpnet` overrides one entry of a list section
            merged = list(current)
            for index, entry in value.items():
                i = int(index)
                if i >= len(merged):
                    raise ConfigError(f"{key}.{i}: there are only {len(merged)} entries")
                if isinstance(entry, dict) and isinstance(merged[i], dict):
                    merged[i] = deep_merge(merged[i], entry)
                else:
                    merged[i] = entry
            out[key] = merged
        else:
            out[key] = value
    return out


def read_yaml(path: Path, label: str) -> Any:
    """The YAML document in ``path``; a missing file or bad YAML is one line starting with
    ``label`` (with the line of the error)."""
    if not path.is_file():
        raise ConfigError(f"{label} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{label}{where}: not valid YAML") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (optional), apply overrides, validate every section but ``model``
    (``recadapt.models.registry.resolve_model`` checks that one against its model)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        loaded = read_yaml(path, f"config file {path}")
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
        raw = loaded or {}
    raw = deep_merge(raw, parse_overrides(overrides or []))
    return validate_config(raw)


def validate_config(raw: dict[str, Any]) -> RunConfig:
    try:
        config = RunConfig(**raw)
    except ValidationError as err:
        raise ConfigError(describe_error(err, RunConfig)) from None
    if config.data.format == "alpaca" and config.data.task != "ctr":
        raise ConfigError("data.format: alpaca records are labelled Yes/No samples; set "
                          "data.task=ctr")
    if config.data.task == "ctr":
        reported = ["AUC", "LogLoss"]
        if "monitor" not in config.train.model_fields_set:
            config.train.monitor = "AUC"
    else:
        prefix = "sampled_" if config.eval.protocol == "sampled" else ""
        reported = [f"{prefix}{m}@{k}" for k in config.eval.ks for m in ("HR", "NDCG")]
    if config.train.monitor not in reported:
        raise ConfigError(
            f"train.monitor: {config.train.monitor!r} is not reported with "
            f"data.task={config.data.task}, eval.ks={config.eval.ks} and "
            f"eval.protocol={config.eval.protocol}; choose one of {reported}"
        )
    if not isinstance(config.model.get("name", DEFAULT_MODEL), str):
        raise ConfigError(f"model.name: expected a model name (got {config.model['name']!r})")
    config.model = {"name": config.model.get("name") or DEFAULT_MODEL,
                    **{k: v for k, v in config.model.items() if k != "name"}}
    return config


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
