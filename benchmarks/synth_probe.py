"""Linear probes on the SYNTHETIC multimodal dataset: does each frozen encoder recover the latent
attributes its modality renders, and not (much) the ones it does not?

    python benchmarks/synth_probe.py            # default dataset (1200 items), a few minutes
    python benchmarks/synth_probe.py --quick    # 240 items, same code path
    python benchmarks/synth_probe.py --data data/synth   # probe an existing generated folder

For every modality the packaged encoder states of the last layer are standardised and a ridge
one-vs-all linear classifier (closed-form least squares on one-hot targets, the ridge strength
picked on a held-out fifth of the training items) is fitted per attribute on 70 % of the items
and scored on the other 30 %. ``chance`` is the majority-class rate on the test items.

A second table ("oracle") scores the generator's own user model with only some attributes
visible: HR@10 of each user's last item when the true preferences and chain attribute may use
only the attributes a modality renders. It shows how much of the behaviour each modality can
explain at best, i.e. that all four together beat any subset and that content beats popularity.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import bench_parser, results, results_name
from recadapt.data.synth import ATTRIBUTES, PREFIX, RENDERED_BY, SynthConfig, generate
from recadapt.report.tables import text_table

ENCODERS: dict[str, dict[str, Any]] = {
    "title": {"name": "title", "model": "minilm", "max_length": 32},
    "image": {"name": "image", "model": "efficientnet-lite0"},
    "audio": {"name": "audio", "model": "whisper-tiny-en", "seconds": 3},
    "video": {"name": "video", "model": "efficientnet-lite0", "kind": "video", "frames": 8,
              "seconds": 3},
}
LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
DATASET = "synth (synthetic)"


def contents(folder: Path, modality: str, items: list[int]) -> list[Any]:
    """What the encoder of ``modality`` reads for each item: titles or media paths."""
    if modality == "title":
        with (folder / f"{PREFIX}_title_en.csv").open(encoding="utf-8", newline="") as handle:
            titles = {int(row["item"]): row["title"] for row in csv.DictReader(handle)}
        return [titles[i] for i in items]
    sub, ext = {"image": ("covers", "png"), "audio": ("audio", "wav"),
                "video": ("videos", "mp4")}[modality]
    return [folder / f"{PREFIX}_{sub}" / f"{i}.{ext}" for i in items]


def encode(folder: Path, modality: str, items: list[int]) -> tuple[np.ndarray, str, float]:
    """Last-layer states ``[items, dim]``, the encoder's source, and seconds spent encoding."""
    from recadapt.config import EncoderSpec
    from recadapt.encoders import load_encoder

    encoder = load_encoder(EncoderSpec(**ENCODERS[modality]))
    started = time.perf_counter()
    states = encoder.encode(contents(folder, modality, items), layers=[encoder.info.num_layers],
                            batch_size=16, progress=sys.stderr.isatty(), desc=modality)
    return states[0].numpy().astype(np.float64), encoder.info.source, \
        time.perf_counter() - started


