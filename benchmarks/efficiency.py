"""Training efficiency of adapting one backbone: full fine-tuning, LoRA, Adapter, BitFit (the
backbone inside the training graph) against IISAN uncached (frozen backbone run every step)
and IISAN cached (side networks on the state cache) — IISAN-Versa Figure 5 / Table "efficiency".

Every method trains on the same batches of the same data (Amazon Scientific, two text fields
through all-MiniLM-L6-v2, as configs/iisan_vs_scientific.yaml), each in a fresh worker process
so its memory is its own. Measured side by side in one run:

* seconds per training step (forward + backward + optimizer), over ``--steps`` steps after
  ``--warmup`` steps; seconds per epoch = seconds per step × steps in one epoch (extrapolated
  from the measured steps, and labelled so: a full FFT epoch takes hours on 2 CPU cores);
* peak resident memory of the worker during the measured steps, and the same minus the worker's
  memory before building the model (interpreter, torch, data: the same for every method);
* trainable and total parameters (the backbone counts for the embedded methods; cached IISAN
  never holds it), and the cache size on disk.

    python benchmarks/efficiency.py            # 20 measured steps per method
    python benchmarks/efficiency.py --quick    # same code path, 2 measured steps, ~2 minutes
"""

from __future__ import annotations

import sys
import time

from common import REPO, results, results_name, shared_data
from gpu_check import METHODS  # the one list: embedded PEFT vs IISAN, uncached and cached
from recadapt.experiments import experiment_parser
from recadapt.report.tables import text_table
from recadapt.train.efficiency import measure_steps_in_worker

ENCODERS = [
    {"name": "title", "model": "minilm", "fields": ["title"], "max_length": 48},
    {"name": "details", "model": "minilm", "fields": ["categories", "brand"], "max_length": 48},
]


def base_config(source: str, cache_dir: str, batch_size: int, threads: int | None) -> dict:
    return {
        "data": {"source": source, "max_seq_len": 50},
        "encoders": ENCODERS,
        "cache": {"dir": cache_dir},
        "train": {"epochs": 1, "batch_size": batch_size, "lr": 1e-3, "num_threads": threads},
        "eval": {"ks": [10, 20]},
    }


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0], quick="2 measured steps per method",
                               omit=["resume", "runs_dir"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "bench-efficiency"))
    args = parser.parse_args()
    steps, warmup = (2, 1) if args.quick else (args.steps, args.warmup)
    source = str(shared_data("amazon_scientific"))
    base = base_config(source, args.cache_dir, args.batch_size, args.threads)
    if "iisan-cached" in args.methods:  # build the cache first: its time is reported apart
        from recadapt.config import validate_config
        from recadapt.models.content import build_state_caches

        started = time.perf_counter()
        build_state_caches(validate_config({**base, "model": dict(METHODS["iisan-cached"])}),
                           progress=sys.stderr.isatty())
        print(f"cache ready in {time.perf_counter() - started:.1f} s", flush=True)
    table = results(results_name("efficiency", args.quick), keep=False)  # quick never overwrites
    setting = (f"MiniLM x2 (title | categories+brand), batch {args.batch_size}, "
               f"{steps} measured steps" + (" (quick)" if args.quick else ""))
    for method in args.methods:
        if args.only and method not in args.only:
            continue
        result = measure_steps_in_worker({**base, "model": dict(METHODS[method])}, steps, warmup)
        row = {"dataset": "amazon_scientific", "method": method, "setting": setting, **result}
        table.rows.append(row)
        print(text_table([row], COLUMNS).splitlines()[-1], flush=True)
    rows = table.rows
    reference = next((r for r in rows if r["method"] == "fft"), None)
    if reference is not None:
        for row in rows:
            row["speedup_vs_fft"] = reference["seconds_per_step"] / row["seconds_per_step"]
            row["memory_ratio_vs_fft"] = (reference["net_peak_memory_mb"]
                                          / max(row["net_peak_memory_mb"], 1e-9))
            row["total_memory_ratio_vs_fft"] = reference["peak_memory_mb"] / row["peak_memory_mb"]
    print()
    print(text_table(rows, [*COLUMNS, "speedup_vs_fft", "memory_ratio_vs_fft"]))
    print("seconds_per_epoch = seconds_per_step x steps_per_epoch (extrapolated); "
          "net memory = peak - memory before building the model")
    print(f"\nwrote {table.write()}")


COLUMNS = ["seconds_per_step", "seconds_per_epoch", "peak_memory_mb", "net_peak_memory_mb",
           "trainable_params", "total_params", "cache_bytes"]

if __name__ == "__main__":
    main()
