"""CROSSAN against IISAN-E over 2–4 modalities (CROSSAN Tables 3–7) on the synthetic
multimodal dataset, plus CROSSAN on real data with several text fields as modalities.

**The multimodal dataset is synthetic** (``recadapt data synth``; every row says so): no real
dataset with images, audio and video for every item is obtainable offline. Each modality
renders a different, partly overlapping subset of latent item attributes
(``docs/synthetic_data.md``). Frozen encoders: all-MiniLM-L6-v2 (titles), EfficientNet-Lite0
(covers), Whisper tiny.en (audio, first 3 s), EfficientNet-Lite0 on 8 frames of the first 3 s
averaged over time (video). All runs train on the state caches, full ranking, leave-one-out.

Sections (``--sections``, all by default):

* ``baselines``  — popularity and SASRec (item IDs);
* ``modalities`` — CROSSAN and IISAN-E for T+I, T+I+A, T+I+V, T+I+V+A (Table 3);
* ``fusion``     — MOMEF vs dynamic gate vs static gate vs concat, T+I+V+A (Table 5), and
  MOMEF with a balance loss on its gate (``model.balance``; not in the paper: its gates
  collapse onto one tower without it) and with X-MoE's cosine router (``model.router``; not in
  the paper either: bounded gate scores that cannot saturate), at top-k 2 and 4;
* ``cross``      — cross-modal vs independent towers (INDSAN), T+I+V+A (Table 6), with MOMEF
  and with concat fusion (the latter isolates the cross-modal gates from MOMEF's collapse);
* ``topk``       — MOMEF top-k 1–4, T+I+V+A (Table 7);
* ``efficiency`` — seconds per training step, peak memory, trainable parameters of CROSSAN vs
  IISAN-E at equal width and adapter size, each in its own worker process (Table 4);
* ``iisan``      — IISAN-VS ablations (IISAN-Versa Table VI) on text + image, where the two
  modalities differ (the Scientific ablations used two text fields);
* ``real``       — CROSSAN vs IISAN-E on Amazon Scientific with three text fields (title |
  categories | brand) as three "modalities" through MiniLM.

Every quality row carries the paired t-test p-value (per-user NDCG@10) against the reference
run of its section (``p_vs``).

    python benchmarks/crossan.py                  # everything (about an hour on 2 cores)
    python benchmarks/crossan.py --sections modalities cross
    python benchmarks/crossan.py --only popularity sasrec "crossan T+I" --batch-size 32 \
        --patience 15 --name crossan_tuning      # a tuning pass
    python benchmarks/crossan.py --quick          # tiny synthetic set, 1 epoch per run
    python benchmarks/crossan.py --users 10000 --patience 10 --resume   # continue a stopped run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import REPO, bench_parser, results, results_name, shared_data
from recadapt.experiments import Experiment, Run, run_row
from recadapt.train.efficiency import measure_steps_in_worker

ENCODERS = {
    "T": {"name": "text", "model": "minilm", "fields": ["title"], "max_length": 32},
    "I": {"name": "image", "model": "efficientnet-lite0", "fields": ["image"]},
    "A": {"name": "audio", "model": "whisper-tiny-en", "fields": ["audio"], "seconds": 3},
    "V": {"name": "video", "model": "efficientnet-lite0", "kind": "video", "fields": ["video"],
          "frames": 8, "seconds": 3},
}
SUBSETS = ["TI", "TIA", "TIV", "TIVA"]
ALL = "TIVA"


def label(subset: str) -> str:
    return "+".join(subset)


def synthetic_runs() -> list[tuple[str, str, str, dict[str, Any], str]]:
    """(section, method, subset, model config, reference method of the section)."""
    main = ("crossan", ALL)
    ref = f"crossan {label(ALL)}"
    runs = [("baselines", "popularity", "TI", {"name": "popularity"}, ref),
            ("baselines", "sasrec", "TI", {"name": "sasrec"}, ref)]
    for subset in SUBSETS:
        for name in ("crossan", "iisan-e"):
            runs.append(("modalities", f"{name} {label(subset)}", subset, {"name": name}, ref))
    for fusion in ("dynamic", "static", "concat"):
        runs.append(("fusion", f"crossan {label(ALL)} fusion={fusion}", ALL,
                     {"name": "crossan", "fusion": fusion}, ref))
    for balance in (0.01, 0.1):  # 0.01: DeepSeekMoE's expert-level α
        runs.append(("fusion", f"crossan {label(ALL)} balance={balance}", ALL,
                     {"name": "crossan", "balance": balance}, ref))
    for top_k in (2, 4):  # not in the paper: X-MoE's cosine router, bounded gate scores
        runs.append(("fusion", f"crossan {label(ALL)} router=cosine"
                     + ("" if top_k == 2 else f" top_k={top_k}"), ALL,
                     {"name": "crossan", "router": "cosine", "top_k": top_k}, ref))
    runs.append(("cross", f"indsan {label(ALL)}", ALL, {"name": "crossan", "cross": False}, ref))
    # INDSAN with concat fusion: the cross-modal gates' own effect, without MOMEF's collapse
    runs.append(("cross", f"indsan {label(ALL)} fusion=concat", ALL,
                 {"name": "crossan", "cross": False, "fusion": "concat"},
                 f"crossan {label(ALL)} fusion=concat"))
    for k in (1, 3, 4):
        runs.append(("topk", f"crossan {label(ALL)} top_k={k}", ALL,
                     {"name": "crossan", "top_k": k}, ref))
    iisan_ref = "iisan-vs T+I"
    runs.append(("iisan", iisan_ref, "TI", {"name": "iisan"}, iisan_ref))
    for switch in ("layer_drop", "gates", "inter", "intra"):
        runs.append(("iisan", f"iisan-vs T+I no-{switch.replace('_', '')}", "TI",
                     {"name": "iisan", switch: False}, iisan_ref))
    runs.append(("iisan", "frozen T+I", "TI", {"name": "frozen"}, iisan_ref))
    assert main == ("crossan", ALL)
    return runs


def synthetic_data(folder: Path, quick: bool, users: int | None) -> Path:
    """The synthetic dataset, generated once per size (deterministic under its seed)."""
    from recadapt.data.synth import SynthConfig, generate

    config = SynthConfig(items=80, users=150, seed=0) if quick else SynthConfig(seed=0)
    if users:
        config = config.model_copy(update={"users": users})
    target = folder / ("synth-quick" if quick else "synth") if not users else (
        folder / f"synth-{config.items}x{users}")
    if not (target / "synth_meta.json").is_file():
        generate(target, config, progress=sys.stderr.isatty(), overwrite=True)
    return target


def train_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": 1 if args.quick else args.epochs, "batch_size": args.batch_size,
            "lr": args.lr, "patience": args.patience, "monitor": "NDCG@10",
            "num_threads": args.threads}


def quality_row(run: Run, run_dir: Path) -> dict:
    """A trained run's row with its mutual information and fusion weights (when written)."""
    row = run_row(run, run_dir)
    for name in ("mutual_information.json", "fusion_weights.json"):
        path = run_dir / name
        if path.is_file():
            row[name.removesuffix(".json")] = json.loads(path.read_text())
    if (run_dir / "mutual_information.json").is_file():
        row["MI"] = row["mutual_information"]["mean"]
    return row


