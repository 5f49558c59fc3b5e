"""A model for tests of prerequisite runs: SASRec that needs a run trained first
(``warm_run``), as A-LLMRec needs its frozen CF model and stage 1. Shared by
``test_loop.py`` (in-process) and ``distributed_job.py`` (under ``accelerate launch``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from recadapt.errors import ConfigError
from recadapt.models import registry
from recadapt.models.idrec import SASRec, SASRecConfig
from recadapt.train.stages import stage_config


class NeedsRunConfig(SASRecConfig):
    warm_run: str | None = None
    warm_model: dict = Field(default_factory=lambda: {"name": "sasrec", "hidden_size": 8})
    warm_train: dict = Field(default_factory=lambda: {"epochs": 1, "batch_size": 64})


class NeedsRun(SASRec):
    name = "test-needs-run"

    @classmethod
    def prerequisites(cls, config, run):
        if config.warm_run is not None:
            return {}
        return {"warm_run": stage_config(run, config.warm_model, config.warm_train)}

    @classmethod
    def create(cls, config, dataset, run):
        if config.warm_run is None or not (Path(config.warm_run) / "metrics.json").is_file():
            raise ConfigError("model.warm_run: not a finished run")
        return super().create(config, dataset, run)


ENTRY = registry.ModelEntry(NeedsRun, NeedsRunConfig)
