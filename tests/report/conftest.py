"""Run directories for report tests: two tiny models trained through the real pipeline on the
same split (so they can be tested against each other), and a writer of hand-made run folders
for the files a tiny training run does not produce (method analyses, broken files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recadapt.config import validate_config
from recadapt.train.loop import train_run


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, cyclic_writer) -> tuple[Path, Path]:
    """SASRec and GRU4Rec on the cyclic data, 3 epochs each: every file the loop writes."""
    root = tmp_path_factory.mktemp("report-runs")
    csv = cyclic_writer(root / "cyclic.csv")
    runs = []
    for name in ("sasrec", "gru4rec"):
        config = validate_config({
            "data": {"source": str(csv), "max_seq_len": 10},
            "model": {"name": name, "hidden_size": 16},
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "num_threads": 1},
            "eval": {"ks": [5, 10]}})
        train_run(config, root / name, progress=False)
        runs.append(root / name)
    return runs[0], runs[1]


def write_run(folder: Path, *, config: dict | None = None, metrics: dict | None = None,
              **files: object) -> Path:
    """A run folder by hand: ``config.yaml`` and ``metrics.json`` (``metrics=None`` leaves it
    out: an unfinished run), plus any ``name_json=value`` as ``name.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = config or {"data": {"source": str(folder / "absent-data")},
                        "model": {"name": "crossan"}, "train": {"monitor": "NDCG@10"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    for name, value in files.items():
        path = folder / name.replace("_json", ".json")
        path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
    return folder


@pytest.fixture
def run_writer():
    return write_run
