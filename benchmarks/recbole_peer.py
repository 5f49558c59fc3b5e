"""Peer baseline: RecBole 1.2.1 SASRec / GRU4Rec under our full-ranking leave-one-out protocol.

Run with RecBole's own virtualenv (never the project's), see docs/recbole_peer.md:

    OMP_NUM_THREADS=1 LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
        /work/recbole-venv/bin/python benchmarks/recbole_peer.py \\
        [--quick] [--datasets scientific ml-100k] [--models SASRec GRU4Rec]

The shared data folder comes from ``RECADAPT_SHARED_DATA`` (default ``<repo>/../shared/data``).
Data is converted to RecBole atomic files in a temporary folder, which is also RecBole's working
directory (its ``log/`` and ``log_tensorboard/`` go there and are deleted afterwards).

Besides RecBole's own test metrics (RecBole's ``Hit@K`` is our ``HR@K``), each row also carries
``test_history_masked``: the same best checkpoint re-scored with our rule -- every item of the
user's history except the target removed from the candidates, pessimistic ties -- because
RecBole 1.2.1 does not mask history items for sequential models in full ranking.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import results
from recadapt.experiments import experiment_parser

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "recbole_peer.json"
SETTING = "full-ranking leave-one-out"
KS = (10, 20)

# dataset key on the command line -> RecBole dataset name (never "ml-100k": RecBole would read
# its bundled copy of that name whatever data_path says)
DATASETS = {"scientific": "scientific_peer", "ml-100k": "ml100k_peer"}
DATASET_LABELS = {"scientific": "amazon_scientific", "ml-100k": "ml-100k"}

MODEL_PARAMS = {
    # dropout 0.1 as in the SASRec paper and our SASRec (RecBole's default is 0.5)
    "SASRec": {
        "hidden_size": 64,
        "inner_size": 256,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dropout_prob": 0.1,
        "attn_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
    },
    # RecBole's defaults, written out (embedding 64, GRU hidden 128, 1 layer, dropout 0.3)
    "GRU4Rec": {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3},
}


def shared_data_dir() -> Path:
    return Path(os.environ.get("RECADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))


def _read_split(path: Path) -> list[tuple[str, list[str], str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        next(f)  # header: user_id:token  item_id_list:token_seq  item_id:token
        for line in f:
            user, history, target = line.rstrip("\n").split("\t")
            rows.append((user, history.split(), target))
    return rows


def scientific_sequences(folder: Path) -> dict[str, list[str]]:
    """Each user's full sequence rebuilt from the UniSRec pre-split files.

    The train file has one row per prefix, newest first within a user, histories capped at 50:
    chaining the rows oldest first (each target extends the previous list), then appending the
    valid and test targets, gives the whole sequence; every step is checked against the file.
    """
    train: dict[str, list[tuple[list[str], str]]] = {}
    for user, history, target in _read_split(folder / "Scientific.train.inter"):
        train.setdefault(user, []).append((history, target))
    valid = {u: (h, t) for u, h, t in _read_split(folder / "Scientific.valid.inter")}
    test = {u: (h, t) for u, h, t in _read_split(folder / "Scientific.test.inter")}
    if set(valid) != set(test):
        raise ValueError("valid and test users differ")
    sequences = {}
    for user, (valid_history, valid_target) in valid.items():
        rows = train.get(user, [])[::-1]  # oldest first
        seq = list(rows[0][0]) if rows else list(valid_history)
        for history, target in rows:
            if history != seq[-50:]:
                raise ValueError(f"user {user}: train rows do not chain")
            seq.append(target)
        if valid_history != seq[-50:]:
            raise ValueError(f"user {user}: valid history does not continue the train rows")
        seq.append(valid_target)
        test_history, test_target = test[user]
        if test_history != seq[-50:]:
            raise ValueError(f"user {user}: test history does not continue the valid row")
        seq.append(test_target)
        sequences[user] = seq
    return sequences


def write_atomic(dataset: str, root: Path) -> tuple[str, dict]:
    """Write ``<root>/<name>/<name>.inter``; returns the RecBole dataset name and a summary."""
    name = DATASETS[dataset]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.inter"
    data = shared_data_dir()
    if dataset == "ml-100k":
        shutil.copyfile(data / "ml-100k" / "ml-100k.inter", target)
        with target.open(encoding="utf-8") as f:
            rows = sum(1 for _ in f) - 1
        summary = {"interactions": rows, "source": "ml-100k/ml-100k.inter as is"}
    else:
        sequences = scientific_sequences(data / "amazon_scientific")
        with target.open("w", encoding="utf-8") as f:
            f.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for user, seq in sequences.items():
                for position, item in enumerate(seq):
                    f.write(f"{user}\t{item}\t{position}\n")
        summary = {
            "interactions": sum(len(s) for s in sequences.values()),
            "users": len(sequences),
            "items": len({i for s in sequences.values() for i in s}),
            "source": "amazon_scientific train rows chained + valid + test targets, "
            "timestamp = position",
        }
    return name, summary


def recbole_config(dataset_name: str, model: str, root: Path, quick: bool, batch: int) -> dict:
    config = {
        "data_path": str(root),
        "dataset": dataset_name,
        "checkpoint_dir": str(root / "saved"),
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # no filtering beyond what the data already has
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "val_interval": None,
        "rm_dup_inter": None,
        "filter_inter_by_user_or_item": False,
        "MAX_ITEM_LIST_LENGTH": 50,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": list(KS),
        "valid_metric": "NDCG@10",
        "metric_decimal_place": 6,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "learning_rate": 1e-3,
        "train_batch_size": batch,
        "eval_batch_size": 4096,
        "epochs": 3 if quick else 200,
        "stopping_step": 10,
        "eval_step": 1,
        "seed": 2020,
        "reproducibility": True,
        "use_gpu": False,
        "show_progress": False,
        "worker": 0,
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "state": "INFO",
    }
    config.update(MODEL_PARAMS[model])
    return config


def _patch_torch(torch) -> None:
    """RecBole reloads its own best checkpoint (a pickled dict) with torch.load; torch >= 2.6
    defaults to weights_only=True, which refuses it."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load


