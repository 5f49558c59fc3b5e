"""Explicit registry from config names to model classes and their config classes.

Each model module calls :func:`register_model` where the model is defined (no importlib-by-name
magic); :func:`get_model` imports ``recadapt.models`` once so every built-in is registered.
The ``model`` section of a run config is checked here, where models are built
(:func:`resolve_model`), so that ``recadapt.config`` stays free of any model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from recadapt.config import DEFAULT_MODEL, RunConfig, describe_error
from recadapt.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from recadapt.data.dataset import Dataset
    from recadapt.models.base import Recommender


@dataclass(frozen=True)
class ModelEntry:
    model_class: type[Recommender]
    config_class: type[BaseModel]


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config_class: type[BaseModel]):
    """Class decorator: ``@register_model("sasrec", SASRecConfig)``."""

    def decorate(cls: type[Recommender]) -> type[Recommender]:
        if name in _MODELS and _MODELS[name].model_class is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _MODELS[name] = ModelEntry(cls, config_class)
        return cls

    return decorate


def model_names() -> list[str]:
    import recadapt.models  # noqa: F401  (registers the built-in models)

    return sorted(_MODELS)


def get_model(name: str) -> ModelEntry:
    names = model_names()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.name: unknown model {name!r}{hint}; choose one of {names}")
    return _MODELS[name]


def model_config(config: RunConfig) -> BaseModel:
    """The ``model`` section validated by the chosen model's own config class."""
    params: dict[str, Any] = dict(config.model)
    name = params.pop("name", None) or DEFAULT_MODEL
    entry = get_model(str(name))
    try:
        return entry.config_class(**params)
    except ValidationError as err:
        raise ConfigError(describe_error(err, entry.config_class, prefix="model.")) from None


def stored_model_section(model: dict[str, Any]) -> dict[str, Any]:
    """A stored run's model section (its ``config.yaml``, every setting written out) with the
    settings it predates filled in as the run was trained: a config class whose newer fields
    changed the behaviour that their absence meant lists the old values in
    ``values_of_older_runs`` (A-LLMRec's fidelity settings), so such a run reloads as it
    trained and never compares equal to a config under the new defaults."""
    entry = get_model(str(model.get("name") or DEFAULT_MODEL))
    older: dict[str, Any] = getattr(entry.config_class, "values_of_older_runs", {})
    return {**older, **model}


def resolve_model(config: RunConfig) -> RunConfig:
    """``config`` with its ``model`` section checked against the model (its keys, its task)
    and every default written out, as a run's ``config.yaml`` stores it."""
    model_cfg = model_config(config)
    entry = get_model(str(config.model.get("name") or DEFAULT_MODEL))
    if config.data.task not in entry.model_class.tasks:
        raise ConfigError(
            f"model.name: {entry.model_class.name!r} does not do data.task={config.data.task!r} "
            f"(it does {sorted(entry.model_class.tasks)}); choose another model or task"
        )
    # once more through the class: pydantic does not validate defaults, so a default written
    # as 16 for a float field would dump as 16 here and read back as 16.0 from the run's
    # config.yaml; the second pass makes resolve(dump(config)) == config
    settled = type(model_cfg)(**model_cfg.model_dump())
    resolved = config.model_copy(deep=True)
    resolved.model = {"name": config.model.get("name") or DEFAULT_MODEL, **settled.model_dump()}
    return resolved


def build_model(config: RunConfig, dataset: Dataset, **stages: Recommender) -> Recommender:
    """The model of ``config`` on ``dataset``; ``stages`` are the trained prerequisite runs
    it builds on (``Recommender.prerequisites``), loaded by ``recadapt.train.stages``."""
    entry = get_model(str(config.model.get("name") or DEFAULT_MODEL))
    return entry.model_class.create(model_config(config), dataset, config, **stages)
