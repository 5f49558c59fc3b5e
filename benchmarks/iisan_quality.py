"""Recommendation quality of adapting frozen encoders on Amazon Scientific (IISAN-Versa Table
III, multimodal-text setting VI-F): full ranking over all items, leave-one-out, test set.

Methods: SASRec (item IDs), frozen MiniLM features, full fine-tuning and LoRA of MiniLM (the
backbone inside the graph), IISAN-VS (MiniLM over the title | MiniLM over categories + brand)
and IISAN-VA (SmolLM2-135M over the title | MiniLM over categories + brand). Every content
method reads the same two fields. The embedded methods cost hours per epoch on 2 CPU cores, so
each run may be given a training-time budget (``--budget-minutes``); the row then says
``stopped: time_budget`` and how many epochs it saw.

    python benchmarks/iisan_quality.py                          # every method, early stopping
    python benchmarks/iisan_quality.py --methods iisan-vs frozen
    python benchmarks/iisan_quality.py --quick                  # 3 methods, 1 epoch, 30 s budgets
    # FFT and LoRA to early stopping, over several sessions (rerun the same line to continue)
    python benchmarks/iisan_quality.py --methods fft lora --embedded-budget-minutes 0 \
        --runs-dir .cache/bench-quality/runs --resume --name iisan_quality_converged
"""

from __future__ import annotations

import json
from pathlib import Path

from common import REPO, RESULTS, bench_parser, results, results_name, shared_data
from recadapt.experiments import Experiment, Run

MINILM_TITLE = {"name": "title", "model": "minilm", "fields": ["title"], "max_length": 48}
SMOLLM_TITLE = {"name": "title", "model": "smollm2-135m", "fields": ["title"], "max_length": 48}
MINILM_DETAILS = {"name": "details", "model": "minilm", "fields": ["categories", "brand"],
                  "max_length": 48}

#: a quick run's methods: an ID model, the frozen-encoder floor and IISAN over cached states.
#: Embedded PEFT is left out: one LoRA step passes ~1,000 item texts through MiniLM with
#: gradients and each evaluation encodes the catalogue, so ``--quick`` with LoRA took 6 min
#: (LoRA 4 of them) on 2 cores; ``--quick --methods lora`` runs it on the same path
QUICK_METHODS = ["sasrec", "frozen", "iisan-vs"]
#: a quick run's training budget per method and its evaluated users (a seeded subsample)
QUICK_BUDGET_MINUTES = 0.5
QUICK_EVAL_USERS = 1000
METHODS: dict[str, dict] = {
    "sasrec": {"model": {"name": "sasrec"}},
    "frozen": {"model": {"name": "frozen"}, "encoders": [MINILM_TITLE, MINILM_DETAILS]},
    # fine-tuning a pretrained transformer at the side networks' 1e-3 destroys it: 1e-4 (the
    # usual BERT fine-tuning rate, inside the paper's searched 1e-5..1e-3) for the backbone
    "fft": {"model": {"name": "fft", "backbone_lr": 1e-4},
            "encoders": [MINILM_TITLE, MINILM_DETAILS]},
    "lora": {"model": {"name": "lora"}, "encoders": [MINILM_TITLE, MINILM_DETAILS]},
    "iisan-vs": {"model": {"name": "iisan"}, "encoders": [MINILM_TITLE, MINILM_DETAILS]},
    "iisan-va": {"model": {"name": "iisan"}, "encoders": [SMOLLM_TITLE, MINILM_DETAILS]},
    # the LLM's states mean-pooled over the title's tokens instead of its last token
    "iisan-va-mean": {"model": {"name": "iisan"},
                      "encoders": [{**SMOLLM_TITLE, "pooling": "mean"}, MINILM_DETAILS]},
}
# ablations of Table VI as config switches on IISAN-VS
for _switch in ("layer_drop", "gates", "inter", "intra"):
    METHODS[f"iisan-vs-no-{_switch.replace('_', '')}"] = {
        "model": {"name": "iisan", _switch: False}, "encoders": [MINILM_TITLE, MINILM_DETAILS]}
# LayerDrop strategies (Tables VII–VIII) as explicit block selections. MiniLM has 6 blocks
# (the paper's BERT-base 12): keep 1, 2 (or 3 = iisan-vs, 6 = iisan-vs-no-layerdrop) evenly.
for _n, _blocks in ((1, [6]), (2, [3, 6])):
    METHODS[f"iisan-vs-blocks-{_n}"] = {"model": {"name": "iisan", "blocks": [_blocks, _blocks]},
                                        "encoders": [MINILM_TITLE, MINILM_DETAILS]}
# SmolLM2 (30 blocks, mean-pooled) beside MiniLM (6): which LLM blocks feed the towers.
# iisan-va-mean is 3(even_all)+3 by eq. 5 (blocks 12, 21, 30).
_SMOLLM_MEAN = [{**SMOLLM_TITLE, "pooling": "mean"}, MINILM_DETAILS]
for _name, _model in (
    ("iisan-va-top", {"blocks": [[20, 25, 30], [2, 4, 6]]}),        # 3 from the upper half
    ("iisan-va-down", {"blocks": [[5, 10, 15], [2, 4, 6]]}),        # 3 from the lower half
    ("iisan-va-6", {"blocks": [[5, 10, 15, 20, 25, 30], [1, 2, 3, 4, 5, 6]]}),  # 6(even)+6(all)
    ("iisan-va-full", {"layer_drop": False}),                        # 30 + 6
):
    METHODS[_name] = {"model": {"name": "iisan", **_model}, "encoders": _SMOLLM_MEAN}
