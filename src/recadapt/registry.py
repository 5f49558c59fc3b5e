"""Explicit registry from config names to model classes and their config classes.

Each model module calls :func:`register_model` where the model is defined (no importlib-by-name
magic); :func:`get_model` imports ``recadapt.models`` once so every built-in is registered.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recadapt.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

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