def _masked_test_metrics(torch, model, test_data, full_dataset, uid_field, iid_field) -> dict:
    """Re-score the test users with our rule: the user's other items are not candidates
    (the target always is), rank = 1 + #(candidates other than the target scoring >= it)."""
    users = full_dataset.inter_feat[uid_field].numpy()
    items = full_dataset.inter_feat[iid_field].numpy()
    user_items: dict[int, list[int]] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        user_items.setdefault(u, []).append(i)
    ranks = []
    model.eval()
    with torch.no_grad():
        for interaction, _, _, positive_i in test_data:
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            candidate = torch.ones_like(scores, dtype=torch.bool)
            candidate[:, 0] = False
            for row, u in enumerate(interaction[uid_field].tolist()):
                candidate[row, user_items[u]] = False
            rows = torch.arange(len(interaction))
            candidate[rows, positive_i] = False
            target_scores = scores[rows, positive_i].unsqueeze(1)
            ranks.append(1 + ((scores >= target_scores) & candidate).sum(dim=1))
    rank = torch.cat(ranks).double()
    out = {"users": len(rank)}
    for k in KS:
        hit = rank <= k
        out[f"HR@{k}"] = round(hit.double().mean().item(), 6)
        gain = torch.where(hit, 1.0 / torch.log2(rank + 1.0), torch.zeros_like(rank))
        out[f"NDCG@{k}"] = round(gain.mean().item(), 6)
    return out


def _ours(result: dict) -> dict:
    """RecBole's keys ('hit@10', 'ndcg@10') -> ours ('HR@10', 'NDCG@10')."""
    out = {}
    for k in KS:
        out[f"HR@{k}"] = round(float(result[f"hit@{k}"]), 6)
        out[f"NDCG@{k}"] = round(float(result[f"ndcg@{k}"]), 6)
    return out


class _TimeBudget(Exception):
    """Raised from RecBole's per-epoch callback when --max-minutes of training have passed."""


