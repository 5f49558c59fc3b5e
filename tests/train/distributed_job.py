"""Run under ``accelerate launch`` by ``test_distributed.py`` (every process runs it):
``distributed_job.py CONFIG OUT_ROOT`` trains SASRec from CONFIG into ``OUT_ROOT/sasrec``
interrupted after its second epoch and resumed, then a model that needs a prerequisite run
(trained into ``OUT_ROOT/needs/stages/warm``, as A-LLMRec's stages are). It ends as a
user's own script should under a launch, with ``exit_launched_process``; if that returned, the
launch would fail with the message below."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from needs_run import ENTRY, NeedsRun

from recadapt.config import load_config
from recadapt.distributed import exit_launched_process
from recadapt.models import registry
from recadapt.train.loop import train_run


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
    registry._MODELS[NeedsRun.name] = ENTRY
    needs = load_config(config_path, ["model.name=test-needs-run", "train.epochs=1"])
    train_run(needs, out / "needs", progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    exit_launched_process(0)
    sys.exit("exit_launched_process returned in a launched process")
