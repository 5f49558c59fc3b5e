"""The ``recadapt`` command line: one config format and one set of protocols for every method."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from recadapt.errors import RecAdaptError

app = typer.Typer(
    help="Adapt frozen foundation models to recommendation, and train, evaluate and compare "
    "recommenders on your own data with one config format and one set of protocols.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Look at datasets before training on them, or generate a synthetic "
                       "one.", no_args_is_help=True)
app.add_typer(data_app, name="data")
cache_app = typer.Typer(help="Build and inspect caches of frozen-encoder states.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")

_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(func: F) -> F:
    """Turn user-fixable errors into one line on stderr and exit code 1 (traceback: --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RecAdaptError as err:
            if _state["debug"]:
                raise
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; a training run continues with --resume", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
) -> None:
    _state["debug"] = debug
    from recadapt.progress import quiet_foreign_bars

    quiet_foreign_bars()  # a log: Hugging Face's own loading bars stay out of it


@app.command()
@_friendly
def train(
    config: Annotated[Path | None, typer.Argument(help="YAML config (omit for defaults).")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides such as train.lr=0.001 model.name=gru4rec.",
                       show_default=False),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")] = Path(
        "runs/latest"
    ),
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a model and write config, metrics and efficiency figures to a run directory."""
    from recadapt.config import load_config
    from recadapt.data.load import resolve_source
    from recadapt.distributed import is_main_process
    from recadapt.train.loop import train_run

    overrides = list(overrides or [])
    if config is not None and "=" in str(config) and not config.exists():
        overrides.insert(0, str(config))  # no config file, only overrides
        config = None
    cfg = resolve_source(load_config(config, overrides))
    result = train_run(cfg, out, resume=resume, progress=not quiet)
    if is_main_process():  # once under accelerate launch
        typer.echo(json.dumps({"run_dir": str(out), **result.metrics}, indent=2))


@app.command()
@_friendly
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    protocol: Annotated[str, typer.Option(help="full (all items) or sampled.")] = "full",
    negatives: Annotated[int | None, typer.Option(help="Negatives per user (sampled).")] = None,
    part: Annotated[str, typer.Option(help="test or valid.")] = "test",
    data: Annotated[Path | None, typer.Option(
        help="An Alpaca .json/.jsonl file: score a CTR run on every record of it (AUC, "
        "LogLoss, Accuracy), written to RUN/eval_data_<file name>.json.")] = None,
) -> None:
    """Evaluate a trained run again, under the full-ranking or the sampled protocol, or a CTR
    run on another Alpaca file (--data)."""
    from recadapt.eval.protocols import evaluate_part
    from recadapt.io import write_json
    from recadapt.train.runs import load_run, score_records

    if data is not None:
        output = score_records(run_dir, data, progress=True)
        write_json(run_dir / f"eval_data_{data.stem}.json", output)
        typer.echo(json.dumps(output, indent=2))
        return
    if protocol not in {"full", "sampled"}:
        raise RecAdaptError(f"--protocol must be full or sampled, got {protocol!r}")
    if part not in {"test", "valid"}:
        raise RecAdaptError(f"--part must be test or valid, got {part!r}")
    run = load_run(run_dir)
    eval_cfg = run.config.eval
    if negatives is not None:
        eval_cfg = eval_cfg.model_copy(update={"num_negatives": negatives})
    result = evaluate_part(run.model, run.prepared.split, part, eval_cfg,
                           run.config.data.max_seq_len, protocol=protocol, progress=True)
    protocol = result.protocol  # CTR runs have one protocol: AUC/LogLoss
    output = {"protocol": protocol, "part": part, "metrics": result.metrics}
    if protocol == "sampled":
        output["num_negatives"] = eval_cfg.num_negatives
    write_json(run_dir / f"eval_{part}_{protocol}.json", output)
    typer.echo(json.dumps(output, indent=2))


@app.command()
@_friendly
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Raw user id from the dataset.")],
    k: Annotated[int, typer.Option("-k", help="How many items.")] = 10,
) -> None:
    """Print the top-K items for a user as JSON (item ids, titles, scores)."""
    from recadapt.serve.recommend import recommend as top_k
    from recadapt.serve.recommend import user_history
    from recadapt.train.runs import load_run

    run = load_run(run_dir)
    items = top_k(run, user_history(run, user), k)
    typer.echo(json.dumps({"user": user, "items": items}, indent=2, ensure_ascii=False))


@app.command()
@_friendly
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0: every interface).")] = (
        "127.0.0.1"),
    index: Annotated[str, typer.Option(
        help="Top-K index: auto (exact below --ann-threshold items, FAISS IVF-Flat from "
        "there on, or IVF-PQ where the vectors cluster poorly and it is measured faster), "
        "exact, ivf, ivfpq (4-bit fast-scan codes, exact re-ranking) or hnsw. An approximate "
        "one is tuned to --recall-target, saved beside the run (index.faiss, index.json) and "
        "reloaded at the next start unless the item vectors changed.")] = "auto",
    recall_target: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of the exact top-10 an approximate index must find on "
        "held user queries: its nprobe/efSearch is the smallest that reaches it.")] = 0.95,
    ann_threshold: Annotated[int, typer.Option(
        help="With --index auto: catalogues of at least this many items get an approximate "
        "index; smaller ones are ranked exactly.")] = 50_000,
    state_dir: Annotated[Path | None, typer.Option(
        help="Where the service keeps its approximate index and the items added through "
        "/items, both reloaded at the next start (default: the run folder).")] = None,
    batch_window_ms: Annotated[float, typer.Option(
        min=0.0, help="How long /recommend may wait for concurrent queries to score them in "
        "one batch (only while more are arriving); 0: every query alone.")] = 1.0,
) -> None:
    """Serve recommendations over HTTP: /health, /recommend, /similar, /items (docs at /docs).

    uvicorn uses uvloop and httptools (dependencies) for its event loop and HTTP parser."""
    import uvicorn

    from recadapt.serve.app import create_app
    from recadapt.serve.index import KINDS

    if index not in KINDS:
        raise RecAdaptError(f"--index {index!r}: choose from {', '.join(KINDS)}")
    uvicorn.run(create_app(run_dir, ann_threshold=ann_threshold, recall_target=recall_target,
                           index=index, batch_window_ms=batch_window_ms,
                           state_dir=state_dir or run_dir),
                host=host, port=port)


@app.command()
@_friendly
def compare(
    run_a: Annotated[Path, typer.Argument(help="First run directory.")],
    run_b: Annotated[Path, typer.Argument(help="Second run directory.")],
    metric: Annotated[str, typer.Option(help="Per-user metric, e.g. NDCG@10 or HR@20.")] = (
        "NDCG@10"
    ),
) -> None:
    """Paired t-test between two runs' per-user test metrics (same users, same protocol)."""
    from recadapt.eval.significance_runs import compare_runs

    typer.echo(json.dumps(compare_runs(run_a, run_b, metric), indent=2))


