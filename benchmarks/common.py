"""Helpers every benchmark shares: locating the real data, running configs, writing results.

Each benchmark prints a table and writes ``benchmarks/results/NAME.json``: a list of rows with
``dataset``, ``method``, ``setting`` and the keys of ``metrics.json`` (test split) and
``efficiency.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from recadapt.config import RunConfig, dump_config, validate_config
from recadapt.train.loop import train_run

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def shared_data(name: str) -> Path:
    """``$RECADAPT_SHARED_DATA/name`` (default ``../shared/data``); exits cleanly if absent."""
    root = Path(os.environ.get("RECADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / name
    if not path.exists():
        sys.exit(f"benchmark data {path} is absent; set RECADAPT_SHARED_DATA to its folder")
    return path


def same_config(stored: Path, config: RunConfig) -> bool:
    """Whether the run config at ``stored`` is ``config`` (both normalised by the validator,
    so fields added with defaults since the run was trained do not count as changes)."""
    from recadapt.models.registry import resolve_model
    from recadapt.train.runs import read_run_config

    return dump_config(read_run_config(stored.parent)) == dump_config(resolve_model(config))


def set_aside_if_changed(run_dir: Path, config: RunConfig) -> None:
    """A kept run trained under another config is never reused nor deleted: it is moved
    aside to ``FOLDER.replaced-N`` (nothing is lost), leaving ``run_dir`` free."""
    stored = run_dir / "config.yaml"
    if not stored.is_file() or same_config(stored, config):
        return
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.replaced-{n}")).exists():
        n += 1
    print(f"{run_dir} was trained under another config: moved to {aside.name}", flush=True)
    run_dir.rename(aside)


def run_config(raw: dict[str, Any], *, dataset: str, method: str, setting: str,
               keep_dir: Path | None = None, resume: bool = False) -> dict[str, Any]:
    """Train ``raw`` in a fresh run directory and return one result row.

    ``keep_dir``: train there and keep the run; with ``resume``, a run left there by an
    interrupted invocation (same config) continues from its last finished epoch, and a finished
    one is only evaluated — long runs then span several sessions. A kept run trained under
    another config is never resumed: it is moved aside and ``method`` trained from scratch."""
    config = validate_config(raw)
    run_dir = keep_dir or Path(tempfile.mkdtemp(prefix="recadapt-bench-")) / "run"
    if resume and keep_dir is not None:
        set_aside_if_changed(keep_dir, config)
    again = resume and keep_dir is not None and (keep_dir / "checkpoints" /
                                                 "last.safetensors").is_file()
    if keep_dir is not None and keep_dir.exists() and not again:
        shutil.rmtree(keep_dir)
    if again:
        print(f"resuming {method} from {keep_dir}", flush=True)
    try:
        result = train_run(config, run_dir, progress=sys.stderr.isatty(), resume=again)
    finally:
        if keep_dir is None:
            shutil.rmtree(run_dir.parent, ignore_errors=True)
    return {"dataset": dataset, "method": method, "setting": setting,
            **result.metrics["test"], "valid": result.metrics["valid"], **result.efficiency,
            "curve": learning_curve(result.history)}


def learning_curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per validated epoch: the epoch, cumulative training seconds, mean loss and the
    validation metrics (``history.json`` of the run, which is deleted with it)."""
    curve, seconds = [], 0.0
    for record in history:
        seconds += float(record.get("seconds", 0.0))
        if "valid" in record:
            curve.append({"epoch": record["epoch"], "seconds": round(seconds, 2),
                          "loss": record.get("loss"), **record["valid"]})
    return curve


def write_results(name: str, rows: list[dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if not name.endswith("_quick"):
        from tables import write_docs  # docs/benchmark_results.md lists every measured row

        write_docs()
    return path


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = ["dataset", "method", "setting", *columns]
    cells = [[_cell(row.get(c)) for c in head] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, cells)])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)


def measure_steps(raw: dict, steps: int, warmup: int) -> dict:
    """Build the model and time ``steps`` training steps (after ``warmup``) on the loop's
    first batches: seconds per step, peak and net peak memory, parameters, cache size."""
    import torch

    from recadapt.config import validate_config
    from recadapt.data.batching import (
        EpochPermutation,
        WindowDataset,
        collate_windows,
        train_windows,
    )
    from recadapt.models.registry import get_model
    from recadapt.train.efficiency import PeakMemory, _current_rss_mb, parameter_counts
    from recadapt.train.runs import item_counts_tensor, prepare_data
    from recadapt.train.stages import build_with_stages

    config = validate_config(raw)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = prepare_data(config)
    windows = train_windows(prepared.split.train, config.data.max_seq_len)
    lengths = (windows.history > 0).sum(axis=1)
    sampler = EpochPermutation(len(windows), config.train.seed, lengths, config.train.batch_size)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), config.train.batch_size,
                                         sampler=sampler, collate_fn=collate_windows)
    baseline_mb = _current_rss_mb() or 0.0
    torch.manual_seed(config.train.seed)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(item_counts_tensor(prepared.split))
    model.train()
    optimizer = torch.optim.Adam(model.parameter_groups(config.train.lr), lr=config.train.lr)
    batches = iter(loader)
    seconds = []
    with PeakMemory(torch.device("cpu")) as memory:
        for step in range(warmup + steps):
            batch = next(batches)
            started = time.perf_counter()
            loss = model(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step >= warmup:
                seconds.append(time.perf_counter() - started)
    trainable, total = parameter_counts(model)
    per_step = sum(seconds) / len(seconds)
    cache_bytes = sum(
        sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        for folder in Path(config.cache.dir).glob("*") if folder.is_dir()
    ) if _reads_cache(config, get_model(config.model["name"]).model_class) else 0
    return {
        "seconds_per_step": per_step,
        "steps_per_epoch": len(loader),
        "seconds_per_epoch": per_step * len(loader),
        "measured_steps": len(seconds),
        "peak_memory_mb": memory.peak_mb,
        "baseline_memory_mb": baseline_mb,
        "net_peak_memory_mb": memory.peak_mb - baseline_mb,
        "trainable_params": trainable,
        "total_params": total,
        "cache_bytes": cache_bytes,
        "final_loss": float(loss.item()),
    }


def measure_steps_in_worker(raw: dict, steps: int, warmup: int) -> dict:
    """:func:`measure_steps` in a fresh Python process, so its memory is its own."""
    proc = subprocess.run(
        [sys.executable, __file__, "--measure-steps", json.dumps(raw), "--steps", str(steps),
         "--warmup", str(warmup)],
        capture_output=True, text=True, cwd=REPO / "benchmarks",
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed for {raw['model']}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _reads_cache(config: Any, model_class: type) -> bool:
    from recadapt.models.registry import model_config

    section = model_config(config)
    return bool(getattr(model_class, "cacheable", False)
                and getattr(section, "cached", False))


if __name__ == "__main__":  # the worker of measure_steps_in_worker
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--measure-steps", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    cli = parser.parse_args()
    print(json.dumps(measure_steps(json.loads(cli.measure_steps), cli.steps, cli.warmup)))
