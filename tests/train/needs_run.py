"""A model for tests of prerequisite runs: SASRec that needs a run trained first
(``warm``), as A-LLMRec needs its frozen CF model and stage 1. Shared by
``test_loop.py`` (in-process) and ``distributed_job.py`` (under ``accelerate launch``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from recadapt.config import StageConfig
from recadapt.models import registry
from recadapt.models.base import given_stage
from recadapt.models.idrec import SASRec, SASRecConfig


class WarmStage(StageConfig):
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "sasrec", "hidden_size": 8})
    train: dict[str, Any] = Field(default_factory=lambda: {"epochs": 1, "batch_size": 64})


class NeedsRunConfig(SASRecConfig):
    warm: WarmStage = Field(default_factory=WarmStage)


class NeedsRun(SASRec):
    name = "test-needs-run"

    @classmethod
    def prerequisites(cls, config, run):
        return {"warm": config.warm}

    @classmethod
    def create(cls, config, dataset, run, **stages):
        given_stage(stages, "warm", cls.name)  # a finished run, loaded frozen
        return super().create(config, dataset, run)


ENTRY = registry.ModelEntry(NeedsRun, NeedsRunConfig)