def ridge_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                classes: int) -> np.ndarray:
    """Predicted classes of ``x_test`` from a ridge least-squares fit to one-hot targets; the
    ridge strength is chosen on the last fifth of the training rows, then refitted on all."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    def fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        target = np.eye(classes)[y]
        bias = target.mean(0)
        # dual form: (X X^T + lam I)^-1 works for widths above the number of items too
        alpha = np.linalg.solve(x @ x.T + lam * np.eye(len(x)), target - bias)
        return x.T @ alpha, bias

    def accuracy(lam: float, cut: int) -> float:
        weights, bias = fit(x_train[:cut], y_train[:cut], lam)
        return float(np.mean((x_train[cut:] @ weights + bias).argmax(1) == y_train[cut:]))

    cut = int(len(x_train) * 0.8)
    best = max(LAMBDAS, key=lambda lam: accuracy(lam, cut))
    weights, bias = fit(x_train, y_train, best)
    return (x_test @ weights + bias).argmax(1)


def latent(folder: Path) -> tuple[list[int], np.ndarray, dict[str, list[str]]]:
    """Item ids, ``[items, attributes]`` value indices, and each attribute's values."""
    meta = json.loads((folder / f"{PREFIX}_meta.json").read_text(encoding="utf-8"))
    values = meta["attributes"]
    with (folder / f"{PREFIX}_items.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    items = [int(r["item"]) for r in rows]
    codes = np.array([[values[a].index(r[a]) for a in ATTRIBUTES] for r in rows])
    return items, codes, values


def probe_rows(folder: Path, modalities: list[str], seed: int) -> list[dict[str, Any]]:
    items, codes, values = latent(folder)
    order = np.random.default_rng(seed).permutation(len(items))
    cut = int(len(items) * 0.7)
    train, test = order[:cut], order[cut:]
    setting = f"ridge probe, last layer, {len(train)}/{len(test)} items"
    chance = {"dataset": DATASET, "method": "chance (majority)", "setting": setting}
    for k, a in enumerate(ATTRIBUTES):
        chance[a] = float(np.bincount(codes[test, k]).max() / len(test))
    rows = [chance]
    for modality in modalities:
        try:
            states, source, seconds = encode(folder, modality, items)
        except Exception as err:  # audio/video encoders may not exist yet
            reason = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            print(f"{modality}: encoder unavailable: {type(err).__name__}: {reason}",
                  file=sys.stderr)
            rows.append({"dataset": DATASET, "method": f"{modality}/unavailable",
                         "setting": setting, "error": f"{type(err).__name__}: {reason}"})
            continue
        row: dict[str, Any] = {"dataset": DATASET,
                               "method": f"{modality}/{source.split(':', 1)[-1]}",
                               "setting": setting}
        for k, a in enumerate(ATTRIBUTES):
            predicted = ridge_probe(states[train], codes[train, k], states[test],
                                    len(values[a]))
            row[a] = float(np.mean(predicted == codes[test, k]))
        own = [row[a] - chance[a] for a in RENDERED_BY[modality]]
        other = [row[a] - chance[a] for a in ATTRIBUTES if a not in RENDERED_BY[modality]]
        row["rendered_gain"] = float(np.mean(own))
        row["other_gain"] = float(np.mean(other))
        row["encode_seconds"] = round(seconds, 1)
        rows.append(row)
    return rows


ORACLE_SUBSETS: dict[str, tuple[str, ...]] = {
    "popularity only": (),
    **{m: a for m, a in RENDERED_BY.items()},
    "title+image": tuple(dict.fromkeys(RENDERED_BY["title"] + RENDERED_BY["image"])),
    "all but title": tuple(a for a in ATTRIBUTES if a not in RENDERED_BY["title"]),
    "all but image": tuple(a for a in ATTRIBUTES if a != "texture"),
    "all but audio": tuple(a for a in ATTRIBUTES if a not in RENDERED_BY["audio"]),
    "all but video": tuple(a for a in ATTRIBUTES if a != "motion"),
    "all four": ATTRIBUTES,
}


def oracle_rows(folder: Path, k: int = 10) -> list[dict[str, Any]]:
    """HR@k of each user's last item under the generator's true scores restricted to the
    attributes a subset of modalities renders (others unseen), seen items excluded."""
    meta = json.loads((folder / f"{PREFIX}_meta.json").read_text(encoding="utf-8"))
    config, values = meta["config"], meta["attributes"]
    truth = json.loads((folder / f"{PREFIX}_users.json").read_text(encoding="utf-8"))
    _, codes, _ = latent(folder)
    follow = {a: np.array([values[a].index(meta["transitions"][a][v]) for v in values[a]])
              for a in ATTRIBUTES}
    pairs = np.loadtxt(folder / f"{PREFIX}_pairs.csv", delimiter=",", skiprows=1,
                       dtype=np.int64, ndmin=2)
    popularity = -config["popularity_strength"] * np.log(np.array(truth["popularity_rank"]))
    hits = dict.fromkeys(ORACLE_SUBSETS, 0)
    starts = np.r_[0, np.flatnonzero(np.diff(pairs[:, 0])) + 1, len(pairs)]
    for user, info in enumerate(truth["users"]):
        sequence = pairs[starts[user]:starts[user + 1], 1] - 1
        history, target = sequence[:-1], sequence[-1]
        for name, visible in ORACLE_SUBSETS.items():
            score = popularity.copy()
            for a, v in info["preferences"].items():
                if a in visible:
                    column = ATTRIBUTES.index(a)
                    score += config["preference_strength"] * (codes[:, column]
                                                              == values[a].index(v))
            chain = info["chain"]
            if chain in visible and len(history):
                column = ATTRIBUTES.index(chain)
                wanted = follow[chain][codes[history[-1], column]]
                score += config["sequential_strength"] * (codes[:, column] == wanted)
            score[history] = -np.inf
            hits[name] += int(target in np.argpartition(-score, k)[:k])
    users = len(truth["users"])
    return [{"dataset": DATASET, "method": f"oracle/{name}",
             "setting": "true user model, visible attributes only, last item",
             f"HR@{k}": hits[name] / users} for name in ORACLE_SUBSETS]


def main() -> None:
    parser = bench_parser(
        __doc__.splitlines()[0], "synth_probe", quick="240 items, 400 users",
        omit=["resume", "only", "runs_dir"])
    parser.add_argument("--data", type=Path, help="an existing `recadapt data synth` folder")
    parser.add_argument("--modalities", nargs="+", default=list(ENCODERS),
                        choices=list(ENCODERS))
    parser.add_argument("--seed", type=int, default=0, help="generator and split seed")
    parser.set_defaults(threads=2)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    scratch = None
    folder = args.data
    if folder is None:
        scratch = Path(tempfile.mkdtemp(prefix="recadapt-synth-probe-"))
        folder = scratch / "synth"
        sizes = {"items": 240, "users": 400} if args.quick else {}
        started = time.perf_counter()
        generate(folder, SynthConfig.build(seed=args.seed, **sizes),
                 progress=sys.stderr.isatty())
        print(f"generated {folder} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    try:
        rows = probe_rows(folder, args.modalities, args.seed)
        oracle = oracle_rows(folder)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(text_table([r for r in rows if "error" not in r],
                       [*ATTRIBUTES, "rendered_gain", "other_gain"]))
    for row in rows:
        if "error" in row:
            print(f"{row['method']}: {row['error']}")
    print()
    print(text_table(oracle, ["HR@10"]))
    table = results(results_name(args.name, args.quick), keep=False)
    table.rows = rows + oracle
    print(f"\nwrote {table.write()}")


if __name__ == "__main__":
    main()
