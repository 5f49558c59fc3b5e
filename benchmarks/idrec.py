"""ID baselines under full-ranking leave-one-out: popularity, SASRec, GRU4Rec on ML-100K and
Amazon Scientific.

    python benchmarks/idrec.py            # full run (early stopping, patience 10)
    python benchmarks/idrec.py --quick    # same code path, 1 epoch each, about two minutes
"""

from __future__ import annotations

import argparse

from common import format_table, run_config, shared_data, write_results

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch per model")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one run per seed")
    parser.add_argument("--name", default="idrec", help="results file benchmarks/results/NAME.json")
    args = parser.parse_args()
    epochs = 1 if args.quick else args.epochs
    rows = []
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
            if args.seeds != [42]:
                setting += f", seed {seed}"
            row = run_config(raw, dataset=dataset, method=method, setting=setting)
            rows.append(row)
            print(format_table([row], COLUMNS).splitlines()[-1], flush=True)
    print()
    print(format_table(rows, COLUMNS))
    print(f"\nwrote {write_results(args.name + ('_quick' if args.quick else ''), rows)}")


COLUMNS = ["HR@10", "NDCG@10", "HR@20", "NDCG@20", "epochs", "seconds_per_epoch",
           "total_train_seconds"]

if __name__ == "__main__":
    main()