@app.command()
@_friendly
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to put side by side.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .html or .md.")] = Path(
        "report.html"
    ),
    format: Annotated[str | None, typer.Option(help="html or md (default: from --out).")] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="Run the others are tested against (default: first).")
    ] = None,
    data: Annotated[bool, typer.Option("--data/--no-data", help="Read each run's dataset for "
                                       "the dataset card (slow on large data).")] = True,
) -> None:
    """Write one offline HTML/Markdown report comparing runs (metrics, curves, efficiency).

    It holds the metrics with paired significance, learning curves, efficiency, method
    analyses, the dataset card and the configs."""
    from recadapt.report.build import write_report

    path = write_report(run_dirs, out, format, read_data=data, baseline=baseline)
    typer.echo(f"{path}: report of {len(run_dirs)} run{'s' if len(run_dirs) != 1 else ''}")


@app.command()
@_friendly
def experiment(
    grid: Annotated[Path, typer.Argument(help="GRID.yaml: a base config (a file or inline) and "
                                         "a list of named runs with overrides.")],
    runs_dir: Annotated[Path | None, typer.Option(
        "--runs-dir", help="Where each run gets its folder RUNS_DIR/NAME (default: "
        "runs/<grid file name>).")] = None,
    results: Annotated[Path | None, typer.Option(
        help="Results JSON, one row per run (default: RUNS_DIR/results.json).")] = None,
    report: Annotated[Path | None, typer.Option(
        help="The report of the runs, .html or .md (default: RUNS_DIR/report.html).")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only this run (repeat for several).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        help="Skip runs whose row is already in the results file.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a grid of named runs, print their results table and write their report.

    GRID.yaml holds `base:` (a config file, relative to the grid, or an inline config) and
    `runs:`, a list of `{name, overrides}` (overrides as `key=value` strings like `train`'s,
    or a nested mapping; optional row fields `dataset`, `method`, `setting`, `section`) and
    optionally `columns:`. A run that finished under the same config in RUNS_DIR/NAME is
    reused, a stopped one resumed, one of another config moved aside to NAME.replaced-N.
    Example: configs/experiments/sequence_models.yaml."""
    from recadapt.experiments import grid_columns, load_grid, run_grid
    from recadapt.report.build import write_report
    from recadapt.report.tables import text_table

    plan = load_grid(grid)
    runs_dir = runs_dir or Path("runs") / grid.stem
    rows, folders = run_grid(plan, runs_dir, results=results, only=only, resume=resume,
                             progress=not quiet)
    typer.echo(text_table(rows, plan.columns or grid_columns(rows)))
    typer.echo(f"\nresults: {results or runs_dir / 'results.json'}")
    if folders:
        path = write_report(folders, report or runs_dir / "report.html")
        typer.echo(f"report: {path} ({len(folders)} run{'s' if len(folders) != 1 else ''})")


@data_app.command("inspect")
@_friendly
def data_inspect(
    path: Annotated[str, typer.Argument(help="Dataset path, or 'dslabs' for the packaged one.")],
    format: Annotated[str, typer.Option(help="auto, recbole, unisrec, dslabs, csv, ...")] = "auto",
) -> None:
    """Print users, items, interactions, sparsity, sequence lengths and text fields."""
    from recadapt.data.inspect import describe, format_description
    from recadapt.data.readers import read_dataset

    typer.echo(format_description(describe(read_dataset(path, format=format))))


@data_app.command("synth")
@_friendly
def data_synth(
    out: Annotated[Path, typer.Argument(help="Folder to write (must be empty or absent).")],
    items: Annotated[int, typer.Option(help="Number of items.")] = 1200,
    users: Annotated[int, typer.Option(help="Number of users.")] = 2500,
    seed: Annotated[int, typer.Option(help="Seed; equal seeds give equal files.")] = 0,
    mean_seq_len: Annotated[float, typer.Option(help="Mean interactions per user.")] = 12.0,
    min_seq_len: Annotated[int, typer.Option(help="Fewest interactions per user.")] = 5,
    max_seq_len: Annotated[int, typer.Option(help="Most interactions per user.")] = 30,
    seconds: Annotated[float, typer.Option(help="Length of audio and video clips.")] = 3.0,
    fps: Annotated[int, typer.Option(help="Video frames per second.")] = 8,
    image_size: Annotated[int, typer.Option(help="Cover and video side in pixels.")] = 128,
    noise: Annotated[float, typer.Option(help="Rendering jitter, 0 to 1.")] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty OUT.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Generate a synthetic multimodal dataset: titles, covers, audio and videos.

    Items carry latent attributes that each modality shows part of; users pick items by them
    and by a sequential pattern. MicroLens layout (prefix synth); labelled synthetic in
    synth_meta.json and in every report. See docs/synthetic_data.md."""
    from recadapt.data.synth import SynthConfig, generate

    config = SynthConfig.build(
        items=items, users=users, seed=seed, mean_seq_len=mean_seq_len, min_seq_len=min_seq_len,
        max_seq_len=max_seq_len, audio_seconds=seconds, video_seconds=seconds, video_fps=fps,
        image_size=image_size, video_size=image_size, noise=noise)
    path = generate(out, config, progress=not quiet, overwrite=overwrite)
    typer.echo(f"{path}: synthetic dataset, {items} items, {users} users (seed {seed})")


@cache_app.command("build")
@_friendly
def cache_build(
    config: Annotated[Path, typer.Argument(help="YAML config of a content model (iisan, ...).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides such as cache.dtype=fp32.", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run the configured frozen encoders once over every item and store the layers the model
    reads; an interrupted build resumes where it stopped. Training builds missing caches too."""
    from recadapt.config import load_config
    from recadapt.data.load import resolve_source
    from recadapt.distributed import is_main_process
    from recadapt.models.content import build_state_caches

    cfg = resolve_source(load_config(config, list(overrides or [])))
    caches = build_state_caches(cfg, progress=not quiet)  # in parallel under accelerate launch
    for cache in caches if is_main_process() else ():
        typer.echo(f"{cache.path}: {cache.num_items} items, layers {cache.layers}, "
                   f"{cache.nbytes / 2**20:.1f} MiB")


@cache_app.command("info")
@_friendly
def cache_info(
    path: Annotated[Path, typer.Argument(help="A cache folder, <cache.dir>/<name>-<digest>.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = (
        False
    ),
) -> None:
    """Print what a state cache holds: items, layers and widths, dtype, size, source model."""
    from recadapt.cache import StateCache, describe, format_description

    description = describe(StateCache.open(path))
    typer.echo(json.dumps(description, indent=2) if as_json else format_description(description))


@app.command()
@_friendly
def quickstart(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the runs.")] = Path(
        "runs/quickstart"
    ),
    epochs: Annotated[int, typer.Option(help="Most epochs per model (early stopping).")] = 30,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where MiniLM states are cached (default OUT/cache).")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Only these of popularity, sasrec, iisan."),
    ] = None,
) -> None:
    """Train popularity, SASRec and cached IISAN on packaged MovieLens and compare them.

    IISAN reads MiniLM states of each movie's title and genres; the table shows seconds per
    epoch beside the metrics, and the runs can go on to `report` and `serve`."""
    from recadapt.quickstart import QUICKSTART_RUNS, run_quickstart

    unknown = sorted(set(model or []) - set(QUICKSTART_RUNS))
    if unknown:
        raise RecAdaptError(f"--model: unknown {unknown}; choose from {sorted(QUICKSTART_RUNS)}")
    run_quickstart(out, epochs, cache_dir, model)


def main() -> None:
    """Run the command; in a process of a multi-process launch, end it without C++ teardown
    (torch/gloo's exit abort: :func:`recadapt.distributed.exit_launched_process`)."""
    try:
        app()
    except SystemExit as done:  # click ends every command, successful or not, with SystemExit
        if "recadapt.distributed" in sys.modules:  # only commands that could launch
            from recadapt.distributed import exit_launched_process

            exit_launched_process(done.code)
        raise


if __name__ == "__main__":
    sys.exit(main())