def add_significance(rows: list[dict], runs_dir: Path) -> None:
    from recadapt.eval.significance_runs import compare_runs

    for row in rows:
        ref = row.get("reference")
        if not ref or ref == row["method"]:
            continue
        try:
            test = compare_runs(runs_dir / slug(ref), runs_dir / slug(row["method"]), "NDCG@10")
        except Exception as err:  # the reference was not run in this invocation
            print(f"no significance for {row['method']}: {err}", file=sys.stderr)
            continue
        row["p_vs"] = f"{test.get('p_value', float('nan')):.3g} vs {ref}"


def slug(method: str) -> str:
    return method.replace(" ", "_").replace("+", "").replace("=", "-")


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "crossan", quick="tiny synthetic set, 1 epoch per run",
        runs_dir="the kept runs, RUNS_DIR/METHOD (default: WORK_DIR/runs-NAME, "
        "WORK_DIR/runs-quick)")
    sections = ["baselines", "modalities", "fusion", "cross", "topk", "efficiency", "iisan",
                "real"]
    parser.add_argument("--sections", nargs="+", default=sections, choices=sections)
    parser.add_argument("--users", type=int, default=None,
                        help="synthetic users (default: the generator's)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--work-dir", default=str(REPO / ".cache" / "bench-crossan"),
                        help="synthetic data, state caches and kept runs")
    args = parser.parse_args()
    work = Path(args.work_dir)
    runs_dir = Path(args.runs_dir) if args.runs_dir else (
        work / ("runs-quick" if args.quick else f"runs-{args.name}"))
    data = synthetic_data(work, args.quick, args.users)
    table = results(results_name(args.name, args.quick), key=("method",),
                    keep=args.resume or not args.quick)
    experiment = Experiment(table, runs_dir, only=args.only, resume=args.resume,
                            collect=quality_row, columns=COLUMNS)
    base = {"data": {"source": str(data), "max_seq_len": 20},
            "cache": {"dir": str(work / "cache")}, "train": train_args(args),
            "eval": {"ks": [10, 20]}}
    users = f" --users {args.users}" if args.users else ""
    setting = (f"SYNTHETIC data (recadapt data synth{users}), full-ranking leave-one-out, "
               f"batch {args.batch_size}, lr {args.lr:g}, "
               f"patience {args.patience}" + (" (quick)" if args.quick else ""))
    runs = []
    for section, method, subset, model, reference in synthetic_runs():
        if section not in args.sections:
            continue
        width = {} if model["name"] == "popularity" else {"hidden_size": 64}
        raw = {**base, "model": {**width, **model},
               "encoders": [ENCODERS[m] for m in subset]}
        runs.append(Run(method, raw, {"dataset": data.name, "setting": setting,
                                      "section": section, "reference": reference},
                        folder=slug(method)))
    experiment.run_all(runs)
    if "efficiency" in args.sections and not args.only:
        steps, warmup = (2, 1) if args.quick else (30, 3)
        for model in ("crossan", "iisan-e"):
            raw = {**base, "model": {"name": model, "hidden_size": 64},
                   "encoders": [ENCODERS[m] for m in ALL]}
            result = measure_steps_in_worker(raw, steps, warmup)
            experiment.record({
                "dataset": data.name, "method": f"{model} {label(ALL)} (efficiency)",
                "setting": f"SYNTHETIC, batch {args.batch_size}, {steps} measured steps",
                "section": "efficiency", **result})
    if "real" in args.sections and not args.quick:
        real = {"data": {"source": str(shared_data("amazon_scientific")), "max_seq_len": 50},
                "cache": {"dir": str(work / "cache")}, "train": train_args(args),
                "eval": {"ks": [10, 20]},
                "encoders": [{"name": f, "model": "minilm", "fields": [f], "max_length": 48}
                             for f in ("title", "categories", "brand")]}
        real_setting = "full-ranking leave-one-out, three text fields as modalities"
        experiment.run_all(
            Run(f"{model} title|categories|brand",
                {**real, "model": {"name": model, "hidden_size": 64}},
                {"dataset": "amazon_scientific", "setting": real_setting, "section": "real",
                 "reference": "crossan title|categories|brand"},
                folder=slug(f"{model} title|categories|brand"))
            for model in ("crossan", "iisan-e"))
    add_significance(table.rows, runs_dir)
    table.write()
    print(experiment.summary())


COLUMNS = ["section", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MI", "epochs",
           "seconds_per_epoch", "seconds_per_step", "peak_memory_mb", "trainable_params", "p_vs"]

if __name__ == "__main__":
    main()
