"""Run under ``accelerate launch`` by ``test_distributed.py`` (every process runs it):
``distributed_job.py CONFIG OUT_ROOT`` trains SASRec from CONFIG into ``OUT_ROOT/sasrec``
interrupted after its second epoch and resumed, then a model that needs a prerequisite run
(trained into ``OUT_ROOT/needs/stages/warm_run``, as A-LLMRec's stages are)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from recadapt import registry
from recadapt.config import load_config
from recadapt.models.idrec import SASRec, SASRecConfig
from recadapt.pipeline import stage_config
from recadapt.train.loop import train_run


class NeedsRunConfig(SASRecConfig):
    warm_run: str | None = None


class NeedsRun(SASRec):
    """SASRec that declares a prerequisite run (as ``tests/train/test_loop.py``'s)."""

    name = "test-needs-run"

    @classmethod
    def prerequisites(cls, config, run):
        if config.warm_run is not None:
            return {}
        return {"warm_run": stage_config(run, {"name": "sasrec", "hidden_size": 8},
                                         {"epochs": 1, "batch_size": 16})}

    @classmethod
    def create(cls, config, dataset, run):
        if config.warm_run is None or not (Path(config.warm_run) / "metrics.json").is_file():
            raise RuntimeError("model.warm_run: not a finished run")
        return super().create(config, dataset, run)


def stop_after_second_epoch(epoch: int, record: dict) -> None:
    if epoch == 2:
        raise KeyboardInterrupt


def main(config_path: str, out_root: str) -> None:
    out = Path(out_root)
    config = load_config(config_path, [])
    with contextlib.suppress(KeyboardInterrupt):  # on every process, after epoch 2
        train_run(config, out / "sasrec", progress=False, on_epoch_end=stop_after_second_epoch)
    train_run(config, out / "sasrec", resume=True, progress=False)

    registry.model_names()  # the built-ins first, so this one is only added
    registry._MODELS[NeedsRun.name] = registry.ModelEntry(NeedsRun, NeedsRunConfig)
    needs = load_config(config_path, ["model.name=test-needs-run", "train.epochs=1"])
    train_run(needs, out / "needs", progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
