"""ID baselines under full-ranking leave-one-out: popularity, SASRec, GRU4Rec on ML-100K and
Amazon Scientific.

    python benchmarks/idrec.py            # full run (early stopping, patience 10)
    python benchmarks/idrec.py --quick    # same code path, 1 epoch each, about two minutes
"""

from __future__ import annotations

from common import bench_parser, results, results_name, shared_data
from recadapt.experiments import Experiment, Run, slug

DATASETS = {"ml-100k": "ml-100k", "scientific": "amazon_scientific"}
# batch = 64 windows of up to 50 items: about 300 targets per step on Scientific (RecBole's 256
# prefixes per step), about 2,000 on ML-100K whose sequences are long
BATCH = {"ml-100k": 64, "scientific": 64}
MODELS = {
    "popularity": {"name": "popularity"},
    "sasrec": {"name": "sasrec"},
    "gru4rec": {"name": "gru4rec"},
}


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "idrec", quick="1 epoch per model",
        runs_dir="keep each run in RUNS_DIR/DATASET/METHOD (default: a "
        "temporary folder per run, deleted)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one run per seed")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs
    runs = []
    for dataset in args.datasets:
        source = str(shared_data(DATASETS[dataset]))
        for method, seed in ((m, s) for m in args.models for s in args.seeds):
            raw = {
                "data": {"source": source, "max_seq_len": 50},
                "model": dict(MODELS[method]),
                "train": {"epochs": epochs, "batch_size": BATCH[dataset], "lr": 1e-3,
                          "patience": 10, "monitor": "NDCG@10", "num_threads": args.threads,
                          "seed": seed},
                "eval": {"ks": [10, 20]},
            }
            setting = "full-ranking leave-one-out" + (" (quick: 1 epoch)" if args.quick else "")
            folder = f"{dataset}/{slug(method)}"
            if args.seeds != [42]:
                setting += f", seed {seed}"
                folder += f"-seed{seed}"
            runs.append(Run(method, raw, {"dataset": dataset, "setting": setting}, folder))
    # the file holds this invocation's rows (with --resume: the earlier ones too)
    table = results(results_name(args.name, args.quick), key=("dataset", "method", "setting"),
                    keep=args.resume)
    experiment = Experiment(table, args.runs_dir, only=args.only, resume=args.resume,
                            columns=COLUMNS)
    experiment.run_all(runs)
    print(experiment.summary())


COLUMNS = ["HR@10", "NDCG@10", "HR@20", "NDCG@20", "epochs", "seconds_per_epoch",
           "total_train_seconds"]

if __name__ == "__main__":
    main()