EMBEDDED = {"fft", "lora"}


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "iisan_quality",
        quick=f"1 epoch each, {QUICK_BUDGET_MINUTES:g}-minute budgets, {QUICK_EVAL_USERS} "
        f"evaluated users, methods {' '.join(QUICK_METHODS)} unless --methods names others",
        runs_dir="keep each method's run in RUNS_DIR/METHOD, reused when finished and "
        "continued when stopped (default: a temporary folder, deleted; --quick never keeps)")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS),
                        help=f"default: every method (under --quick: {' '.join(QUICK_METHODS)})")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="training-time budget per run (all methods)")
    parser.add_argument("--embedded-budget-minutes", type=float, default=60.0,
                        help="training-time budget for fft and lora (0: none, train to early "
                        "stopping; use with --runs-dir across sessions)")
    parser.add_argument("--embedded-precision", choices=["no", "bf16", "fp16"], default="no",
                        help="train.mixed_precision of fft and lora (bf16 autocast: faster on "
                        "CPUs with bf16 kernels; the cached methods stay fp32)")
    parser.add_argument("--cache-dir", default=str(REPO / ".cache" / "bench-quality"))
    parser.add_argument("--plot-also", nargs="+", default=[], metavar="NAME:METHOD",
                        help="add these rows' learning curves from results/NAME.json to the "
                        "plot (e.g. iisan_quality:iisan-vs beside the converged FFT and LoRA)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw NAME_curves.png from the results file; train nothing")
    args = parser.parse_args()
    name = results_name(args.name, args.quick)  # quick never overwrites
    table = results(name, key=("method",), keep=args.resume or not args.quick)
    references = reference_rows(args.plot_also)  # a wrong name fails now, not after training
    if args.plot_only:
        plot_curves(table.rows + references, RESULTS / f"{args.name}_curves.png")
        return
    source = str(shared_data("amazon_scientific"))
    runs = []
    methods = args.methods or (QUICK_METHODS if args.quick else list(METHODS))
    for method in methods:
        budget = args.budget_minutes
        if method in EMBEDDED:
            budget = min(b for b in (budget, args.embedded_budget_minutes) if b is not None)
            budget = budget or None  # 0: no budget
        if args.quick:
            budget = QUICK_BUDGET_MINUTES
        raw = {
            "data": {"source": source, "max_seq_len": 50},
            "cache": {"dir": args.cache_dir},
            "train": {"epochs": 1 if args.quick else args.epochs, "batch_size": args.batch_size,
                      "lr": 1e-3, "patience": args.patience, "monitor": "NDCG@10",
                      "num_threads": args.threads, "time_budget_minutes": budget},
            "eval": {"ks": [10, 20], **({"max_users": QUICK_EVAL_USERS} if args.quick else {})},
            **METHODS[method],
        }
        setting = "full-ranking leave-one-out" + (
            f" (quick: {QUICK_EVAL_USERS} users)" if args.quick else "")
        if args.batch_size != 64:
            setting += f", batch {args.batch_size}"
        if method in EMBEDDED and args.embedded_precision != "no":
            raw["train"]["mixed_precision"] = args.embedded_precision
            setting += f", {args.embedded_precision} autocast"
        if budget:
            setting += f", budget {budget:g} min"
        runs.append(Run(method, raw, {"dataset": "amazon_scientific", "setting": setting},
                        folder=method, keep=not args.quick))
    experiment = Experiment(table, args.runs_dir, only=args.only, resume=args.resume,
                            columns=COLUMNS)
    experiment.run_all(runs)
    table.write()
    print(experiment.summary())
    plot_curves(table.rows + references, RESULTS / f"{name}_curves.png")


def reference_rows(specs: list[str]) -> list[dict]:
    """The rows named ``NAME:METHOD`` (``results/NAME.json``), for the plot only."""
    found = []
    for spec in specs:
        name, _, method = spec.partition(":")
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"--plot-also {spec}: {path} does not exist")
        matches = [r for r in json.loads(path.read_text()) if r["method"] == method]
        if not matches:
            raise SystemExit(f"--plot-also {spec}: no row with method {method!r} in {path}")
        found.append(matches[-1])
    return found


def plot_curves(rows: list[dict], path: Path) -> None:
    """Validation NDCG@10 and training loss against cumulative training minutes (log scale):
    quality per unit of compute, the comparison IISAN-Versa's efficiency claim is about."""
    from recadapt.report.plots import learning_curves, save_png

    curves = {r["method"]: r["curve"] for r in rows if r.get("curve")}
    if not curves:
        return
    minutes = {m: [p["seconds"] / 60 for p in c] for m, c in curves.items()}
    loss = {m: (minutes[m], [p["loss"] for p in c]) for m, c in curves.items()}
    metric = {m: (minutes[m], [p["NDCG@10"] for p in c]) for m, c in curves.items()}
    fig = learning_curves(loss, metric, "NDCG@10", x_label="training minutes (cumulative)",
                          log_x=True)
    print(f"wrote {save_png(fig, path)}")


COLUMNS = ["HR@10", "NDCG@10", "HR@20", "NDCG@20", "epochs", "stopped", "seconds_per_epoch",
           "trainable_params"]

if __name__ == "__main__":
    main()