def run_one(
    dataset: str, model_name: str, quick: bool, batch: int, max_minutes: float | None = None,
    threads: int = 1,
) -> dict:
    import torch

    torch.set_num_threads(threads)
    _patch_torch(torch)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model import sequential_recommender  # noqa: F401  (runs RecBole's import side effects)
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    # importing RecBole's sequential models (its SINE file) switches anomaly detection on,
    # which roughly halves the speed on CPU without changing values: switch it off again
    torch.autograd.set_detect_anomaly(False)

    root = Path(tempfile.mkdtemp(prefix=f"recbole_peer_{dataset}_{model_name}_"))
    cwd = os.getcwd()
    os.chdir(root)  # RecBole writes ./log and ./log_tensorboard into the working directory
    try:
        name, data_summary = write_atomic(dataset, root)
        config = Config(
            model=model_name,
            dataset=name,
            config_dict=recbole_config(name, model_name, root, quick, batch),
        )
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        full_dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, full_dataset)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

        train_seconds: list[float] = []
        valid_seconds: list[float] = []
        saved_epochs: list[int] = []
        train_epoch, valid_epoch, save = (
            trainer._train_epoch,
            trainer._valid_epoch,
            trainer._save_checkpoint,
        )

        def timed_train(*args, **kwargs):
            start = time.perf_counter()
            out = train_epoch(*args, **kwargs)
            train_seconds.append(time.perf_counter() - start)
            return out

        def timed_valid(*args, **kwargs):
            start = time.perf_counter()
            out = valid_epoch(*args, **kwargs)
            valid_seconds.append(time.perf_counter() - start)
            return out

        def tracked_save(epoch, *args, **kwargs):
            saved_epochs.append(epoch)
            return save(epoch, *args, **kwargs)

        trainer._train_epoch = timed_train
        trainer._valid_epoch = timed_valid
        trainer._save_checkpoint = tracked_save

        start = time.perf_counter()

        def budget(epoch_idx, valid_score):
            if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
                raise _TimeBudget

        stopped = "early_stopping"
        try:
            _, best_valid = trainer.fit(
                train_data, valid_data, saved=True, show_progress=False, callback_fn=budget
            )
        except _TimeBudget:
            best_valid = trainer.best_valid_result
            stopped = f"time_budget ({max_minutes:g} min of training), patience not exhausted"
        fit_seconds = time.perf_counter() - start
        if stopped == "early_stopping" and len(train_seconds) == config["epochs"]:
            stopped = "max_epochs"
        start = time.perf_counter()
        test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        test_seconds = time.perf_counter() - start
        masked = _masked_test_metrics(
            torch,
            trainer.model,
            test_data,
            full_dataset,
            full_dataset.uid_field,
            full_dataset.iid_field,
        )
        epochs = len(train_seconds)
        row = {
            "dataset": DATASET_LABELS[dataset],
            "method": f"recbole-{model_name}",
            "setting": SETTING,
            **_ours(test_result),
            "epochs": epochs,
            "seconds_per_epoch": round(sum(train_seconds) / max(epochs, 1), 2),
            "best_epoch": saved_epochs[-1] + 1 if saved_epochs else None,
            "stopped": stopped,
            "valid": _ours(best_valid) if best_valid else None,
            "test_history_masked": masked,
            "valid_seconds_per_epoch": round(sum(valid_seconds) / max(len(valid_seconds), 1), 2),
            "fit_seconds": round(fit_seconds, 1),
            "test_seconds": round(test_seconds, 1),
            "train_samples_per_epoch": len(train_data._dataset),
            "users": full_dataset.user_num - 1,
            "items": full_dataset.item_num - 1,
            "data": data_summary,
            "quick": quick,
            "config": {
                k: v
                for k, v in recbole_config(name, model_name, root, quick, batch).items()
                if k not in ("data_path", "checkpoint_dir")
            },
            "environment": {
                "recbole": _version("recbole"),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "threads": torch.get_num_threads(),
                "jemalloc": "jemalloc" in os.environ.get("LD_PRELOAD", ""),
                "anomaly_detection": torch.is_anomaly_enabled(),
            },
        }
        return row
    finally:
        os.chdir(cwd)
        shutil.rmtree(root, ignore_errors=True)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def merge(rows: list[dict], out: Path) -> list[dict]:
    """Replace rows with the same (dataset, method) in ``out``; keep the others (sorted:
    Scientific first, SASRec first)."""
    order = {"amazon_scientific": 0, "ml-100k": 1}

    def sort(merged: list[dict]) -> None:
        merged.sort(key=lambda r: (order.get(r["dataset"], 9), r["method"] != "recbole-SASRec",
                                   r["method"]))

    table = results(out.stem, key=("dataset", "method"), annotate=sort, path=out)
    for row in rows:
        table.record(row)
    return table.rows


def print_table(rows: list[dict]) -> None:
    head = [
        "dataset",
        "method",
        "HR@10",
        "NDCG@10",
        "HR@20",
        "NDCG@20",
        "epochs",
        "best",
        "s/epoch",
        "masked NDCG@10",
    ]
    print(" | ".join(head))
    for r in rows:
        cells = [r["dataset"], r["method"]]
        cells += [f"{r[m]:.4f}" for m in ("HR@10", "NDCG@10", "HR@20", "NDCG@20")]
        cells += [str(r["epochs"]), str(r["best_epoch"]), f"{r['seconds_per_epoch']:.1f}"]
        cells.append(f"{r['test_history_masked']['NDCG@10']:.4f}")
        print(" | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0], quick="3 epochs, one dataset (smoke run)",
                               omit=["runs_dir"])
    parser.set_defaults(threads=1)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=None)
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_PARAMS), default=None)
    parser.add_argument("--batch-size", type=int, default=256, help="train_batch_size")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop training a run after this many minutes (recorded in the row)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results JSON (default {DEFAULT_OUT}; /tmp for --quick)",
    )
    args = parser.parse_args(argv)
    datasets = args.datasets or (["scientific"] if args.quick else ["scientific", "ml-100k"])
    models = args.models or (["SASRec"] if args.quick else ["SASRec", "GRU4Rec"])
    out = args.out or (
        Path(tempfile.gettempdir()) / "recbole_peer_quick.json" if args.quick else DEFAULT_OUT
    )
    done = results(out.stem, key=("dataset", "method"), path=out) if args.resume else None
    rows = []
    for dataset in datasets:
        for model in models:
            method = f"recbole-{model}"
            if args.only and model not in args.only and method not in args.only:
                continue
            if done is not None and done.find({"dataset": DATASET_LABELS[dataset],
                                               "method": method, "setting": SETTING}):
                print(f"kept from an earlier run: {dataset} {method}", file=sys.stderr)
                continue
            print(f"== {dataset} {model}", flush=True)
            row = run_one(dataset, model, args.quick, args.batch_size, args.max_minutes,
                          args.threads)
            rows.append(row)
            merge([row], out)  # keep finished rows even if a later run is stopped
            print_table([row])
    print()
    print_table(rows)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
